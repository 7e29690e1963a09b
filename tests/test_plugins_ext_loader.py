"""trtnet.plugins.extension: importing never fails; without the compiled module, require() says what is
missing and how to build it; with it, the CPU twins and the build facts are exposed."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.fixture
def ext_without_compiled_module(monkeypatch):
    """trtnet.plugins.extension re-imported while trtnet._C cannot be imported (as on a machine without a compiler)."""
    import trtnet
    import trtnet.plugins.extension

    compiled = sys.modules.get("trtnet._C")
    monkeypatch.setitem(sys.modules, "trtnet._C", None)  # makes `from . import _C` raise ImportError
    monkeypatch.delattr(trtnet, "_C", raising=False)
    module = importlib.reload(trtnet.plugins.extension)
    yield module
    monkeypatch.undo()
    if compiled is not None:
        sys.modules["trtnet._C"] = compiled
        trtnet._C = compiled
    importlib.reload(trtnet.plugins.extension)


def test_missing_extension_is_reported_with_how_to_build(ext_without_compiled_module):
    ext = ext_without_compiled_module
    assert ext.AVAILABLE is False and ext.HAS_CUDA is False
    with pytest.raises(ImportError, match=r"trtnet\._C .* is not available.*pip install \."):
        ext.require()
    with pytest.raises(ImportError, match="pip install"):
        ext.require_cuda()


def test_trtnet_imports_without_the_extension():
    code = ("import sys; sys.modules['trtnet._C'] = None\n"
            "import trtnet, trtnet.plugins, trtnet.plugins.extension\n"
            "assert not trtnet.plugins.extension.AVAILABLE\n"
            "print(sorted(trtnet.plugins.SPECS))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "['FastNMS', 'InverseWarp']"


def test_built_extension_exposes_twins_and_build_info():
    from trtnet.plugins import extension as _ext

    module = _ext.require()  # CI always builds it
    assert callable(module.inverse_warp) and callable(module.fast_nms)
    assert set(_ext.BUILD_INFO) >= {"cuda", "cuda_version", "cuda_architectures"}
    if _ext.HAS_CUDA:
        assert callable(module.inverse_warp_device) and callable(module.fast_nms_device)
        assert "87" in _ext.BUILD_INFO["cuda_architectures"]  # Jetson Orin is always a target


def test_cupy_wrappers_refuse_a_build_without_cuda(ext_without_compiled_module):
    with pytest.raises(ImportError, match="not available"):
        ext_without_compiled_module.inverse_warp_cupy(None, None)
