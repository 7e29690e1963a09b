"""C++ runtime skeleton (csrc/runtime): its tensor-name constants are trtnet/names.py's,
and it compiles against every TensorRT header set found (it cannot link here: no
libnvinfer)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import trt_headers
from test_plugins_lifecycle import compiler
from trtnet import names

REPO = Path(__file__).resolve().parent.parent
HEADER = REPO / "csrc" / "runtime" / "trtnet_runtime.h"


def test_cpp_tensor_names_match_names_py():
    constants = dict(re.findall(r'constexpr char const\* (k\w+) = "([^"]+)";', HEADER.read_text()))
    expected = {"kInput": names.INPUT, "kProto": names.PROTO, "kDetCount": names.DET_COUNT,
                "kDetBoxes": names.DET_BOXES, "kDetScores": names.DET_SCORES,
                "kDetClasses": names.DET_CLASSES, "kDetCoeffs": names.DET_COEFFS}
    assert constants == expected


@trt_headers.params()
def test_runtime_and_example_compile_against_headers(major):
    include = trt_headers.header_set(major)
    cxx, flags = compiler()
    cmd = [cxx, *flags, "-fsyntax-only", "-isystem", str(include), "-I", str(REPO / "csrc" / "runtime"),
           str(REPO / "csrc/runtime/trtnet_runtime.cpp"), str(REPO / "csrc/runtime/example_detect.cpp")]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
