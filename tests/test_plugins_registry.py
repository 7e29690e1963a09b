"""libtrtnet_plugins.so registers its creators the two ways TensorRT users load it,
without ever registering one twice (TensorRT's loadLibrary fails on a duplicate):

* dlopen / ctypes.CDLL(RTLD_GLOBAL) / linking (what trtnet.plugins.load() does): the
  library's static initializer finds the process's getPluginRegistry and registers;
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

from test_plugins_lifecycle import HEADER_IDS, HEADERS, compiler, plugin_objects

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=HEADERS, ids=HEADER_IDS)
def built(request, tmp_path):
    include = request.param
    cxx, flags = compiler()
    lib, exe = tmp_path / "libtrtnet_plugins.so", tmp_path / "registry_test"
    for cmd in (
        [cxx, "-shared", *map(str, plugin_objects(include)), "-ldl", "-o", str(lib)],
        [cxx, *flags, "-isystem", str(include), "-rdynamic", str(REPO / "plugins/tests/registry_test.cpp"),
         "-ldl", "-o", str(exe)],
    ):
        build = subprocess.run(cmd, capture_output=True, text=True)
        assert build.returncode == 0, build.stderr[-4000:]
    return lib, exe


@pytest.mark.skipif(not HEADERS, reason="no TensorRT headers (set TRTNET_TENSORRT_INCLUDE_DIRS)")
@pytest.mark.parametrize("mode", ["dlopen", "loadLibrary"])
def test_creators_registered_once(built, mode):
    lib, exe = built
    run = subprocess.run([str(exe), str(lib), mode], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "registered FastNMS/1 in namespace trtnet: plugin created" in run.stdout
    assert "registered InverseWarp/1 in namespace trtnet: plugin created" in run.stdout
    assert f"registry ({mode}): all checks passed" in run.stdout


@pytest.mark.skipif(not HEADERS or shutil.which("nm") is None, reason="no TensorRT headers or no nm")
def test_library_exports_only_the_entry_points(built):
    lib, _ = built
    nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in nm.stdout.splitlines() if " T " in line}
    assert exported == {"getCreators", "getPluginCreators", "setLoggerFinder", "trtnetPluginsAutoRegistered"}
