"""What every ``python -m trtnet.X`` command shares: flags, exit codes, file checks, errors.

One contract for all commands (build, verify, infer, calibrate, eval, bench, weights_convert):

* exit status 0 ok, 1 a check failed or the run failed (the message on stderr names the
  problem and the file), 2 usage (argparse, or flags that contradict each other);
* the same flag names (``-o/--output``, ``--precision-plan``, ``--weights``, ``--config``),
  an example section in every ``--help``;
* input files checked before any work (missing, a directory, empty), output files checked
  before any work (parent folder exists and is writable, extension known, not one of the
  inputs), never a traceback for bad input.

Room rule: the room just below the commands and the benchmarks; it may import any room
(it loads weights through trtnet.network.weights), never a command.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

EXIT_OK = 0
EXIT_FAILURE = 1  # a check failed, or the run could not be done (bad file, wrong config...)
EXIT_USAGE = 2    # argparse's own code for a bad command line
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = ("exit status: 0 ok; 1 a check failed or an error (message on stderr); "
                   "2 usage error (bad or contradictory flags)")

PathLike = Union[str, os.PathLike]


class CliError(Exception):
    """A user-facing failure: the message is printed as ``prog: error: message``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


def make_parser(prog: str, description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """An ArgumentParser whose help ends with examples and the exit codes."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) + "\n\n" + EXIT_CODES_HELP
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


# -- common flags -------------------------------------------------------------------------


def add_weights(p: argparse.ArgumentParser, *, required: bool = True, help: Optional[str] = None) -> None:
    p.add_argument("--weights", required=required, type=Path, metavar="FILE",
                   help=help or "checkpoint: .safetensors (python -m weights_convert) or upstream .pth")


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="NAME",
                   help="config name, e.g. yolact_edge_mobilenetv2 (default: recognised from the weights)")


def add_output(p: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    p.add_argument("-o", "--output", required=required, type=Path, metavar="FILE", help=help)


def add_backend(p: argparse.ArgumentParser, choices: Sequence[str] = ("emulator", "tensorrt")) -> None:
    """``--backend`` and ``--engine``: an engine implies the TensorRT backend (see :func:`backend_of`)."""
    p.add_argument("--backend", default=None, choices=tuple(choices),
                   help="emulator: NumPy on the CPU (default); tensorrt: real TensorRT + GPU "
                        "(implied by --engine)")


def backend_of(parser: argparse.ArgumentParser, args: argparse.Namespace, *engine_flags: str) -> str:
    """The backend asked for: ``--engine`` implies ``tensorrt``; an engine with another
    backend is a contradiction (usage error), never silently ignored."""
    given = [f"--{f.replace('_', '-')}" for f in engine_flags if getattr(args, f, None)]
    if given and args.backend not in (None, "tensorrt"):
        parser.error(f"{given[0]} runs a TensorRT engine, which contradicts --backend {args.backend}")
    if given:
        return "tensorrt"
    return args.backend or "emulator"


# -- files ---------------------------------------------------------------------------------


def input_file(path: PathLike, what: str) -> Path:
    """``path`` if it is a readable, non-empty regular file; else a CliError naming it."""
    path = Path(path)
    if not path.exists():
        raise CliError(f"{what} not found: {path}")
    if path.is_dir():
        raise CliError(f"{what} {path} is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise CliError(f"{what} {path} is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise CliError(f"{what} {path} is empty")
    return path


def input_dir(path: PathLike, what: str) -> Path:
    """``path`` if it is a folder; else a CliError naming it."""
    path = Path(path)
    if not path.exists():
        raise CliError(f"{what} not found: {path}")
    if not path.is_dir():
        raise CliError(f"{what} {path} is not a folder")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def output_file(path: PathLike, what: str, *, suffixes: Optional[Iterable[str]] = None,
                inputs: Iterable[Optional[PathLike]] = ()) -> Path:
    """``path`` if it can be written without surprises, checked before any work starts:
    its folder exists and is writable (never created), it is not a folder, its extension is
    one of ``suffixes`` (when given), and it is none of ``inputs``."""
    path = Path(path)
    if path.is_dir():
        raise CliError(f"{what} {path} is a directory; give a file name")
    for other in inputs:
        if other is not None and (_same_file(path, Path(other))
                                  or path.resolve() == Path(other).resolve()):
            raise CliError(f"{what} {path} is the input {other}; choose another file name")
    if suffixes is not None:
        suffixes = tuple(suffixes)
        if path.suffix.lower() not in suffixes:
            raise CliError(f"{what} {path}: unsupported extension {path.suffix or '(none)'!r}; "
                           f"use one of {', '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"{what} {path}: folder {parent} does not exist (it is not created)")
    try:  # a real probe: access() says yes to root even where nothing can be created
        with tempfile.TemporaryFile(dir=parent, prefix=f".{path.name}.probe."):
            pass
    except OSError as exc:
        raise CliError(f"{what} {path}: folder {parent} is not writable ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise CliError(f"{what} {path} exists and is not writable")
    return path


def load_weights(path: PathLike):
    """The WeightStore of ``path``, checked as a file first; a bad file is a CliError naming it."""
    from trtnet.network.weights import WeightError, WeightStore

    input_file(path, "weights file")
    try:
        return WeightStore.load(path)
    except WeightError as exc:
        raise CliError(str(exc)) from None


# -- running a command ---------------------------------------------------------------------


def run(prog: str, body: Callable[[], int], errors: tuple = ()) -> int:
    """``body()``'s exit code; a CliError or one of ``errors`` (the command's own bad-input
    errors) is printed as ``prog: error: ...`` with exit 1, an interrupt exits 130."""
    try:
        return int(body() or 0)
    except CliError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code
    except errors as exc:
        print(f"{prog}: error: {message_of(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED


def message_of(exc: BaseException) -> str:
    """The text of an exception without KeyError's quotes; OSErrors with their file name."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, KeyError) and exc.args and type(exc).__str__ is KeyError.__str__:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__
