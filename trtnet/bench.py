"""``python -m trtnet.bench NAME``: benchmarks that print figures (never assert on time).

Each benchmark is a module ``trtnet.benchmarks.NAME`` with ``add_arguments(parser)`` and
``run(args) -> int``; this dispatcher only finds them, so adding one touches one file.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys

import trtnet.benchmarks as _benchmarks


def available() -> list[str]:
    """Names of the benchmark modules shipped with trtnet."""
    return sorted(m.name for m in pkgutil.iter_modules(_benchmarks.__path__)
                  if not m.name.startswith("_"))


EXAMPLES = (
    "python -m trtnet.bench kernels --arch 87 120 --repeat 20",
    "python -m trtnet.bench emulator --config yolact_edge_mobilenetv2 --profile",
    "python -m trtnet.bench runtime --frames 1000 --batch 1 4   # frame-loop host cost, Python and C++",
    "python -m trtnet.bench NAME --help        # the options of one benchmark",
)


def plain(doc: str) -> str:
    """A docstring as help text: reStructuredText roles and literals become plain text."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc or "")
    return text.replace("``", "").strip()


def main(argv: list[str] | None = None) -> int:
    from trtnet import cli

    parser = cli.make_parser("python -m trtnet.bench",
                             "Benchmarks that print figures (speed, registers, memory); none asserts on "
                             "time. Each NAME below has its own --help.", EXAMPLES)
    sub = parser.add_subparsers(dest="name", metavar="NAME", required=True)
    for name in available():
        module = importlib.import_module(f"trtnet.benchmarks.{name}")
        doc = plain(module.__doc__ or "")
        summary = doc.split("\n\n")[0].replace("\n", " ")
        examples = getattr(module, "EXAMPLES", (f"python -m trtnet.bench {name}",))
        p = sub.add_parser(name, help=summary, description=doc, epilog=cli.examples_epilog(examples))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return cli.run(f"trtnet.bench {args.name}", lambda: args._run(args), (ImportError, OSError, RuntimeError))


# Each benchmark module may define EXAMPLES (command lines for its --help); its errors for bad
# input are cli.CliError, printed "trtnet.bench NAME: error: ..." like every command's.


if __name__ == "__main__":
    sys.exit(main())
