"""libtrtnet_plugins.so gets its creators into TensorRT's registry on every route users load
it by, never twice and never by re-entering the registry (plugins/tests/registry_test.cpp,
against a fake registry whose non-recursive mutex refuses re-entry and which refuses a
second registration):

* loadLibrary (C++ ``getPluginRegistry()->loadLibrary``, Python ``registry.load_library`` --
  what trtnet.plugins.load() uses --, ``trtexec --dynamicPlugins``): getCreators only hands
  out the creators, the static initializer does nothing;
* dlopen / link + ``trtnetInitPlugins()`` (explicit, idempotent), also when libnvinfer was
  loaded RTLD_LOCAL as the tensorrt Python module loads it;
* dlopen-only routes (Triton's TensorRT backend ``plugins=``, LD_PRELOAD, ``trtexec
  --staticPlugins``) with TRTNET_PLUGINS_REGISTER_ON_LOAD=1: the static initializer registers;
* a process running another TensorRT major than the headers: nothing registered, a clear error.

Built for every TensorRT header set (tests/trt_headers.py), launchers stubbed (no CUDA).
What a fake cannot show: that the real libnvinfer's loadLibrary behaves as the fake does
(dlopen under its mutex, then getCreators), and initializer ordering under a real LD_PRELOAD.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import trt_headers
from test_plugins_lifecycle import compiler, plugin_objects

REPO = Path(__file__).resolve().parent.parent
# getCreators + setLoggerFinder are the V3 plugin-library interface (NVIDIA/TensorRT
# plugin/vc/vfcCommon.cpp exports only these two; samples/trtexec/README.md "Using your own
# Plugin"); getPluginCreators, the deprecated IPluginV2-era name, is not exported.
EXPORTS = {"getCreators", "setLoggerFinder", "trtnetInitPlugins", "trtnetPluginsRegistered"}


@pytest.fixture(params=trt_headers.MAJORS, ids=lambda m: f"trt{m}")
def built(request, tmp_path):
    major = request.param
    include = trt_headers.header_set(major)
    cxx, flags = compiler()
    lib, exe, local_exe = tmp_path / "libtrtnet_plugins.so", tmp_path / "registry_test", tmp_path / "registry_local"
    fake = tmp_path / "fake" / f"libnvinfer.so.{major}"
    fake.parent.mkdir()
    test = [*flags, "-isystem", str(include), str(REPO / "plugins/tests/registry_test.cpp")]
    for cmd in (
        [cxx, "-shared", *map(str, plugin_objects(include)), "-ldl", "-o", str(lib)],
        [cxx, *test, "-rdynamic", "-ldl", "-o", str(exe)],
        [cxx, *test, "-ldl", "-o", str(local_exe)],  # no -rdynamic: its registry is not global
        [cxx, *test, "-DTRTNET_FAKE_NVINFER", "-shared", f"-Wl,-soname,libnvinfer.so.{major}", "-o", str(fake)],
    ):
        build = subprocess.run(cmd, capture_output=True, text=True)
        assert build.returncode == 0, build.stderr[-4000:]
    return major, lib, exe, local_exe, fake


def _run(args, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TRTNET_PLUGINS_REGISTER_ON_LOAD"}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, env={**environ, **env})


@pytest.mark.parametrize("mode", ["loadLibrary", "init", "onload"])
def test_creators_registered_once_without_reentering_the_registry(built, mode):
    _, lib, exe, _, _ = built
    run = _run([exe, lib, mode])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "registered FastNMS/1 in namespace trtnet: plugin created" in run.stdout
    assert "registered InverseWarp/1 in namespace trtnet: plugin created" in run.stdout
    assert "re-entered" not in run.stdout
    assert f"registry ({mode}): all checks passed" in run.stdout


def test_ld_preload_with_register_on_load_registers_before_main(built):
    _, lib, exe, _, _ = built
    run = _run([exe, lib, "preload"], LD_PRELOAD=str(lib), TRTNET_PLUGINS_REGISTER_ON_LOAD="1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "registry (preload): all checks passed" in run.stdout


def test_registered_when_libnvinfer_is_loaded_locally_as_python_does(built):
    _, lib, _, local_exe, fake = built
    run = _run([local_exe, lib, "local", fake])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "registry (local): all checks passed" in run.stdout


def test_another_tensorrt_major_registers_nothing_and_says_why(built):
    major, lib, exe, _, _ = built
    other = 100300 if major == "11" else 110100
    run = _run([exe, lib, "mismatch"], FAKE_TRT_VERSION=str(other))
    assert run.returncode == 0, run.stdout + run.stderr
    shown = f"{other // 10000}.{other // 100 % 100}.0"
    assert (f"compiled against TensorRT {major}.x headers but this process runs libnvinfer {shown}; "
            "rebuild it with TensorRT_ROOT") in run.stderr
    assert "registry (mismatch): all checks passed" in run.stdout


@pytest.mark.skipif(shutil.which("nm") is None and not trt_headers.in_ci(), reason="no nm (binutils)")
def test_library_exports_only_the_entry_points(built):
    _, lib, _, _, _ = built
    nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in nm.stdout.splitlines() if " T " in line}
    assert exported == EXPORTS
