"""``python -m trtnet.build``: build a TensorRT engine of a YolactEdge model.

    python -m trtnet.build --config yolact_edge_resnet50 --weights model.safetensors \\
        --output yolact_edge_resnet50.engine [--precision-plan fp16] \\
        [--min-frame 64x64 --opt-frame 480x640 --max-frame 1080x1920]

int8 plans (presets int8_backbone, int8_backbone_fpn, int8_all, upstream) need calibrated ranges:
``python -m trtnet.calibrate ... -o cache.json``, then ``--calibration-cache cache.json``.

The network is strongly typed (the precision plan chooses every type); the frame input
has a dynamic batch (``--max-batch N``: profile 1..N), height and width, covered by one
optimization profile. TF32 is cleared (TensorRT enables it by default) unless ``--tf32``.
The engine file and its JSON sidecar (``ENGINE.json``, :mod:`trtnet.engine_sidecar`) are
written atomically (temporary file + rename); ``--timing-cache FILE`` is shared by
concurrent builds (:mod:`trtnet.timing_cache`). Needs the real TensorRT (10.3+) and the
compiled trtnet plugin library; without TensorRT, or with ``--dry-run``, the network is
built on the emulator and its plan printed (:mod:`trtnet.plan_summary`), exit code 3 / 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from trtnet import cli, names
from trtnet.config import UnknownConfigError, get_config
from trtnet.files import write_atomically
from trtnet.precision import PRESETS, PrecisionError, PrecisionPlan, as_plan
from trtnet.weights import WeightConfigError, WeightError, WeightStore
from trtnet.weights import resolve_config as weights_resolve_config

DEFAULT_MIN_FRAME = (32, 32)
DEFAULT_OPT_FRAME = (480, 640)
DEFAULT_MAX_FRAME = (2160, 3840)


class BuildError(RuntimeError):
    """The engine could not be built; the message says why."""


def parse_frame_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. 480x640) -> (480, 640)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame size must look like HEIGHTxWIDTH (480x640), got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"frame size must be positive, got {text!r}")
    return h, w


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt  # noqa: PLC0415  (optional dependency)
    except ImportError as exc:
        raise BuildError(
            "building an engine needs TensorRT's Python package (pip install tensorrt, "
            f"10.3 or newer): {exc}. To check a model without a GPU use trtnet.emulator "
            "(trtnet.network.emulate_keyframe)."
        ) from exc
    return trt


PROFILING_VERBOSITY = ("layer_names_only", "detailed", "none")  # trt.ProfilingVerbosity members, lower case


@dataclass
class BuilderSettings:
    """Builder switches beyond the network and its profile (trtexec's --noTF32 etc.)."""

    tf32: bool = False                # NvInfer.h BuilderFlag::kTF32 is "Enabled by default": we clear it
    profiling_verbosity: Optional[str] = None  # None: TensorRT's default (layer_names_only)
    timing_cache: Optional[Path] = None
    progress: Optional[bool] = False  # tqdm bars of IProgressMonitor; None: on a terminal only
    workspace_mib: Optional[int] = None


@dataclass
class BuiltEngine:
    """A serialized engine and what its sidecar records about the build."""

    data: bytes
    io: list = field(default_factory=list)        # trtnet.engine_sidecar.tensor_entries
    profile: dict = field(default_factory=dict)   # input name -> (min, opt, max)
    builder: dict = field(default_factory=dict)   # settings as applied


def check_frame_range(min_frame: tuple[int, int], opt_frame: tuple[int, int], max_frame: tuple[int, int]) -> None:
    """min <= opt <= max in height and in width, or a BuildError."""
    if not (min_frame[0] <= opt_frame[0] <= max_frame[0] and min_frame[1] <= opt_frame[1] <= max_frame[1]):
        raise BuildError(f"frame sizes must satisfy min <= opt <= max, got {min_frame}, {opt_frame}, {max_frame}")


def profile_shapes(network: Any, min_frame: tuple[int, int], opt_frame: tuple[int, int],
                   max_frame: tuple[int, int], max_batch: int = 1) -> dict[str, tuple]:
    """(min, opt, max) of every dynamic network input: the frame over the frame range, and the
    batch dimension 1..max_batch (opt = max_batch) of every input that has one."""
    check_frame_range(min_frame, opt_frame, max_frame)
    if int(max_batch) < 1:
        raise BuildError(f"--max-batch must be >= 1, got {max_batch}")
    shapes = {}
    for i in range(network.num_inputs):
        t = network.get_input(i)
        declared = tuple(int(d) for d in tuple(t.shape))
        if -1 not in declared:
            continue
        if t.name == names.INPUT:
            frame = [(*min_frame, 3), (*opt_frame, 3), (*max_frame, 3)]
            if declared[0] >= 0 and max_batch != 1:
                raise BuildError(f"this network takes batches of {declared[0]} frame(s) only; --max-batch {max_batch} "
                                 "needs a network with a dynamic batch dimension")
            batch = [1, max_batch, max_batch] if declared[0] < 0 else [declared[0]] * 3
            shapes[t.name] = tuple((b, *f) for b, f in zip(batch, frame))
        elif declared[0] < 0 and -1 not in declared[1:]:
            shapes[t.name] = tuple((b, *declared[1:]) for b in (1, max_batch, max_batch))
        else:
            raise BuildError(f"input {t.name!r} has dynamic dims {declared} the profile cannot cover")
    return shapes


def configure_builder(trt: Any, builder_config: Any, settings: BuilderSettings) -> dict[str, Any]:
    """Apply ``settings`` to an IBuilderConfig; returns them as recorded in the sidecar."""
    # TF32: NvInfer.h (10.3 l.8317-8320, 11.1 l.9973-9976) BuilderFlag::kTF32 "Allow ... TF32 ...
    # rounding the inputs to 10-bit mantissas ... Enabled by default." fp32 layers would then not
    # be fp32: cleared for every plan unless asked for.
    if settings.tf32:
        builder_config.set_flag(trt.BuilderFlag.TF32)
    else:
        builder_config.clear_flag(trt.BuilderFlag.TF32)
    applied: dict[str, Any] = {"tf32": bool(settings.tf32)}
    if settings.profiling_verbosity is not None:
        if settings.profiling_verbosity not in PROFILING_VERBOSITY:
            raise BuildError(f"profiling verbosity must be one of {', '.join(PROFILING_VERBOSITY)}, "
                             f"got {settings.profiling_verbosity!r}")
        builder_config.profiling_verbosity = getattr(trt.ProfilingVerbosity, settings.profiling_verbosity.upper())
    applied["profiling_verbosity"] = settings.profiling_verbosity or "layer_names_only"
    if settings.workspace_mib is not None:
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace_mib) << 20)
    applied["workspace_mib"] = settings.workspace_mib
    applied["timing_cache"] = str(settings.timing_cache) if settings.timing_cache is not None else None
    return applied


