"""`python -m trtnet.bench kernels` prints a register / spill line for every kernel and
architecture asked for, and the CPU-twin timings (figures are printed, never asserted)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KERNELS = ("nms::candidate_flags_kernel<float>", "nms::compact_kernel", "nms::class_nms_kernel<half_t>",
           "nms::final_kernel<float>", "warp::inverse_warp_kernel<float>", "warp::inverse_warp_kernel<half_t>",
           "masks::lowres_kernel<float,float>", "masks::lowres_kernel<half_t,half_t>",
           "masks::resize_kernel<float,false>", "masks::resize_kernel<half_t,true>")


def test_register_report_and_twin_timings(tmp_path):
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if nvcc is None:
        pytest.fail("nvcc not found: CI compiles the kernels, so it must be there", pytrace=False)
    run = subprocess.run([sys.executable, "-m", "trtnet.bench", "kernels", "--arch", "87", "--repeat", "1",
                          "--source-dir", str(REPO / "plugins"), "--nvcc", nvcc],
                         capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)  # not the source tree: test the installed package
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [line.split() for line in run.stdout.splitlines() if " sm_87 " in line]
    assert {r[0] for r in rows} >= set(KERNELS)
    assert all(r[3] == "0/0" for r in rows), run.stdout  # no register spills
    assert "0 with register spills" in run.stdout
    assert "inverse_warp float16 [1,256,35,35]" in run.stdout and "fast_nms float32 A=19248 C=81" in run.stdout
    assert "assemble_masks float32 100 dets 1280x720" in run.stdout
    assert "mask assembly roofline 100 dets 1280x720: 109.8 MB at 204.8 GB/s" in run.stdout
