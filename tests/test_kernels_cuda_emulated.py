"""The CUDA kernels themselves (plugins/*/*.cu), run on the CPU, match the CPU twins bit
for bit: there is no GPU here, so the .cu files are compiled by g++ against
plugins/tests/cuda_emu/cuda_runtime.h, which runs each block as blockDim real threads
(__syncthreads, warp ballots and shared-memory atomics really interleave). This checks
the kernels' own logic -- radix select, bitonic sort, ballot scans, barrier placement --
not only the shared math headers. The rewrite below turns `k<<<g, b, smem, s>>>(args)`
into emu::launch(...) and `extern __shared__` arrays into the block's dynamic buffer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EMU = REPO / "plugins" / "tests" / "cuda_emu"


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "(<["
        depth -= ch in ")>]"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def rewrite_cuda_source(text: str) -> str:
    """CUDA-only syntax of a .cu file -> calls into the emulation header."""
    text = re.sub(r"extern __shared__ __align__\(\d+\) unsigned char (\w+)\[\];",
                  r"unsigned char* \1 = emu::dynamic_smem();", text)

    def launch(m: re.Match) -> str:
        config = _split_top_level(m.group(2))
        grid, block, smem, stream = (config + ["0", "nullptr"][len(config) - 2:])[:4]
        return f"emu::launch({grid}, {block}, {smem}, {stream}, [=]() {{ {m.group(1)}({m.group(3)}); }});"

    text, count = re.subn(r"([\w:]+(?:<[\w:, ]*>)?)<<<(.*?)>>>\((.*?)\);", launch, text, flags=re.S)
    assert count > 0, "no kernel launch found"
    return text


def test_rewrite_turns_launches_into_emulator_calls():
    src = "k<T><<<dim3(a, b), 256, smem, stream>>>(p, x,\n y);\nextern __shared__ __align__(16) unsigned char buf[];"
    out = rewrite_cuda_source(src)
    assert "emu::launch(dim3(a, b), 256, smem, stream, [=]() { k<T>(p, x,\n y); });" in out
    assert "unsigned char* buf = emu::dynamic_smem();" in out


@pytest.fixture(scope="module")
def emulated(tmp_path_factory) -> Path:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.fail("no C++ compiler (g++ / clang++ / $CXX) for the CUDA emulation", pytrace=False)
    out = tmp_path_factory.mktemp("cuda_emu")
    sources = []
    for cu in sorted((REPO / "plugins").glob("*/*.cu")):
        dst = out / f"{cu.stem}_emulated.cpp"
        dst.write_text(f'#line 1 "{cu}"\n' + rewrite_cuda_source(cu.read_text()))
        sources.append(str(dst))
    exe = out / "emu_driver"
    cmd = [cxx, "-std=c++20", "-O1", "-pthread", "-ffp-contract=off",
           "-I", str(EMU), "-I", str(REPO / "plugins"),
           "-I", str(REPO / "plugins" / "inverse_warp"), "-I", str(REPO / "plugins" / "fast_nms"),
           *sources, str(EMU / "emu_driver.cpp"),
           str(REPO / "plugins" / "inverse_warp" / "inverse_warp_host.cpp"),
           str(REPO / "plugins" / "fast_nms" / "fast_nms_host.cpp"), "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"emulated kernel build failed:\n{build.stderr[-4000:]}"
    return exe


def test_emulated_kernels_are_bit_identical_to_the_cpu_twins(emulated):
    run = subprocess.run([str(emulated)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert sum(line.endswith("identical") for line in lines) == 24, run.stdout  # 12 cases x fp32 / fp16
    assert "emulated kernels: all identical to the CPU twins" in run.stdout
