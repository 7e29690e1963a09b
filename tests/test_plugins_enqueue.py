"""Both plugins' enqueue(), with the CUDA kernels compiled for the CPU (tests/cuda_emu),
equal the CPU twins bit for bit: descriptors -> sizes, dtype, optional scale / bias,
workspace sized from a larger profile maximum (plugins/tests/plugin_enqueue_test.cpp)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from test_kernels_cuda_emulated import EMU, rewrite_cuda_source
import trt_headers
from test_plugins_lifecycle import PLUGIN_SOURCES, compiler

REPO = Path(__file__).resolve().parent.parent


@trt_headers.params()
def test_enqueue_matches_twins(major, tmp_path):
    include = trt_headers.header_set(major)
    cxx, flags = compiler()
    objects = []
    for cu in sorted((REPO / "plugins").glob("*/*.cu")):  # kernels: fake CUDA runtime, no TensorRT
        src = tmp_path / f"{cu.stem}_emulated.cpp"
        src.write_text(f'#line 1 "{cu}"\n' + rewrite_cuda_source(cu.read_text()))
        obj = tmp_path / f"{cu.stem}_emulated.o"
        cmd = [cxx, "-std=c++20", "-O1", "-pthread", "-ffp-contract=off", "-I", str(EMU), "-I", str(REPO / "plugins"),
               "-I", str(cu.parent), "-c", str(src), "-o", str(obj)]
        build = subprocess.run(cmd, capture_output=True, text=True)
        assert build.returncode == 0, build.stderr[-4000:]
        objects.append(str(obj))
    plugin_sources = [str(REPO / s) for s in PLUGIN_SOURCES if "launcher_stubs" not in s]
    exe = tmp_path / "enqueue"
    cmd = [cxx, *flags, "-pthread", "-isystem", str(include), str(REPO / "plugins/tests/plugin_enqueue_test.cpp"),
           *plugin_sources, *objects, "-ldl", "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sum(line.endswith("identical") for line in run.stdout.splitlines()) == 11, run.stdout
    # the input count comes from the serialized num_inputs field when onShapeChange never ran
    assert sum("(deserialized, no onShapeChange): identical" in line for line in run.stdout.splitlines()) == 3
