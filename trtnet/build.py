"""``python -m trtnet.build``: build a TensorRT engine of a YolactEdge model.

    python -m trtnet.build --config yolact_edge_resnet50 --weights model.safetensors \\
        --output yolact_edge_resnet50.engine [--precision-plan fp16] \\
        [--min-frame 64x64 --opt-frame 480x640 --max-frame 1080x1920]

int8 plans (presets int8_backbone, int8_backbone_fpn, int8_all, upstream) need calibrated ranges:
``python -m trtnet.calibrate ... -o cache.json``, then ``--calibration-cache cache.json``.

The network is strongly typed (the precision plan chooses every type); the frame input
has a dynamic batch (``--max-batch N``: profile 1..N), height and width, covered by one
optimization profile. TF32 is cleared (TensorRT enables it by default) unless ``--tf32``.
The engine file and its JSON sidecar (``ENGINE.json``, :mod:`trtnet.builder.sidecar`) are
written atomically (temporary file + rename); ``--timing-cache FILE`` is shared by
concurrent builds (:mod:`trtnet.builder.timing_cache`). Needs the real TensorRT (10.3+) and the
compiled trtnet plugin library; without TensorRT, or with ``--dry-run``, the network is
built on the emulator and its plan printed (:mod:`trtnet.builder.plan_summary`), exit code 3 / 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from trtnet import cli
from trtnet.config import UnknownConfigError, get_config
from trtnet.media.files import write_atomically
from trtnet.precision import PRESETS, PrecisionError, PrecisionPlan, as_plan
from trtnet.network.weights import WeightError

from trtnet.builder.engine import (  # noqa: F401 (the build machinery; re-exported for callers of trtnet.build)
    BuildError,
    BuilderSettings,
    BuiltEngine,
    DEFAULT_MAX_FRAME,
    DEFAULT_MIN_FRAME,
    DEFAULT_OPT_FRAME,
    PROFILING_VERBOSITY,
    build,
    build_engine,
    check_frame_range,
    configure_builder,
    import_tensorrt,
    parse_frame_size,
    profile_shapes,
    resolve_config,
)


def calibrated_plan(plan: PrecisionPlan, store: Any, config: Any, args: argparse.Namespace) -> PrecisionPlan:
    """``plan`` with the ranges of ``--calibration-cache`` (checked against the network);
    an int8 plan without a cache is an error saying how to make one."""
    from trtnet.precision.calibration import load_plan

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
    p = cli.Parser(  # --version, and usage errors as "trtnet.build: error: ..." (exit 2)
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
    p.add_argument("--precision-plan", "--precision", dest="precision", default="fp32", type=cli.precision_plan_arg,
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
    p.add_argument("--max-batch", type=cli.positive_int, default=1, metavar="N",
                   help="frames per call (e.g. one per camera): the profile covers batches 1..N, "
                        "tuned for N (default 1)")
    p.add_argument("--workspace", type=cli.positive_int, default=None, metavar="MiB", help="builder workspace limit")
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
    from trtnet.builder.plan_summary import dry_run_report

    network = emulator.Network()
    (build_nonkeyframe if args.nonkeyframe else build_keyframe)(network, emulator.trt, store, config, plan=plan)
    shapes = profile_shapes(network, args.min_frame, args.opt_frame, args.max_frame, args.max_batch)
    kind = "non-keyframe (video)" if args.nonkeyframe else "keyframe"
    title = (f"trtnet.build dry run: {config.name} {kind} network, built on trtnet's emulator "
             f"({network.num_layers} layers)")
    notes = [*notes, f"the network resizes every frame to {config.max_size}x{config.max_size} inside: MACs do "
                     "not depend on the frame size (the opt frame only sets the profile)"]
    from trtnet.builder.sidecar import target_gpu

    return dry_run_report(network, emulator.trt, plan, title=title, profile=shapes, batch=args.max_batch,
                          notes=notes, gpu=target_gpu(args.output))  # -o's sidecar's GPU, else this one


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        check_frame_range(args.min_frame, args.opt_frame, args.max_frame)
    except BuildError as exc:  # the flags contradict each other: a usage error
        parser.error(f"--min-frame/--opt-frame/--max-frame: {exc}")
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
        from trtnet.builder.sidecar import describe, write_sidecar

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
