"""``trtnet COMMAND ...`` (and ``python -m trtnet COMMAND ...``): every command as a subcommand.

The same commands as ``python -m trtnet.X`` (which stay, as scripts use them), in kebab case,
like Polygraphy's ``polygraphy run|inspect|convert``: ``trtnet build --help`` is
``python -m trtnet.build --help``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

from trtnet import __version__

# subcommand -> (module with main(argv), one line of help)
COMMANDS = {
    "convert": ("weights_convert.__main__", "convert an upstream .pth checkpoint to safetensors"),
    "build": ("trtnet.build", "build a TensorRT engine (or --dry-run: what it would contain)"),
    "calibrate": ("trtnet.calibrate", "int8 activation ranges for a precision plan"),
    "infer": ("trtnet.infer", "segment images, videos, folders or a camera"),
    "verify": ("trtnet.verify", "compare with upstream's reference outputs"),
    "eval": ("trtnet.eval", "COCO box and mask AP"),
    "bench": ("trtnet.bench", "benchmarks that print figures"),
    "doctor": ("trtnet.doctor", "check a machine: versions, GPU, plugins, kernels"),
    "export-triton": ("trtnet.export_triton", "write a Triton model repository"),
}

USAGE = "usage: trtnet [--version] COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(
    f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()) + (
    "\n\nexamples:\n  trtnet build --weights r50.safetensors --precision-plan fp16 -o r50.engine\n"
    "  trtnet export-triton --help\n\n"
    "exit status: 0 ok; 1 a check failed or an error (message on stderr); 2 usage error")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        print(f"trtnet {__version__}")
        return 0
    name = args[0].replace("_", "-")
    if name not in COMMANDS:
        print(f"trtnet: error: unknown command {args[0]!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
