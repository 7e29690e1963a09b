"""``python -m weights_convert IN.pth OUT.safetensors [--config NAME] [--dtype fp32|fp16]``."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .converter import convert
from .errors import ConverterError


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m weights_convert",
        description="Convert a PyTorch yolact_edge checkpoint (.pth) to safetensors without "
                    "torch. Refuses pickles that reference anything but tensor data.")
    parser.add_argument("input", help="checkpoint written by torch.save (.pth)")
    parser.add_argument("output", help="safetensors file to write (atomically)")
    from trtnet.config import CONFIGS
    parser.add_argument("--config", metavar="NAME",
                        help="yolact_edge config the checkpoint must match (default: recognise "
                             "it from the keys and shapes); one of: " + ", ".join(CONFIGS))
    parser.add_argument("--dtype", choices=("fp32", "fp16"),
                        help="cast floating tensors (default: keep float32/float16, "
                             "bfloat16 and float64 become float32)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument("--version", action="version", version=f"weights_convert {__version__}")
    args = parser.parse_args(argv)
    try:
        result = convert(args.input, args.output, config=args.config, dtype=args.dtype)
    except ConverterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; no output written", file=sys.stderr)
        return 130
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not args.quiet:
        for n in result.notes:
            print(f"note: {n}")
        config = result.config or f"none (closest: {result.closest_config})"
        print(f"wrote {result.output}: {result.tensors} tensors, "
              f"{result.bytes_written / 1e6:.1f} MB, config {config}, "
              f"source {result.source_format} sha256 {result.source_sha256[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