def build_engine(
    trt: Any, weights: Any, config: Any, *, plan: Optional[PrecisionPlan] = None,
    min_frame: tuple[int, int] = DEFAULT_MIN_FRAME, opt_frame: tuple[int, int] = DEFAULT_OPT_FRAME,
    max_frame: tuple[int, int] = DEFAULT_MAX_FRAME, workspace_mib: Optional[int] = None,
    logger: Any = None, nonkeyframe: bool = False, max_batch: int = 1,
    settings: Optional[BuilderSettings] = None,
) -> bytes:
    """Serialized engine of ``config`` with ``weights`` (a WeightStore or file); see :func:`build`."""
    return build(trt, weights, config, plan=plan, min_frame=min_frame, opt_frame=opt_frame,
                 max_frame=max_frame, workspace_mib=workspace_mib, logger=logger, nonkeyframe=nonkeyframe,
                 max_batch=max_batch, settings=settings).data


def build(
    trt: Any, weights: Any, config: Any, *, plan: Optional[PrecisionPlan] = None,
    min_frame: tuple[int, int] = DEFAULT_MIN_FRAME, opt_frame: tuple[int, int] = DEFAULT_OPT_FRAME,
    max_frame: tuple[int, int] = DEFAULT_MAX_FRAME, workspace_mib: Optional[int] = None,
    logger: Any = None, nonkeyframe: bool = False, max_batch: int = 1,
    settings: Optional[BuilderSettings] = None,
) -> BuiltEngine:
    """Build ``config`` with ``weights``; the engine plus its I/O, profile and settings.

    ``nonkeyframe``: the video engine (partial backbone + flow warp of the keyframe state)
    instead of the keyframe one. ``max_batch``: the profile covers batches 1..max_batch of
    frames of one size (every input's first dimension). TF32 is off unless
    ``settings.tf32``.
    """
    from trtnet.build_progress import cancel_on_interrupt, make_progress_monitor
    from trtnet.engine_sidecar import tensor_entries
    from trtnet.network.yolact_edge import build_keyframe, build_nonkeyframe
    from trtnet.timing_cache import TimingCacheError, open_shared

    settings = settings or BuilderSettings()
    if workspace_mib is not None:
        settings = replace(settings, workspace_mib=workspace_mib)
    check_frame_range(min_frame, opt_frame, max_frame)
    store = WeightStore.load(weights)  # held until the engine is serialized (trt.Weights do not copy)
    logger = logger or trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # noqa: BLE001  (the bindings raise TypeError/RuntimeError)
        raise BuildError(f"TensorRT could not create a builder (is a CUDA GPU available?): {exc}") from exc
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    build_network = build_nonkeyframe if nonkeyframe else build_keyframe
    tensors = build_network(network, trt, store, config, plan=plan)

    shapes = profile_shapes(network, min_frame, opt_frame, max_frame, max_batch)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    builder_config = builder.create_builder_config()
    if builder_config.add_optimization_profile(profile) < 0:
        raise BuildError(f"invalid optimization profile {shapes}")
    applied = configure_builder(trt, builder_config, settings)
    try:
        cache = open_shared(settings.timing_cache)
        if cache is not None:
            cache.attach(builder_config)
        monitor = make_progress_monitor(trt, enabled=settings.progress) if settings.progress is not False else None
        if monitor is not None:
            builder_config.progress_monitor = monitor
        with cancel_on_interrupt(monitor):
            serialized = builder.build_serialized_network(network, builder_config)
        if monitor is not None and monitor.cancelled:
            raise BuildError("the build was cancelled (Ctrl-C)")
        if serialized is None:
            raise BuildError("TensorRT failed to build the engine; see the TensorRT log above")
        if cache is not None:
            cache.save(builder_config)
    except TimingCacheError as exc:
        raise BuildError(str(exc)) from None
    io = tensor_entries(network, trt)
    del tensors
    return BuiltEngine(bytes(memoryview(serialized)), io, shapes, applied)


