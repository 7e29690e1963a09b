"""Imports flow one way (DESIGN.md "Keeping the house easy to live in").

Commands use the runtime, the network and the emulator; nothing below a command imports a
command, and no trtnet module imports a module that imports it back. Read with ``ast`` from the
source (nothing is imported), so a circle fails here rather than as a half-initialised module
at some user's first import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trtnet

ROOT = Path(__file__).resolve().parents[1] / "trtnet"
COMMANDS = {f"trtnet.{c}" for c in ("build", "verify", "infer", "eval", "calibrate", "bench", "doctor",
                                     "export_triton", "__main__")}

# The rooms, bottom to top (DESIGN.md "Layout"; each room's __init__ says the same). A module may
# import its own room and the rooms below it, never one above, lazy imports included. A unit is a
# room (a package and everything under it) or, where named, a single module: precision's plan
# vocabulary sits at the bottom because the network's layer helpers read it, while the rest of
# precision/ runs networks and sits above network/.
ROOM_ORDER = (
    ("trtnet", "trtnet.names", "trtnet.config", "trtnet.precision", "trtnet.precision.plans"),
    ("trtnet.media",),
    ("trtnet.plugins",),
    ("trtnet.emulator",),
    ("trtnet.network",),
    ("trtnet.precision.calibration", "trtnet.precision.int8_audit", "trtnet.precision.int8_accuracy",
     "trtnet.precision.conditioned"),
    ("trtnet.builder",),
    ("trtnet.runtime",),
    ("trtnet.verification",),
    ("trtnet.triton",),
    ("trtnet.cli",),
    ("trtnet.benchmarks",),
    tuple(sorted(COMMANDS)),
)
TOP_LEVEL_ALLOWED = {"__init__.py", "__main__.py", "config.py", "names.py"}

# Function-level imports of a command from below, each a known debt (a new one fails the test;
# removing one only shrinks this set).
KNOWN_LAZY_COMMAND_IMPORTS: set[tuple[str, str]] = set()


def _module_files() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(not p.isidentifier() for p in parts):  # e.g. export-triton.py: a script, not importable
            continue
        mods[".".join(parts)] = path
    return mods


MODULES = _module_files()


def _is_command(name: str) -> bool:
    return name in COMMANDS or name == "trtnet.benchmarks" or name.startswith("trtnet.benchmarks.")


def _top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Imports run when the module is imported: module body, incl. if/try blocks, not TYPE_CHECKING."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        elif isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", [])
            todo += [s for h in getattr(node, "handlers", []) for s in h.body]
    return found


def _targets(name: str, path: Path, node: ast.stmt) -> set[str]:
    """The trtnet modules one import statement loads (``from a import b``: a.b if a module, else a)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in MODULES}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in MODULES:
            out.add(sub)
        elif base in MODULES:
            out.add(base)
    return out


def _graph(top_level: bool) -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
        nodes = _top_level_imports(tree) if top_level else [
            n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in type_only]
        graph[name] = set().union(*(_targets(name, path, n) for n in nodes)) - {name}
    return graph


@pytest.fixture(scope="module")
def top_level() -> dict[str, set[str]]:
    return _graph(top_level=True)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_walker_sees_relative_absolute_and_submodule_imports(top_level):
    # Guards the checks below against passing on an empty graph.
    assert "trtnet.emulator.plugins" in top_level["trtnet.emulator.trt"]  # from .plugins import x
    assert "trtnet.emulator.trt_types" in top_level["trtnet.emulator.plugins"]  # from . import trt_types
    assert "trtnet.runtime.engine" in top_level["trtnet.runtime.backends"]
    assert all(c in MODULES for c in COMMANDS)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_among_trtnet_modules(top_level):
    assert _cycles(top_level) == []


def test_nothing_below_a_command_imports_a_command(top_level):
    bad = sorted((m, t) for m, targets in top_level.items() if not _is_command(m)
                 for t in targets if _is_command(t))
    assert bad == []


def test_no_new_function_level_imports_of_a_command():
    everywhere = _graph(top_level=False)
    bad = {(m, t) for m, targets in everywhere.items() if not _is_command(m) for t in targets if _is_command(t)}
    assert sorted(bad - KNOWN_LAZY_COMMAND_IMPORTS) == []


def room_of(module: str) -> int:
    """Index in ROOM_ORDER: an exact single-module unit first, else the longest room prefix."""
    for i, unit in enumerate(ROOM_ORDER):
        if module in unit:
            return i
    best, index = "", None
    for i, unit in enumerate(ROOM_ORDER):
        for room in unit:
            if room != "trtnet" and module.startswith(room + ".") and len(room) > len(best):
                best, index = room, i
    if index is None:
        raise AssertionError(f"{module} is in no room of ROOM_ORDER: put it in one")
    return index


def test_room_of_is_exact_before_prefix():
    assert room_of("trtnet.precision.plans") == 0
    assert room_of("trtnet.precision.calibration") > room_of("trtnet.network.layers")
    assert room_of("trtnet.network.backbones.resnet") == room_of("trtnet.network")
    assert room_of("trtnet.builder.engine") < room_of("trtnet.runtime.backends")


def test_every_module_is_in_a_room():
    for module in MODULES:
        room_of(module)


def test_imports_flow_down_the_rooms_lazy_ones_included():
    everywhere = _graph(top_level=False)
    upward = sorted((m, t) for m, targets in everywhere.items() for t in targets if room_of(t) > room_of(m))
    assert upward == []


def test_the_top_level_holds_commands_config_names_and_rooms():
    files = {p.name for p in ROOT.iterdir() if p.suffix == ".py"}
    stray = files - TOP_LEVEL_ALLOWED - {c.split(".")[1] + ".py" for c in COMMANDS}
    assert stray == set()
    rooms = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert rooms == {"benchmarks", "builder", "cli", "emulator", "media", "network", "plugins", "precision",
                     "runtime", "triton", "verification"}


def test_every_room_says_what_it_holds_and_may_import():
    for room in ROOT.iterdir():
        init = room / "__init__.py"
        if init.is_file():
            doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
            assert len(doc.split()) >= 20, f"{init}: a paragraph saying what lives here and what it may import"


@pytest.mark.parametrize("old", sorted(trtnet.MOVED_MODULES))
def test_a_moved_module_keeps_its_old_name_with_a_warning(old):
    import importlib
    import sys

    new = trtnet.MOVED_MODULES[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert importlib.util.find_spec(new) is not None and importlib.util.find_spec(new).name == new
