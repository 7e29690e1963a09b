"""``trtnet export-triton`` (or ``trtnet.export_triton``): a Triton Inference Server
model repository for many camera streams, video state included (video configs), or serving the
keyframe engine alone, every frame a keyframe (image configs). See trtnet.triton.export."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from trtnet import cli

EXAMPLES = (
    "trtnet export-triton -o models --keyframe-engine vid.engine --nonkeyframe-engine vid.nonkey.engine",
    "trtnet export-triton -o models --keyframe-engine vid.engine --nonkeyframe-engine vid.nonkey.engine "
    "--plugin-library build/libtrtnet_plugins.so --max-streams 16 --idle-timeout 30",
    "trtnet export-triton -o models --keyframe-engine yolact_plus_resnet50.engine   # image config: keyframes only",
    "trtnet export-triton -o models --backend emulator --weights vid_r50.safetensors   # CPU test mode",
)


def make_parser():
    p = cli.make_parser("trtnet export-triton",
                        "Write a Triton model repository: keyframe and non-keyframe models (TensorRT plans, or "
                        "the emulator in the CPU test mode) and an orchestrator that keeps each stream's video "
                        "state; for an image config the keyframe model alone, every frame a keyframe.", EXAMPLES)
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                   help="the repository folder to write (must not exist, unless --overwrite)")
    p.add_argument("--backend", choices=("tensorrt", "emulator"), default=None,
                   help="tensorrt: serve the given engines (default with --keyframe-engine); emulator: CPU test "
                        "mode, Python models running trtnet's emulator (needs --weights)")
    p.add_argument("--keyframe-engine", type=Path, metavar="FILE",
                   help="keyframe engine (python -m trtnet.build), with its .json sidecar")
    cli.add_nonkeyframe_engine(p, "non-keyframe engine (python -m trtnet.build --nonkeyframe), with its .json "
                                  "sidecar; video configs only")
    p.add_argument("--plugin-library", type=Path, metavar="FILE",
                   help="libtrtnet_plugins.so to ship in REPO/plugins (default: the one trtnet was built with)")
    cli.add_weights(p, required=False, help="checkpoint for --backend emulator (.safetensors or upstream .pth)")
    cli.add_config(p)
    p.add_argument("--precision-plan", "--precision", dest="precision", default=None, type=cli.precision_plan_arg,
                   metavar="PLAN",
                   help="precision plan of the emulated models (--backend emulator; default fp32)")
    p.add_argument("--name", default="yolact_edge", help="name of the model clients call (default yolact_edge)")
    cli.add_keyframe_interval(p)
    p.add_argument("--motion-threshold", type=float, default=None, metavar="M",
                   help="adaptive keyframes (video configs): a keyframe after a non-keyframe whose motion is above M")
    p.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="forget a stream not seen for this long (default 60)")
    p.add_argument("--max-streams", type=int, default=8, metavar="N",
                   help="frames of up to N streams handled in one orchestrator call (default 8)")
    p.add_argument("--max-batch", type=int, default=4, metavar="N",
                   help="--backend emulator: the emulated models' max_batch_size (default 4)")
    p.add_argument("--instances", type=int, default=1, metavar="N", help="instances of each model (default 1)")
    p.add_argument("--queue-delay-us", type=int, default=2000, metavar="US",
                   help="dynamic batcher's max queue delay in microseconds (default 2000)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing repository folder")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from trtnet.config import UnknownConfigError, get_config
    from trtnet.precision import PrecisionError
    from trtnet.triton.export import (ExportError, ExportSettings, emulated_model, engine_model,
                                      write_repository)
    from trtnet.network.weights import WeightError

    parser = make_parser()
    args = parser.parse_args(argv)
    engines = [f for f in ("keyframe_engine", "nonkeyframe_engine") if getattr(args, f) is not None]
    backend = args.backend or ("emulator" if args.weights is not None and not engines else "tensorrt")
    if backend == "emulator":
        if engines:
            parser.error(f"--{engines[0].replace('_', '-')} contradicts --backend emulator (it runs the weights)")
        if args.weights is None:
            parser.error("--backend emulator needs --weights")
    else:
        if args.keyframe_engine is None:
            parser.error("the tensorrt backend needs --keyframe-engine (and --nonkeyframe-engine for a video "
                         "config), or --backend emulator --weights FILE for the CPU test mode")
        if args.weights is not None or args.precision is not None:
            parser.error("--weights/--precision-plan belong to --backend emulator; engines carry their own")
    for flag in ("keyframe_interval", "max_streams", "max_batch", "instances"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    if not args.idle_timeout > 0 or args.queue_delay_us < 0:
        parser.error("--idle-timeout must be > 0 and --queue-delay-us >= 0")
    if args.motion_threshold is not None and not args.motion_threshold >= 0:
        parser.error("--motion-threshold must be >= 0")

    def schedule_of(config) -> ExportSettings:
        """The settings once the config is known: an image config has no non-keyframe network, so
        only interval 1 and no adaptive keyframes (usage errors, as cli.keyframe_interval says)."""
        if not config.is_video and args.motion_threshold is not None:
            raise cli.CliError(f"--motion-threshold: {config.name} is an image config (no flow network, no "
                               "motion): every frame is a keyframe", cli.EXIT_USAGE)
        if config.is_video and backend != "emulator" and args.nonkeyframe_engine is None:
            raise cli.CliError(f"{config.name} is a video config: give its --nonkeyframe-engine too (python -m "
                               "trtnet.build --nonkeyframe)", cli.EXIT_USAGE)
        interval = cli.keyframe_interval(args.keyframe_interval, config, sequence=True)
        return ExportSettings(name=args.name, keyframe_interval=interval, motion_threshold=args.motion_threshold,
                              idle_timeout_s=args.idle_timeout, max_streams=args.max_streams,
                              instances=args.instances, queue_delay_us=args.queue_delay_us)

    def run() -> int:
        if args.output.exists() and not args.overwrite:  # refused before any work or message
            raise cli.CliError(f"-o {args.output} exists; choose another folder or pass --overwrite")
        if not args.output.parent.is_dir():
            raise cli.CliError(f"-o {args.output}: folder {args.output.parent} does not exist (it is not created)")
        start = time.perf_counter()
        plugin = None
        if backend == "emulator":
            from trtnet.network.weights import resolve_config

            cli.input_file(args.weights, "weights file")
            store = cli.load_weights(args.weights)
            config = resolve_config(store, args.config)
            settings = schedule_of(config)
            print(f"exporting {config.name} (emulator, {args.precision or 'fp32'}) to {args.output}", file=sys.stderr)
            key = emulated_model(args.weights, store, config, "keyframe", args.max_batch, args.precision)
            nonkey = (emulated_model(args.weights, store, config, "nonkeyframe", args.max_batch, args.precision)
                      if config.is_video else None)
        else:
            for f in engines:
                cli.input_file(getattr(args, f), f.replace("_", " "))
            key = engine_model(args.keyframe_engine, "keyframe")
            settings = schedule_of(get_config(key.config))
            nonkey = (engine_model(args.nonkeyframe_engine, "nonkeyframe")
                      if args.nonkeyframe_engine is not None else None)
            plugin = args.plugin_library or _default_plugin_library()
            if plugin is None:
                raise cli.CliError("no plugin library: pass --plugin-library (libtrtnet_plugins.so, built with "
                                   "nvcc and TensorRT's headers); the plans cannot run without it")
            cli.input_file(plugin, "plugin library")
            if key.max_batch == 0:
                print("note: the engines have a fixed batch of 1, so Triton cannot batch frames of several "
                      "streams; build them with python -m trtnet.build --max-batch N", file=sys.stderr)
        if backend != "emulator":  # the emulator path said so before building its networks
            print(f"exporting {key.config} (tensorrt engines) to {args.output}", file=sys.stderr)
        out = write_repository(args.output, key, nonkey, settings, emulated=backend == "emulator",
                               plugin_library=plugin, overwrite=args.overwrite)
        models = ", ".join([args.name, f"{args.name}_keyframe"] + ([f"{args.name}_nonkeyframe"] if nonkey else []))
        print(f"wrote {out} (models {models}) in "
              f"{time.perf_counter() - start:.1f} s; see {out / 'README.md'}")
        return 0

    return cli.run(parser.prog, run, (ExportError, UnknownConfigError, PrecisionError, WeightError, OSError))


def _default_plugin_library() -> Optional[Path]:
    from trtnet.plugins import extension as _ext

    return Path(_ext.PLUGIN_LIBRARY) if _ext.PLUGIN_LIBRARY else None


if __name__ == "__main__":
    sys.exit(main())
