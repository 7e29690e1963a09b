"""The mask assembly kernels (csrc/masks/mask_assembly.cu), run on the CPU through the CUDA
emulation (plugins/tests/cuda_emu: every block on blockDim real threads), write exactly the
CPU twin's bytes -- pitch padding and masks past the device count included -- over odd,
tiny and upstream-sized frames, fp16 inputs, degenerate boxes and non-finite prototypes
(csrc/masks/tests/mask_emu_driver.cpp). The twin's edge cases run clean under ASan / UBSan
(csrc/masks/tests/mask_twin_edge_cases.cpp). The twin equals upstream: tests/test_masks_twin.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_kernels_cuda_emulated import rewrite_cuda_source

REPO = Path(__file__).resolve().parent.parent
MASKS = REPO / "csrc" / "masks"
EMU = REPO / "plugins" / "tests" / "cuda_emu"
INCLUDES = ["-I", str(REPO / "plugins"), "-I", str(MASKS)]


def _cxx() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.fail("no C++ compiler (g++ / clang++ / $CXX)", pytrace=False)
    return cxx


def _build(cmd: list[str]) -> None:
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"build failed:\n{build.stderr[-4000:]}"


def test_emulated_kernels_write_the_twins_bytes(tmp_path):
    cu = MASKS / "mask_assembly.cu"
    emulated = tmp_path / "mask_assembly_emulated.cpp"
    emulated.write_text(f'#line 1 "{cu}"\n' + rewrite_cuda_source(cu.read_text()))
    exe = tmp_path / "mask_emu_driver"
    _build([_cxx(), "-std=c++20", "-O1", "-pthread", "-ffp-contract=off", "-I", str(EMU), *INCLUDES, str(emulated),
            str(MASKS / "mask_assembly_host.cpp"), str(MASKS / "tests" / "mask_emu_driver.cpp"), "-o", str(exe)])
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("masks ")]
    assert len(lines) == 21 and all(line.endswith("identical") for line in lines), run.stdout
    assert "emulated mask kernels: all identical to the CPU twin" in run.stdout


def test_twin_edge_cases_run_clean_under_asan_and_ubsan(tmp_path):
    exe = tmp_path / "mask_twin_edge_cases"
    _build([_cxx(), "-std=c++17", "-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-ffp-contract=off", *INCLUDES, str(MASKS / "tests" / "mask_twin_edge_cases.cpp"),
            str(MASKS / "mask_assembly_host.cpp"), "-o", str(exe)])
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=300)
    report = run.stdout[-3000:] + run.stderr[-3000:]
    assert "runtime error" not in run.stderr and "ERROR: AddressSanitizer" not in run.stderr, report
    assert run.returncode == 0, report
    assert "mask edge cases: all passed" in run.stdout
    assert run.stdout.count("reject ") == 16, run.stdout
