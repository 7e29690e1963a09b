"""What every ``python -m trtnet.X`` command shares: flags, exit codes, file checks, errors.

One contract for all commands (build, verify, infer, calibrate, eval, bench, weights_convert):

* exit status 0 ok, 1 a check failed or the run failed (the message on stderr names the
  problem and the file), 2 usage (argparse, a malformed value such as a precision plan or a
  frame size, or flags that contradict each other);
* every message to stderr reads ``NAME: error: ...`` (or ``NAME: warning: ...``), NAME being
  the module run by ``python -m`` (``trtnet.infer``, ``weights_convert``), argparse's own
  errors included (:class:`Parser`); no exception class names;
* the same flag names (``-o/--output``, ``--precision-plan``, ``--weights``, ``--config``,
  ``--nonkeyframe-engine``, ``--keyframe-interval`` with one default), ``--version`` and an
  example section in every ``--help``; renamed flags stay as hidden aliases that warn;
* a one-line summary on stderr before long work and ``done in S s`` after it;
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

# YolactEdge's schedule, one default for every command: trtnet.runtime.video's
# DEFAULT_KEYFRAME_INTERVAL (the paper's keyframe every 5 frames).
KEYFRAME_INTERVAL_HELP = ("video configs on a frame sequence: a keyframe every N frames, the non-keyframe "
                          "network between (default {default}, as upstream; 1: every frame a keyframe); "
                          "image configs always run every frame as a keyframe")
REFERENCE_ENV = "TRTNET_REFERENCE_DIR"

PathLike = Union[str, os.PathLike]


class CliError(Exception):
    """A user-facing failure: the message is printed as ``prog: error: message``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


def error_prefix(prog: str) -> str:
    """The one name every message of a command starts with: ``python -m trtnet.infer`` and
    ``trtnet infer`` are both ``trtnet.infer``; ``python -m trtnet.bench kernels`` is
    ``trtnet.bench kernels``."""
    name = prog.removeprefix("python -m ").strip()
    if name.startswith("trtnet "):
        command, _, rest = name[len("trtnet "):].partition(" ")
        name = f"trtnet.{command.replace('-', '_')}" + (f" {rest}" if rest else "")
    return name