def resolve_config(store: Any, name: Optional[str]) -> Any:
    """The config to build (see :func:`trtnet.weights.resolve_config`), as a BuildError."""
    try:
        return weights_resolve_config(store, name)
    except WeightConfigError as exc:
        raise BuildError(str(exc)) from None


def calibrated_plan(plan: PrecisionPlan, store: Any, config: Any, args: argparse.Namespace) -> PrecisionPlan:
    """``plan`` with the ranges of ``--calibration-cache`` (checked against the network);
    an int8 plan without a cache is an error saying how to make one."""
    from trtnet.calibrate import load_plan

    if not plan.uses_int8:
        if args.calibration_cache is not None:
            print(f"trtnet.build: note: plan {plan} has no int8 component; "
                  f"{args.calibration_cache} is not used", file=sys.stderr)
        return plan
    if args.calibration_cache is None:
        name = plan.preset or str(plan)
        raise BuildError(
            f"precision plan {name} quantizes to int8 and needs calibrated activation ranges: make "
            f"them with python -m trtnet.calibrate --weights {args.weights} --images <folder of "
            f"images> --precision-plan {name} -o calibration.json, then pass "
            "--calibration-cache calibration.json"
        )
    return load_plan(args.calibration_cache, store, config, plan, nonkeyframe=args.nonkeyframe)


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_TENSORRT = 0, 1, 2, 3

