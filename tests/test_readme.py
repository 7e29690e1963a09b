"""The README's promises that a test can keep: two set-up commands, and the reduced-precision
``verify`` example on the random reference weights is one that passes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from trtnet import verify

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_set_up_is_exactly_two_commands():
    blocks = re.findall(r"```sh\n(.*?)```", _section("Set up"), re.S)
    assert [len(b.strip().splitlines()) for b in blocks] == [1, 1]


def test_the_documented_reduced_precision_verify_passes(reference_dir, capsys):
    section = _section("The reference weights are random")
    (command,) = re.findall(r"^python -m trtnet\.verify .*$", section, re.M)
    argv = [a.replace("../shared/reference", str(reference_dir)) for a in shlex.split(command)[3:]]
    assert "--precision-plan" in argv
    code = verify.main(argv)
    assert code == 0, capsys.readouterr().out[-3000:]