def warn(prog: str, message: str) -> None:
    """``NAME: warning: message`` on stderr."""
    print(f"{error_prefix(prog)}: warning: {message}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse with the contract: ``--version`` on every command (and subcommand), usage
    errors as ``NAME: error: ...`` with exit 2, like every other error of the command."""

    def __init__(self, *args, version: str | None = None, **kwargs):
        kwargs.setdefault("conflict_handler", "resolve")  # a command may define its own --version
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        if version is None:
            from trtnet import __version__

            version = f"trtnet {__version__}"
        self.add_argument("--version", action="version", version=version, help="print the version and exit")

    def error(self, message: str):  # argparse's hook
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{error_prefix(self.prog)}: error: {message}\n")


def examples_epilog(examples: Sequence[str], more: str = "") -> str:
    """The help's end: examples, an optional paragraph, the exit codes."""
    return ("examples:\n" + "\n".join(f"  {e}" for e in examples) + "\n\n"
            + (more.strip() + "\n\n" if more.strip() else "") + EXIT_CODES_HELP)


def make_parser(prog: str, description: str, examples: Sequence[str], *, version: str | None = None,
                more: str = "") -> Parser:
    """A :class:`Parser` whose help ends with examples and the exit codes."""
    return Parser(prog=prog, description=description, epilog=examples_epilog(examples, more), version=version)


class _DeprecatedAlias(argparse.Action):
    """A renamed flag's old spelling: still works, hidden from --help, warns once used."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn(parser.prog, f"{option_string} is deprecated; use {self.new}")
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def add_deprecated_alias(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs) -> None:
    """``old`` as a hidden alias of ``new`` (same ``dest``) that warns when used."""
    p.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, help=argparse.SUPPRESS,
                   default=argparse.SUPPRESS, **kwargs)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def precision_plan_arg(text: str) -> str:
    """argparse type: a precision plan that parses (a malformed one is a usage error, exit 2)."""
    from trtnet.precision import PrecisionError, as_plan

    try:
        as_plan(text)
    except PrecisionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def require_calibration(precision: str | None, cache: PathLike | None) -> None:
    """An int8 plan built by the command needs ``--calibration-cache``: a CliError saying how
    to make one (before any network is built)."""
    from trtnet.precision import as_plan

    if precision is not None and cache is None and as_plan(precision).uses_int8:
        raise CliError(f"--precision-plan {precision} quantizes to int8 and needs --calibration-cache FILE: make "
                       "one with python -m trtnet.calibrate --weights W --images DIR "
                       f"--precision-plan {precision} -o cache.json")


def add_nonkeyframe_engine(p: argparse.ArgumentParser, help: str) -> None:
    """``--nonkeyframe-engine FILE`` (the one spelling), with ``--nonkey-engine`` as a deprecated alias."""
    p.add_argument("--nonkeyframe-engine", dest="nonkeyframe_engine", type=Path, metavar="FILE", help=help)
    add_deprecated_alias(p, "--nonkey-engine", "--nonkeyframe-engine", "nonkeyframe_engine", type=Path,
                         metavar="FILE")


def add_keyframe_interval(p: argparse.ArgumentParser) -> None:
    """``--keyframe-interval N``: one default (upstream's 5) and one meaning for every command."""
    from trtnet.runtime.video import DEFAULT_KEYFRAME_INTERVAL

    p.add_argument("--keyframe-interval", type=int, default=None, metavar="N",
                   help=KEYFRAME_INTERVAL_HELP.format(default=DEFAULT_KEYFRAME_INTERVAL))


def keyframe_interval(given: int | None, config, *, sequence: bool) -> int:
    """The interval a command runs: ``given``, else the default for a video config on a frame
    sequence and 1 otherwise; a gap > 1 asked of an image config is a usage error."""
    from trtnet.runtime.video import DEFAULT_KEYFRAME_INTERVAL

    if given is None:
        return DEFAULT_KEYFRAME_INTERVAL if config.is_video and sequence else 1
    if given > 1 and not config.is_video:
        raise CliError(f"--keyframe-interval {given}: {config.name} has no flow network (a video config such "
                       "as yolact_edge_vid_resnet50 has); image configs run every frame as a keyframe", EXIT_USAGE)
    return given


def reference_case_dir(case: str, option: str, given: PathLike | None = None) -> Path:
    """The reference case folder a benchmark reads: ``given`` (its option), else
    ``$TRTNET_REFERENCE_DIR/case``, else ``../shared/reference/case`` relative to the current
    directory -- never relative to where trtnet is installed. Missing: a CliError naming the
    option and the variable."""
    if given is not None:
        return input_dir(given, f"{option} folder")
    env = os.environ.get(REFERENCE_ENV)
    base = Path(env) if env else Path("..") / "shared" / "reference"
    path = base / case
    if not path.is_dir():
        where = f"${REFERENCE_ENV}/{case}" if env else f"../shared/reference/{case} (relative to {Path.cwd()})"
        raise CliError(f"reference case {case!r} not found at {where}: give {option} DIR, or set "
                       f"{REFERENCE_ENV} to the folder holding the reference cases")
    return path


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
                inputs: Iterable[Optional[PathLike]] = (),
                outputs: dict | None = None) -> Path:
    """``path`` if it can be written without surprises, checked before any work starts:
    its folder exists and is writable (never created), it is not a folder, its extension is
    one of ``suffixes`` (when given), it is none of ``inputs`` and none of the command's other
    ``outputs`` (flag -> path; a collision is a usage error)."""
    path = Path(path)
    if path.is_dir():
        raise CliError(f"{what} {path} is a directory; give a file name")
    for other in inputs:
        if other is not None and (_same_file(path, Path(other))
                                  or path.resolve() == Path(other).resolve()):
            raise CliError(f"{what} {path} is the input {other}; choose another file name")
    for flag, other in (outputs or {}).items():
        if other is not None and path.resolve() == Path(other).resolve():
            raise CliError(f"{what} {path} collides with {flag} {other}: two outputs cannot share a file; "
                           "choose another file name", EXIT_USAGE)
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
    errors) is printed as ``NAME: error: ...`` (:func:`error_prefix`) with exit 1, an
    interrupt exits 130."""
    name = error_prefix(prog)
    try:
        return int(body() or 0)
    except CliError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.code
    except errors as exc:
        print(f"{name}: error: {message_of(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED


def message_of(exc: BaseException) -> str:
    """The text of an exception without KeyError's quotes; OSErrors with their file name."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, KeyError) and exc.args and type(exc).__str__ is KeyError.__str__:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__
