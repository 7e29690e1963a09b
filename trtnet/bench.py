"""``python -m trtnet.bench NAME``: benchmarks that print figures (never assert on time).

Each benchmark is a module ``trtnet.benchmarks.NAME`` with ``add_arguments(parser)`` and
``run(args) -> int``; this dispatcher only finds them, so adding one touches one file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import trtnet.benchmarks as _benchmarks


def available() -> list[str]:
    """Names of the benchmark modules shipped with trtnet."""
    return sorted(m.name for m in pkgutil.iter_modules(_benchmarks.__path__)
                  if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trtnet.bench", description=__doc__)
    sub = parser.add_subparsers(dest="name", metavar="NAME", required=True)
    for name in available():
        module = importlib.import_module(f"trtnet.benchmarks.{name}")
        summary = (module.__doc__ or "").strip().splitlines()[0:1]
        p = sub.add_parser(name, help=summary[0] if summary else None,
                           description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
