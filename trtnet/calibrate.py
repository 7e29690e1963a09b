"""``python -m trtnet.calibrate``: int8 activation ranges for a precision plan, written as a cache.

    python -m trtnet.calibrate --weights model.safetensors --images calib_dir/ \\
        [--config NAME] [--precision-plan int8_all] [--method entropy|max] \\
        [--max-images 100] -o calibration.json
    python -m trtnet.build ... --precision-plan int8_backbone_fpn --calibration-cache calibration.json

The machinery (histograms, entropy thresholds, the cache) is :mod:`trtnet.precision.calibration`.
"""


from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


from trtnet.config import UnknownConfigError, get_config
from trtnet.precision import (
    PRESETS,
    PrecisionError,
    as_plan,
)
from trtnet.network.weights import WeightError

from trtnet.precision.calibration import (  # noqa: F401 (re-exported for callers of trtnet.calibrate)
    AbsHistogram,
    CACHE_FORMAT,
    CalibrationCache,
    CalibrationError,
    Calibrator,
    DEFAULT_PLAN,
    IMAGE_SUFFIXES,
    ImagesSource,
    METHODS,
    NUM_BINS,
    NUM_QUANTIZED_BINS,
    SMOOTHING_EPS,
    _smooth,
    calibrate,
    collect_histograms,
    entropy_amax,
    image_files,
    iter_images,
    kl_divergences,
    load_plan,
    required_tensors,
)


# -- CLI ------------------------------------------------------------------------------------


EXAMPLES = (
    "python -m trtnet.calibrate --weights r50.safetensors --images calib/ -o r50.calib.json",
    "python -m trtnet.calibrate --weights r50.safetensors --images calib/ --method max --max-images 20 "
    "-o r50.max.json",
    "python -m trtnet.build --weights r50.safetensors --precision-plan int8_backbone_fpn "
    "--calibration-cache r50.calib.json -o r50.int8.engine",
)


def make_parser() -> argparse.ArgumentParser:
    from trtnet import cli

    p = cli.make_parser(
        "python -m trtnet.calibrate",
        "Calibrate int8 activation ranges (TensorRT-style entropy calibration on the fp32 NumPy "
        "emulator) and write a cache for python -m trtnet.build --calibration-cache.", EXAMPLES)
    cli.add_weights(p)
    p.add_argument("--images", required=True, type=Path, metavar="DIR",
                   help="folder of calibration images (jpg/png/...; any size, resized by the network)")
    cli.add_config(p)
    p.add_argument("--precision-plan", "--precision", dest="precision", default=DEFAULT_PLAN, metavar="PLAN",
                   type=cli.precision_plan_arg,
                   help=f"int8 plan to calibrate: a preset ({', '.join(n for n, v in PRESETS.items() if v.uses_int8)}) "
                        f"or e.g. 'fp16,backbone=int8' (default {DEFAULT_PLAN}: ranges for every plan)")
    p.add_argument("--method", choices=METHODS, default="entropy",
                   help="entropy: KL-divergence threshold (TensorRT's entropy calibrator); max: |max|")
    p.add_argument("--max-images", type=int, default=100, metavar="N",
                   help="use at most this many images (default 100)")
    cli.add_output(p, "calibration cache (.json) to write")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from trtnet import cli

    parser = make_parser()
    args = parser.parse_args(argv)
    if args.max_images < 1:
        parser.error("--max-images must be >= 1")

    def run() -> int:
        if args.config is not None:
            get_config(args.config)
        plan = as_plan(args.precision)
        cli.input_file(args.weights, "weights file")
        cli.output_file(args.output, "calibration cache", suffixes=(".json",), inputs=[args.weights])
        image_files(args.images)  # a bad folder is reported before loading the weights
        store = cli.load_weights(args.weights)
        print(f"calibrating {plan} ({args.method}) on up to {args.max_images} images of {args.images} "
              f"-> {args.output}", file=sys.stderr)
        cache = calibrate(store, args.config, args.images, plan=plan, method=args.method,
                          max_images=args.max_images, progress=lambda m: print(m, file=sys.stderr))
        cache.save(args.output)
        print(f"wrote {args.output} ({len(cache.amax)} tensor ranges, {cache.config}, {cache.method}, "
              f"{cache.num_images} images, {cache.seconds:.0f} s)")
        print(cache.clipping_summary())
        return 0

    return cli.run("trtnet.calibrate", run, (CalibrationError, UnknownConfigError, PrecisionError, WeightError,
                                             OSError))


if __name__ == "__main__":
    sys.exit(main())
