"""The plugins' CPU twins run their edge cases clean under AddressSanitizer and
UndefinedBehaviorSanitizer (plugins/tests/host_twin_edge_cases.cpp, built here with
-fsanitize=address,undefined -fno-sanitize-recover=all: any report aborts the run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = [
    "plugins/tests/host_twin_edge_cases.cpp",
    "plugins/inverse_warp/inverse_warp_host.cpp",
    "plugins/fast_nms/fast_nms_host.cpp",
]


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.fail("no C++ compiler (g++ / clang++ / $CXX) to build the sanitizer driver", pytrace=False)
    exe = tmp_path_factory.mktemp("asan") / "host_twin_edge_cases"
    cmd = [cxx, "-std=c++17", "-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-fno-omit-frame-pointer", "-ffp-contract=off", "-I", str(REPO / "plugins"),
           *[str(REPO / s) for s in SOURCES], "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"sanitizer build failed:\n{build.stderr[-4000:]}"
    return exe


def test_edge_cases_run_clean_under_asan_and_ubsan(driver):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(driver)], capture_output=True, text=True, env=env, timeout=300)
    report = run.stdout[-3000:] + run.stderr[-3000:]
    assert "runtime error" not in run.stderr, report
    assert "ERROR: AddressSanitizer" not in run.stderr, report
    assert run.returncode == 0, report
    assert "edge cases: all passed" in run.stdout
    assert "half round trip of all 65536 patterns: 0 mismatches" in run.stdout
