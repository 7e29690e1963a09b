"""tests/test_kernels_device.py -- the GPU test of trtnet._C's device launchers through
trtnet.plugins.extension's CuPy wrappers -- run here without a GPU: trtnet._C is rebuilt with its CUDA
launchers over the emulated kernels (plugins/tests/cuda_emu/cuda_runtime.h) and CuPy is
replaced by a NumPy stand-in (cuda_emu/fake_cupy.py). This checks the launch path from
Python down: argument order of the bindings, pointer and stream passing, workspace sizing,
output allocation, dtype handling."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from test_kernels_cuda_emulated import rewrite_cuda_source

REPO = Path(__file__).resolve().parent.parent
EMU = REPO / "plugins" / "tests" / "cuda_emu"


@pytest.fixture(scope="module")
def emulated_module(tmp_path_factory) -> Path:
    pybind11 = pytest.importorskip("pybind11", reason="pybind11 is needed to build the emulated module")
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.fail("no C++ compiler for the emulated trtnet._C", pytrace=False)
    out = tmp_path_factory.mktemp("emulated_C")
    sources = []
    for cu in sorted((REPO / "plugins").glob("*/*.cu")) + [REPO / "csrc" / "masks" / "mask_assembly.cu"]:
        dst = out / f"{cu.stem}_emulated.cpp"
        dst.write_text(f'#line 1 "{cu}"\n' + rewrite_cuda_source(cu.read_text()))
        sources.append(str(dst))
    module = out / f"_C{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = [cxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-ffp-contract=off", "-fvisibility=hidden",
           "-DTRTNET_WITH_CUDA=1", '-DTRTNET_CUDA_VERSION="emulated"', '-DTRTNET_CUDA_ARCHITECTURES="cpu"',
           "-I", pybind11.get_include(), "-I", sysconfig.get_paths()["include"], "-I", str(EMU),
           "-I", str(REPO / "plugins"), "-I", str(REPO / "plugins" / "inverse_warp"),
           "-I", str(REPO / "plugins" / "fast_nms"), "-I", str(REPO / "csrc" / "masks"),
           str(REPO / "csrc" / "bindings.cpp"), *sources, str(REPO / "csrc" / "masks" / "mask_assembly_host.cpp"),
           str(REPO / "plugins" / "inverse_warp" / "inverse_warp_host.cpp"),
           str(REPO / "plugins" / "fast_nms" / "fast_nms_host.cpp"), "-o", str(module)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    return module


RUNNER = """
import importlib.util, sys
sys.path.insert(0, {emu!r})
import fake_cupy
sys.modules["cupy"] = fake_cupy
spec = importlib.util.spec_from_file_location("trtnet._C", {module!r})
compiled = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compiled)
sys.modules["trtnet._C"] = compiled
import trtnet
trtnet._C = compiled
import trtnet.plugins.extension
assert trtnet.plugins.extension.HAS_CUDA and trtnet.plugins.extension.BUILD_INFO["cuda_version"] == "emulated"
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", {root!r}, {test!r}]))
"""


def test_device_test_passes_on_emulated_kernels(emulated_module):
    code = RUNNER.format(emu=str(EMU), module=str(emulated_module), root=str(REPO),
                         test=str(REPO / "tests" / "test_kernels_device.py"))
    env = dict(os.environ, TRTNET_EMULATED_DEVICE="1")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
