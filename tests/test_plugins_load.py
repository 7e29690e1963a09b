"""trtnet.plugins.load(): TensorRT first, then the library, then a registration check.

No TensorRT runtime exists here, so ``tensorrt`` is a stand-in module whose registry
records ``load_library`` calls, and the "plugin library" is another shared object that
lacks the auto-registration entry point (as a library whose initializer could not reach
the registry would report 0 creators).
"""

from __future__ import annotations

import sys
import types

import pytest

from trtnet import plugins


@pytest.fixture
def some_shared_object():
    compiled = pytest.importorskip("trtnet._C", reason="needs the compiled extension as a stand-in .so")
    return compiled.__file__


def _fake_tensorrt(monkeypatch, accepts: bool) -> list:
    calls: list = []

    class Registry:
        def load_library(self, path):
            calls.append(path)
            return accepts

    module = types.SimpleNamespace(get_plugin_registry=Registry, __version__="fake")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setattr(plugins, "_loaded", {})
    return calls


def test_missing_library_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="could not load .*nope.so"):
        plugins.load(tmp_path / "nope.so")


def test_without_tensorrt_the_error_says_tensorrt_is_needed(monkeypatch, some_shared_object):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    monkeypatch.setattr(plugins, "_loaded", {})
    with pytest.raises(ImportError, match="needs the TensorRT Python package"):
        plugins.load(some_shared_object)


def test_unregistered_library_is_handed_to_the_registry(monkeypatch, some_shared_object):
    calls = _fake_tensorrt(monkeypatch, accepts=True)
    plugins.load(some_shared_object)
    assert len(calls) == 1 and calls[0].endswith(".so")


def test_registry_refusal_is_a_clear_error(monkeypatch, some_shared_object):
    _fake_tensorrt(monkeypatch, accepts=False)
    with pytest.raises(RuntimeError, match="did not register its creators .*FastNMS, InverseWarp"):
        plugins.load(some_shared_object)
