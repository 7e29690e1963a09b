"""``python -m trtnet.build``: build a TensorRT engine of a YolactEdge model.

    python -m trtnet.build --config yolact_edge_resnet50 --weights model.safetensors \\
        --output yolact_edge_resnet50.engine [--precision-plan fp16] \\
        [--min-frame 64x64 --opt-frame 480x640 --max-frame 1080x1920]

int8 plans (presets int8_backbone, int8_backbone_fpn, int8_all, upstream) need calibrated ranges:
``python -m trtnet.calibrate ... -o cache.json``, then ``--calibration-cache cache.json``.

The network is strongly typed (the precision plan chooses every type); the frame input
has dynamic height and width covered by one optimization profile. The engine file is
written atomically (temporary file + rename). Needs the real TensorRT (10.3+) and the
compiled trtnet plugin library.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from trtnet import names
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


def build_engine(
    trt: Any, weights: Any, config: Any, *, plan: Optional[PrecisionPlan] = None,
    min_frame: tuple[int, int] = DEFAULT_MIN_FRAME, opt_frame: tuple[int, int] = DEFAULT_OPT_FRAME,
    max_frame: tuple[int, int] = DEFAULT_MAX_FRAME, workspace_mib: Optional[int] = None,
    logger: Any = None, nonkeyframe: bool = False,
) -> bytes:
    """Serialized engine of ``config`` with ``weights`` (a WeightStore or file).

    ``nonkeyframe``: the video engine (partial backbone + flow warp of the keyframe state)
    instead of the keyframe one. Its state inputs have static shapes, so the optimization
    profile covers the frame alone in both cases.
    """
    from trtnet.network.yolact_edge import build_keyframe, build_nonkeyframe

    if not (min_frame[0] <= opt_frame[0] <= max_frame[0] and min_frame[1] <= opt_frame[1] <= max_frame[1]):
        raise BuildError(f"frame sizes must satisfy min <= opt <= max, got {min_frame}, {opt_frame}, {max_frame}")
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

    profile = builder.create_optimization_profile()
    profile.set_shape(names.INPUT, (1, *min_frame, 3), (1, *opt_frame, 3), (1, *max_frame, 3))
    builder_config = builder.create_builder_config()
    if builder_config.add_optimization_profile(profile) < 0:
        raise BuildError(f"invalid optimization profile {min_frame} / {opt_frame} / {max_frame}")
    if workspace_mib is not None:
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    serialized = builder.build_serialized_network(network, builder_config)
    del tensors
    if serialized is None:
        raise BuildError("TensorRT failed to build the engine; see the TensorRT log above")
    return bytes(memoryview(serialized))


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


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trtnet.build",
        description="Build a TensorRT engine of a YolactEdge model: the keyframe (image) network, "
                    "or with --nonkeyframe the video network that warps a keyframe's features.",
    )
    p.add_argument("--config", default=None,
                   help="config name, e.g. yolact_edge_resnet50 (default: recognised from the weights)")
    p.add_argument("--weights", required=True, type=Path, help=".safetensors (or .pth) checkpoint")
    p.add_argument("--output", "-o", required=True, type=Path, help="engine file to write")
    p.add_argument("--precision-plan", "--precision", dest="precision", default="fp32",
                   help=f"precision plan: a preset ({', '.join(PRESETS)}) or e.g. "
                        "'fp16,backbone=int8,head=fp32' (default fp32)")
    p.add_argument("--calibration-cache", type=Path, default=None, metavar="JSON",
                   help="int8 activation ranges from python -m trtnet.calibrate (needed by int8 plans)")
    p.add_argument("--min-frame", type=parse_frame_size, default=DEFAULT_MIN_FRAME, metavar="HxW")
    p.add_argument("--opt-frame", type=parse_frame_size, default=DEFAULT_OPT_FRAME, metavar="HxW")
    p.add_argument("--max-frame", type=parse_frame_size, default=DEFAULT_MAX_FRAME, metavar="HxW")
    p.add_argument("--workspace", type=int, default=None, metavar="MiB", help="builder workspace limit")
    p.add_argument("--nonkeyframe", action="store_true",
                   help="build the non-keyframe (video) engine; needs a video config (flow net)")
    p.add_argument("--plugin-library", type=Path, default=None,
                   help="libtrtnet_plugins.so (default: found by trtnet.plugins.library_path())")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.config is not None:
            get_config(args.config)  # an unknown name is reported before loading anything
        plan = as_plan(args.precision)
        if not args.weights.is_file():
            raise BuildError(f"weights file not found: {args.weights}")
        store = WeightStore.load(args.weights)
        config = resolve_config(store, args.config)
        if args.nonkeyframe and not config.is_video:
            raise BuildError(f"--nonkeyframe needs a video config with a flow net; {config.name} has none")
        plan = calibrated_plan(plan, store, config, args)
        trt = import_tensorrt()
        from trtnet import plugins

        plugins.load(args.plugin_library)
        start = time.perf_counter()
        data = build_engine(
            trt, store, config, plan=plan, min_frame=args.min_frame,
            opt_frame=args.opt_frame, max_frame=args.max_frame, workspace_mib=args.workspace,
            nonkeyframe=args.nonkeyframe,
        )
        write_atomically(args.output, data)
    except (BuildError, UnknownConfigError, PrecisionError, WeightError, FileNotFoundError, OSError,
            ValueError) as exc:
        print(f"trtnet.build: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({len(data) / 2**20:.1f} MiB, {config.name}, {plan}, "
          f"{time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
