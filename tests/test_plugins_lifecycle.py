"""IPluginV3 lifecycle of both plugins, compiled against each TensorRT header set found
(10.3 and 11.x): create through the creator, clone, output types / shapes / formats,
workspace, serialize through the fields, re-create (plugins/tests/plugin_lifecycle_test.cpp,
built with ASan + UBSan; no libnvinfer: the expression builder is a stub, the CUDA
launchers are stubs).

Header sets: tests/trt_headers.py ($TensorRT_ROOT, else ../shared/trt-headers/*; both 10.x
and 11.x are expected, and a missing one fails in CI). The CUDA headers come from $CUDA_HOME or
/usr/local/cuda. :func:`plugin_objects` compiles the plugin code once per header set
(also used by test_plugins_registry.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import trt_headers
from trtnet.plugins.specs import SPECS

REPO = Path(__file__).resolve().parent.parent
PLUGIN_SOURCES = [
    "plugins/trtnet_plugins.cpp",
    "plugins/inverse_warp/inverse_warp_plugin.cpp",
    "plugins/fast_nms/fast_nms_plugin.cpp",
    "plugins/inverse_warp/inverse_warp_host.cpp",
    "plugins/fast_nms/fast_nms_host.cpp",
    "plugins/tests/launcher_stubs.cpp",
]


def _cuda_include() -> Path | None:
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            return Path(root) / "include"
    return None


def compiler() -> tuple[str, list[str]]:
    """C++ compiler and the flags every test build against TensorRT's headers uses."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None or _cuda_include() is None:
        pytest.fail("plugin tests need a C++ compiler and the CUDA headers (cuda_runtime_api.h)", pytrace=False)
    return cxx, ["-std=c++17", "-O0", "-fPIC", "-Wall", "-Wextra", "-Werror", "-Wno-deprecated-declarations",
                 "-isystem", str(_cuda_include()), "-I", str(REPO / "plugins")]


@functools.lru_cache(maxsize=None)
def plugin_objects(include: Path) -> tuple[Path, ...]:
    """Object files of the plugin library (launchers stubbed) for one header set, built once, in parallel."""
    cxx, flags = compiler()
    out = Path(tempfile.mkdtemp(prefix=f"trtnet_plugins_{trt_headers.version(include)}_"))
    jobs = []
    for src in PLUGIN_SOURCES:
        obj = out / (Path(src).stem + ".o")
        cmd = [cxx, *flags, "-fvisibility=hidden", "-isystem", str(include), "-c", str(REPO / src), "-o", str(obj)]
        jobs.append((src, obj, subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)))
    for src, _, proc in jobs:
        _, err = proc.communicate()
        assert proc.returncode == 0, f"{src} against {include}:\n{err[-4000:]}"
    return tuple(obj for _, obj, _ in jobs)


@trt_headers.params()
def test_plugin_lifecycle_against_headers(major, tmp_path):
    include = trt_headers.header_set(major)
    cxx, flags = compiler()
    exe = tmp_path / "lifecycle"
    # Built from source with ASan + UBSan: leaks, double deletes and UB in the plugin
    # lifecycle (create, clone, attach, destroy through the interfaces) abort the run.
    cmd = [cxx, *flags, "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-isystem", str(include),
           str(REPO / "plugins/tests/plugin_lifecycle_test.cpp"), *[str(REPO / s) for s in PLUGIN_SOURCES],
           "-ldl", "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"lifecycle build against {include} failed:\n{build.stderr[-4000:]}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"TensorRT headers {major}." in run.stdout
    assert "creators: InverseWarp, FastNMS" in run.stdout
    assert "lifecycle: all checks passed" in run.stdout
    # The refused fields were refused with their reason, through the plugin logger.
    assert "unknown field 'topk'" in run.stderr and "top_k must be in [1, 1024]" in run.stderr
    # The creators declare exactly the fields of trtnet/plugins/specs.py, with its types and defaults.
    declared = [line.split()[1:] for line in run.stdout.splitlines() if line.startswith("spec ")]
    expected = [[spec.name, f.name, f.dtype, f"{np.asarray(f.coerce(f.default))[0]:.9g}"]
                for spec in (SPECS["InverseWarp"], SPECS["FastNMS"]) for f in spec.fields]
    assert sorted(declared) == sorted(expected)
    assert {name for name, *_ in declared} == set(SPECS)
