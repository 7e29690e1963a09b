"""Make the REAL TensorRT Python bindings importable without TensorRT (test-only).

The bindings wheels on PyPI (``tensorrt-cu13-bindings`` 11.4, ``tensorrt-cu12-bindings``
10.3) hold the complete Python API in ``tensorrt_bindings/tensorrt.so``; it only
links a handful of C entry points of libnvinfer, libnvinfer_plugin and
libnvonnxparser. We compile stubs of those libraries (every entry point returns
NULL/0, so ``trt.Builder`` fails, but every class, method signature, property and
enum can be inspected), load them with RTLD_GLOBAL and import each package under
its own module name, so both versions live in one process.

Never imported by the trtnet package.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("TRTNET_TRT_BINDINGS_CACHE", REPO_ROOT / ".cache" / "trt_bindings"))

# version key -> (PyPI requirement, soname major)
BINDINGS = {
    "11.4": ("tensorrt-cu13-bindings==11.4.0.106", 11),
    "10.3": ("tensorrt-cu12-bindings==10.3.0", 10),
}
STUB_LIBRARIES = ("nvinfer", "nvinfer_plugin", "nvonnxparser")
# The C entry points the bindings link (``nm -D --undefined-only tensorrt.so``);
# used when nm is unavailable, and checked against nm otherwise.
KNOWN_ENTRY_POINTS = (
    "createInferBuilder_INTERNAL",
    "createInferRefitter_INTERNAL",
    "createInferRuntime_INTERNAL",
    "createNvOnnxParserRefitter_INTERNAL",
    "createNvOnnxParser_INTERNAL",
    "getNvOnnxParserVersion",
    "getPluginRegistry",
    "getBuilderPluginRegistry",
    "initLibNvInferPlugins",
)

_loaded: dict[str, ModuleType] = {}
_failed: dict[str, "HarnessError"] = {}  # a failed download is not retried for every test


class HarnessError(RuntimeError):
    """The real bindings could not be made importable (download, compiler, import)."""


def _run(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"{what} failed: {' '.join(cmd)}: {exc}") from exc
    if proc.returncode != 0:
        raise HarnessError(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def _wheel(version: str) -> Path:
    """Download (once) the bindings wheel of ``version`` into the cache."""
    requirement, _ = BINDINGS[version]
    dist, pinned = requirement.split("==")
    wheel_dir = CACHE_DIR / "wheels"
    prefix = f"{dist.replace('-', '_')}-{pinned}-"
    found = sorted(wheel_dir.glob(prefix + "*.whl")) if wheel_dir.is_dir() else []
    if not found:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--disable-pip-version-check", "-q", "-d", str(wheel_dir), requirement],
             f"downloading {requirement} from PyPI (needed to check the real TensorRT API)")
        found = sorted(wheel_dir.glob(prefix + "*.whl"))
        if not found:
            raise HarnessError(f"pip download of {requirement} produced no wheel in {wheel_dir}")
    return found[-1]


def _extracted(version: str) -> Path:
    """Directory holding ``tensorrt_bindings/`` of ``version`` (extracted once)."""
    target = CACHE_DIR / f"site-{version}"
    if (target / "tensorrt_bindings" / "tensorrt.so").is_file():
        return target
    wheel = _wheel(version)
    tmp = Path(tempfile.mkdtemp(dir=CACHE_DIR, prefix=f".site-{version}-"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp)
    if not (tmp / "tensorrt_bindings" / "tensorrt.so").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        raise HarnessError(f"{wheel.name} has no tensorrt_bindings/tensorrt.so")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def entry_points(binding_so: Path) -> list[str]:
    """The TensorRT C symbols the bindings import (undefined, unversioned, not Python/libc)."""
    nm = shutil.which("nm")
    if nm is None:
        return list(KNOWN_ENTRY_POINTS)
    out = _run([nm, "-D", "--undefined-only", str(binding_so)], "nm")
    names = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 2 or parts[0] != "U" or "@" in parts[1]:
            continue
        name = parts[1]
        if name.startswith(("Py", "_Py", "dl")):
            continue
        names.append(name)
    return names


def _library_of(symbol: str) -> str:
    if "OnnxParser" in symbol:
        return "nvonnxparser"
    if symbol == "initLibNvInferPlugins":
        return "nvinfer_plugin"
    return "nvinfer"


def _stubs(version: str, site: Path) -> Path:
    """Compile libnvinfer/libnvinfer_plugin/libnvonnxparser.so.N stubs (once)."""
    _, major = BINDINGS[version]
    stub_dir = CACHE_DIR / f"stub-{major}"
    libs = [stub_dir / f"lib{n}.so.{major}" for n in STUB_LIBRARIES]
    if all(p.is_file() for p in libs):
        return stub_dir
    symbols = entry_points(site / "tensorrt_bindings" / "tensorrt.so")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise HarnessError("no C compiler (cc/gcc) to build the TensorRT library stubs")
    stub_dir.mkdir(parents=True, exist_ok=True)
    for lib, path in zip(STUB_LIBRARIES, libs):
        body = "".join(f"void* {s}(void) {{ return 0; }}\n" for s in symbols if _library_of(s) == lib)
        src = stub_dir / f"lib{lib}_stub.c"
        src.write_text("/* generated by tests/trt_harness.py: every entry point returns NULL/0 */\n" + body)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        _run([cc, "-shared", "-fPIC", "-o", str(tmp), f"-Wl,-soname,{path.name}", str(src)],
             f"compiling the {path.name} stub")
        os.replace(tmp, path)
    return stub_dir


def load_bindings(version: str) -> ModuleType:
    """The real ``tensorrt`` module of ``version`` ("11.4" or "10.3"), imported over stubs."""
    if version in _loaded:
        return _loaded[version]
    if version in _failed:
        raise _failed[version]
    try:
        module = _load(version)
    except HarnessError as exc:
        _failed[version] = exc
        raise
    _loaded[version] = module
    return module


def _load(version: str) -> ModuleType:
    if version not in BINDINGS:
        raise HarnessError(f"unknown TensorRT bindings version {version!r}; have {sorted(BINDINGS)}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    site = _extracted(version)
    stub_dir = _stubs(version, site)
    _, major = BINDINGS[version]
    for lib in STUB_LIBRARIES:
        ctypes.CDLL(str(stub_dir / f"lib{lib}.so.{major}"), mode=ctypes.RTLD_GLOBAL)
    alias = f"tensorrt_bindings_{version.replace('.', '_')}"
    pkg = site / "tensorrt_bindings"
    spec = importlib.util.spec_from_file_location(alias, pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(alias, None)
        raise HarnessError(f"importing the TensorRT {version} bindings failed: {exc!r}") from exc
    if not str(module.__version__).startswith(version):
        raise HarnessError(f"expected TensorRT {version}, the bindings say {module.__version__}")
    return module


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def overloads(func) -> list[list[tuple[str, bool]]]:
    """Parameters of each overload of a bound C++ function, from its docstring signature.

    Returns one list per overload of ``(name, has_default)``, ``self`` included.
    pybind11 and nanobind both start the docstring (or each numbered overload
    line) with ``name(param: type[ = default], ...) -> type``.
    """
    name = func.__name__
    doc = func.__doc__ or ""
    pattern = re.compile(rf"^(?:\d+\. )?{re.escape(name)}\((.*)\) -> ", re.M)
    result = []
    for m in pattern.finditer(doc):
        params = []
        for part in _split_top_level(m.group(1)):
            pname = part.split(":", 1)[0].split("=", 1)[0].strip()
            if pname in ("*args", "**kwargs"):
                continue
            params.append((pname, "=" in part))
        result.append(params)
    return [p for p in result if p] or result


def signature(func) -> list[list[str]]:
    """Parameter names of each overload of a bound function (see :func:`overloads`)."""
    return [[n for n, _ in ov] for ov in overloads(func)]


if __name__ == "__main__":
    for v in BINDINGS:
        m = load_bindings(v)
        print(v, m.__version__, m.__name__)