EPILOG = """examples:
  python -m trtnet.build --weights yolact_edge_mobilenetv2.safetensors -o mnv2.engine
  python -m trtnet.build --weights model.safetensors --precision-plan int8_backbone_fpn \\
      --calibration-cache calibration.json --timing-cache ~/.cache/trtnet.timing -o int8.engine
  python -m trtnet.build --weights model.safetensors --max-batch 4 -o four_cameras.engine
  python -m trtnet.build --weights model.safetensors --precision-plan fp16 --dry-run

Every engine gets a JSON sidecar next to it (model.engine.json): config, precision plan,
calibration hash, TensorRT version, GPU, I/O tensors, profile, builder settings, plugin library.
TF32 is off (TensorRT enables it by default; fp32 layers would round to 10-bit mantissas):
--tf32 turns it on. --profiling-verbosity detailed shows layer names and tactics in nsys.

exit codes:
  0  engine and sidecar written (or, with --dry-run, the plan printed)
  1  error (bad weights, config, calibration cache, output path; TensorRT failed)
  2  usage error (unknown flag, malformed value)
  3  TensorRT is not installed: the dry-run plan was printed, nothing was written
"""


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trtnet.build",
        description="Build a TensorRT engine of a YolactEdge model: the keyframe (image) network, "
                    "or with --nonkeyframe the video network that warps a keyframe's features. "
                    "Without TensorRT (or with --dry-run) the network is built on trtnet's emulator "
                    "and the plan is printed.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default=None,
                   help="config name, e.g. yolact_edge_resnet50 (default: recognised from the weights)")
    p.add_argument("--weights", required=True, type=Path, help=".safetensors (or .pth) checkpoint")
    p.add_argument("--output", "-o", type=Path, default=None,
                   help="engine file to write (its sidecar goes to OUTPUT.json); not needed with --dry-run")
    p.add_argument("--precision-plan", "--precision", dest="precision", default="fp32",
                   help=f"precision plan: a preset ({', '.join(PRESETS)}) or e.g. "
                        "'fp16,backbone=int8,head=fp32' (default fp32)")
    p.add_argument("--calibration-cache", type=Path, default=None, metavar="JSON",
                   help="int8 activation ranges from python -m trtnet.calibrate (needed by int8 plans)")
    p.add_argument("--min-frame", type=parse_frame_size, default=DEFAULT_MIN_FRAME, metavar="HxW",
                   help="smallest frame the engine accepts (default %(default)s)")
    p.add_argument("--opt-frame", type=parse_frame_size, default=DEFAULT_OPT_FRAME, metavar="HxW",
                   help="frame size TensorRT tunes for (default %(default)s)")
    p.add_argument("--max-frame", type=parse_frame_size, default=DEFAULT_MAX_FRAME, metavar="HxW",
                   help="largest frame the engine accepts (default %(default)s)")
    p.add_argument("--max-batch", type=positive_int, default=1, metavar="N",
                   help="frames per call (e.g. one per camera): the profile covers batches 1..N, "
                        "tuned for N (default 1)")
    p.add_argument("--workspace", type=positive_int, default=None, metavar="MiB", help="builder workspace limit")
    p.add_argument("--nonkeyframe", action="store_true",
                   help="build the non-keyframe (video) engine; needs a video config (flow net)")
    p.add_argument("--plugin-library", type=Path, default=None,
                   help="libtrtnet_plugins.so (default: found by trtnet.plugins.library_path())")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 for fp32 layers (TensorRT's default, off here: it breaks fp32 accuracy)")
    p.add_argument("--timing-cache", type=Path, default=None, metavar="FILE",
                   help="TensorRT timing cache to reuse and update (shared safely by concurrent builds)")
    p.add_argument("--profiling-verbosity", choices=PROFILING_VERBOSITY, default=None,
                   help="layer information kept in the engine; 'detailed' for nsys/engine inspection "
                        "(default: TensorRT's, layer_names_only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars while TensorRT builds")
    p.add_argument("--dry-run", action="store_true",
                   help="build the network on the emulator and print the plan (components, precision, "
                        "layers, parameters, MACs, int8 audit, I/O); write nothing")
    return p


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def check_output(args: argparse.Namespace) -> None:
    """Refuse an output that cannot be written, before any work."""
    if args.output is None:
        raise BuildError("no engine file given: pass -o/--output FILE (or --dry-run to only print the plan)")
    cli.output_file(args.output, "engine file", inputs=(args.weights, args.calibration_cache, args.timing_cache))


def plugin_library_path() -> Optional[Path]:
    """The plugin library trtnet.plugins loads, or None where it cannot say (recorded in the sidecar)."""
    from trtnet import plugins

    try:
        return plugins.library_path()
    except FileNotFoundError:
        return None


def dry_run(store: Any, config: Any, plan: PrecisionPlan, args: argparse.Namespace,
            notes: Sequence[str] = ()) -> str:
    """The plan report of ``--dry-run``: the network built on the emulator."""
    from trtnet import emulator
    from trtnet.network.yolact_edge import build_keyframe, build_nonkeyframe
    from trtnet.plan_summary import dry_run_report

    network = emulator.Network()
    (build_nonkeyframe if args.nonkeyframe else build_keyframe)(network, emulator.trt, store, config, plan=plan)
    shapes = profile_shapes(network, args.min_frame, args.opt_frame, args.max_frame, args.max_batch)
    kind = "non-keyframe (video)" if args.nonkeyframe else "keyframe"
    title = (f"trtnet.build dry run: {config.name} {kind} network, built on trtnet's emulator "
             f"({network.num_layers} layers)")
    notes = [*notes, f"the network resizes every frame to {config.max_size}x{config.max_size} inside: MACs do "
                     "not depend on the frame size (the opt frame only sets the profile)"]
    return dry_run_report(network, emulator.trt, plan, title=title, profile=shapes, batch=args.max_batch,
                          notes=notes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.config is not None:
            get_config(args.config)  # an unknown name is reported before loading anything
        plan = as_plan(args.precision)
        check_frame_range(args.min_frame, args.opt_frame, args.max_frame)
        cli.input_file(args.weights, "weights file")
        if not args.dry_run:
            check_output(args)
        store = cli.load_weights(args.weights)
        config = resolve_config(store, args.config)
        if args.nonkeyframe and not config.is_video:
            raise BuildError(f"--nonkeyframe needs a video config with a flow net; {config.name} has none")
        notes: list[str] = []
        if args.dry_run and plan.uses_int8 and args.calibration_cache is None:
            from trtnet.precision import AmaxRecorder

            plan = plan.with_amax(AmaxRecorder())  # placement only: every scale 1/127
            notes.append("int8 scales are placeholders (no --calibration-cache): placement only")
        else:
            plan = calibrated_plan(plan, store, config, args)
        if args.dry_run:
            print(dry_run(store, config, plan, args, notes))
            return EXIT_OK
        try:
            trt = import_tensorrt()
        except BuildError as exc:
            print(dry_run(store, config, plan, args, notes))
            print(f"\ntrtnet.build: {exc}\nnothing was written (exit code {EXIT_NO_TENSORRT}: dry run only)",
                  file=sys.stderr)
            return EXIT_NO_TENSORRT
        from trtnet import plugins
        from trtnet.engine_sidecar import describe, write_sidecar

        plugins.load(args.plugin_library)
        plugin_library = args.plugin_library or plugin_library_path()
        settings = BuilderSettings(tf32=args.tf32, profiling_verbosity=args.profiling_verbosity,
                                   timing_cache=args.timing_cache, progress=None if not args.no_progress else False,
                                   workspace_mib=args.workspace)
        kind = "non-keyframe" if args.nonkeyframe else "keyframe"
        print(f"building the {config.name} {kind} engine: plan {plan}, frames {args.min_frame}..{args.max_frame} "
              f"(opt {args.opt_frame}), batch 1..{args.max_batch}, TF32 {'on' if args.tf32 else 'off'} "
              f"-> {args.output}", flush=True)
        start = time.perf_counter()
        built = build(trt, store, config, plan=plan, min_frame=args.min_frame, opt_frame=args.opt_frame,
                      max_frame=args.max_frame, nonkeyframe=args.nonkeyframe, max_batch=args.max_batch,
                      settings=settings)
        sidecar = describe(engine=built.data, config=config, plan=plan, nonkeyframe=args.nonkeyframe, trt=trt,
                           io=built.io, profile=built.profile, builder=built.builder, weights=args.weights,
                           calibration_cache=args.calibration_cache if plan.uses_int8 else None,
                           plugin_library=plugin_library)
        write_atomically(args.output, built.data)
        sidecar_file = write_sidecar(args.output, sidecar)
    except (cli.CliError, BuildError, UnknownConfigError, PrecisionError, WeightError, FileNotFoundError,
            OSError, ValueError) as exc:
        print(f"trtnet.build: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.output} ({len(built.data) / 2**20:.1f} MiB) and {sidecar_file.name} "
          f"in {time.perf_counter() - start:.0f} s")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
