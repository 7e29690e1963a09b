"""Time of an int8 calibration on the emulator: fp32 passes + histograms, then range selection.

``python -m trtnet.bench calibrate [--config NAME] [--weights FILE] [--images N] [--size H W]
[--plan int8_all]`` -- random weights (trtnet.network.random_weights) and random
frames unless a checkpoint is given; prints seconds per image and for each method.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

DEFAULT_CONFIG = "yolact_edge_mobilenetv2"
EXAMPLES = (
    "python -m trtnet.bench calibrate --images 4 --size 240 320",
    "python -m trtnet.bench calibrate --weights mnv2.safetensors --precision-plan int8_backbone_fpn",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"config (default {DEFAULT_CONFIG})")
    parser.add_argument("--weights", default=None, help="checkpoint (default: random weights)")
    parser.add_argument("--images", type=int, default=2, help="number of random frames (default 2)")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"),
                        help="frame height and width of the random calibration frames (default 480 640)")
    parser.add_argument("--precision-plan", "--plan", dest="plan", default="int8_all", metavar="PLAN",
                        help="int8 plan (default int8_all)")


def run(args: argparse.Namespace) -> int:
    from trtnet.network.random_weights import random_weights
    from trtnet.precision.calibration import collect_histograms
    from trtnet.config import get_config
    from trtnet.precision import as_plan
    from trtnet.network.weights import WeightStore

    config = get_config(args.config)
    store = WeightStore.load(args.weights if args.weights else random_weights(config.name))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (*args.size, 3), dtype=np.uint8) for _ in range(args.images)]
    start = time.perf_counter()
    calibrator, count = collect_histograms(store, config, as_plan(args.plan), frames)
    passes = time.perf_counter() - start
    print(f"{config.name}, plan {args.plan}: {len(calibrator.histograms)} tensors, {count} frames "
          f"{args.size[0]}x{args.size[1]}")
    print(f"  fp32 passes + histograms: {passes:.2f} s ({passes / count:.2f} s per frame)")
    for method in ("entropy", "max"):
        t0 = time.perf_counter()
        calibrator.amax(method)
        took = time.perf_counter() - t0
        print(f"  {method:7s} ranges: {took:.2f} s ({1e3 * took / len(calibrator.histograms):.1f} ms per tensor)")
    return 0
