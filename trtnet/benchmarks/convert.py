"""Checkpoint conversion speed (.pth -> safetensors) next to a plain copy of the same file.

Both are timed in the same run on the same file (page cache warm), alternately, best of
--repeat; the goal is a conversion within 3x of the copy. Peak memory of one conversion
is measured with tracemalloc (numpy buffers included) and compared with the file size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import tracemalloc

EXAMPLES = (
    "python -m trtnet.bench convert --input yolact_edge_resnet50_54_800000.pth --repeat 3",
    "python -m trtnet.bench convert --dtype fp16 --durable",
)


def _default_input() -> str:
    """The vid_resnet50 reference weights, found from the current directory or the environment."""
    from trtnet import cli

    return str(cli.reference_case_dir("vid_resnet50", "--input") / "weights.pth")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", default=None,
                        help="checkpoint to convert (default: weights.pth of the vid_resnet50 reference case "
                             "under $TRTNET_REFERENCE_DIR, else ../shared/reference)")
    parser.add_argument("--dtype", choices=("fp32", "fp16"), default=None,
                        help="cast floating tensors (default: keep)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (best is kept)")
    parser.add_argument("--durable", action="store_true",
                        help="fsync both outputs (the CLI's default) instead of page-cache speed")


def _best_interleaved(fns, repeat: int) -> list[float]:
    """Best time of each function, run alternately so load changes hit them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def run(args: argparse.Namespace) -> int:
    from trtnet import cli
    from weights_convert import ConverterError, convert

    src = str(cli.input_file(args.input or _default_input(), "--input checkpoint"))
    size = os.path.getsize(src)
    mb = size / 1e6
    with tempfile.TemporaryDirectory(prefix="trtnet-bench-convert-") as tmp:
        copy_dst, out = os.path.join(tmp, "copy.pth"), os.path.join(tmp, "out.safetensors")

        def copy() -> None:
            shutil.copyfile(src, copy_dst)
            if args.durable:
                with open(copy_dst, "rb+") as f:
                    os.fsync(f.fileno())

        def conv() -> None:
            convert(src, out, dtype=args.dtype, durable=args.durable)

        try:
            conv()  # warm-up: page cache, imports
        except ConverterError as exc:
            raise cli.CliError(str(exc)) from None
        copy()
        t_copy, t_conv = _best_interleaved([copy, conv], args.repeat)
        out_mb = os.path.getsize(out) / 1e6
        tracemalloc.start()
        conv()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    print(f"input   {src} ({mb:.1f} MB) -> {out_mb:.1f} MB safetensors, dtype {args.dtype or 'keep'}"
          f"{', fsync' if args.durable else ''}")
    print(f"copy    {mb / t_copy:8.0f} MB/s  ({t_copy * 1e3:.1f} ms, best of {args.repeat})")
    print(f"convert {mb / t_conv:8.0f} MB/s  ({t_conv * 1e3:.1f} ms, best of {args.repeat}; "
          f"includes sha256 of the source)")
    print(f"ratio   convert takes {t_conv / t_copy:.2f}x the copy time (goal <= 3x)")
    print(f"memory  peak {peak / 1e6:.1f} MB traced during one conversion "
          f"({peak / size:.2f}x the checkpoint)")
    return 0
