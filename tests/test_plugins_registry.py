"""libtrtnet_plugins.so registers its creators the two ways TensorRT users load it,
without ever registering one twice (TensorRT's loadLibrary fails on a duplicate):

* dlopen / ctypes.CDLL(RTLD_GLOBAL) / linking (what trtnet.plugins.load() does): the
  library's static initializer finds the process's getPluginRegistry and registers --
  also when libnvinfer was loaded RTLD_LOCAL, as the tensorrt Python module loads it;
* IPluginRegistry::loadLibrary / trtexec --dynamicPlugins: the loader calls getCreators(),
  which first withdraws the initializer's registration.

Checked with plugins/tests/registry_test.cpp, whose executable exports a fake
getPluginRegistry, against a host-only build of the library (CUDA launchers stubbed), for
every TensorRT header set found (see test_plugins_lifecycle.py for where headers come from).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import trt_headers
from test_plugins_lifecycle import compiler, plugin_objects

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=trt_headers.MAJORS, ids=lambda m: f"trt{m}")
def built(request, tmp_path):
    include = trt_headers.header_set(request.param)
    cxx, flags = compiler()
    lib, exe, local_exe = tmp_path / "libtrtnet_plugins.so", tmp_path / "registry_test", tmp_path / "registry_local"
    fake = tmp_path / "fake" / "libnvinfer.so.11"
    fake.parent.mkdir()
    test = [*flags, "-isystem", str(include), str(REPO / "plugins/tests/registry_test.cpp")]
    for cmd in (
        [cxx, "-shared", *map(str, plugin_objects(include)), "-ldl", "-o", str(lib)],
        [cxx, *test, "-rdynamic", "-ldl", "-o", str(exe)],
        [cxx, *test, "-ldl", "-o", str(local_exe)],  # no -rdynamic: its registry is not global
        [cxx, *test, "-DTRTNET_FAKE_NVINFER", "-shared", "-Wl,-soname,libnvinfer.so.11", "-o", str(fake)],
    ):
        build = subprocess.run(cmd, capture_output=True, text=True)
        assert build.returncode == 0, build.stderr[-4000:]
    return lib, exe, local_exe, fake


@pytest.mark.parametrize("mode", ["dlopen", "loadLibrary"])
def test_creators_registered_once(built, mode):
    lib, exe, _, _ = built
    run = subprocess.run([str(exe), str(lib), mode], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "registered FastNMS/1 in namespace trtnet: plugin created" in run.stdout
    assert "registered InverseWarp/1 in namespace trtnet: plugin created" in run.stdout
    assert f"registry ({mode}): all checks passed" in run.stdout


def test_registered_when_libnvinfer_is_loaded_locally_as_python_does(built):
    lib, _, local_exe, fake = built
    run = subprocess.run([str(local_exe), str(lib), "local", str(fake)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "registry (local): all checks passed" in run.stdout


@pytest.mark.skipif(shutil.which("nm") is None and not trt_headers.in_ci(), reason="no nm (binutils)")
def test_library_exports_only_the_entry_points(built):
    lib, _, _, _ = built
    nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in nm.stdout.splitlines() if " T " in line}
    assert exported == {"getCreators", "getPluginCreators", "setLoggerFinder", "trtnetPluginsAutoRegistered"}
