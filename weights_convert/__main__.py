"""``python -m weights_convert IN.pth OUT.safetensors [--config NAME] [--dtype fp32|fp16]``."""

from __future__ import annotations

import sys

from . import __version__
from .converter import convert
from .errors import ConverterError

EXAMPLES = (
    "python -m weights_convert yolact_edge_resnet50_54_800000.pth r50.safetensors",
    "python -m weights_convert model.pth -o model.fp16.safetensors --dtype fp16 --config yolact_edge_mobilenetv2",
)


def make_parser():
    from trtnet import cli
    from trtnet.config import CONFIGS

    parser = cli.make_parser(
        "python -m weights_convert",
        "Convert a PyTorch yolact_edge checkpoint (.pth) to safetensors without torch. Refuses "
        "pickles that reference anything but tensor data.", EXAMPLES,
        version=f"weights_convert {__version__} (trtnet)")
    parser.add_argument("input", help="checkpoint written by torch.save (.pth)")
    parser.add_argument("output", nargs="?", default=None,
                        help="safetensors file to write (atomically); or give it with -o")
    parser.add_argument("-o", "--output", dest="output_flag", default=None, metavar="FILE",
                        help="the safetensors file to write, as a flag (same as the second argument)")
    parser.add_argument("--config", metavar="NAME",
                        help="yolact_edge config the checkpoint must match (default: recognise "
                             "it from the keys and shapes); one of: " + ", ".join(CONFIGS))
    parser.add_argument("--dtype", choices=("fp32", "fp16"),
                        help="cast floating tensors (default: keep float32/float16, "
                             "bfloat16 and float64 become float32)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only (no notes, warnings or summary)")
    return parser


def main(argv: "list[str] | None" = None) -> int:
    from trtnet import cli

    parser = make_parser()
    args = parser.parse_args(argv)
    if args.output is not None and args.output_flag is not None and args.output != args.output_flag:
        parser.error(f"two outputs given ({args.output} and -o {args.output_flag}); give one")
    output = args.output or args.output_flag
    if output is None:
        parser.error("give the output file (second argument or -o FILE)")

    def run() -> int:
        cli.input_file(args.input, "checkpoint")
        cli.output_file(output, "output", suffixes=(".safetensors",), inputs=[args.input])
        result = convert(args.input, output, config=args.config, dtype=args.dtype)
        if not args.quiet:
            for w in result.warnings:
                print(f"warning: {w}", file=sys.stderr)
            for n in result.notes:
                print(f"note: {n}")
            config = result.config or f"none (closest: {result.closest_config})"
            print(f"wrote {result.output}: {result.tensors} tensors, "
                  f"{result.bytes_written / 1e6:.1f} MB, config {config}, "
                  f"source {result.source_format} sha256 {result.source_sha256[:12]}")
        return 0

    return cli.run("weights_convert", run, (ConverterError, OSError))


if __name__ == "__main__":
    sys.exit(main())
