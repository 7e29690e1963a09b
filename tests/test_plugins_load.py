"""trtnet.plugins.load(): TensorRT first, then the library, then a registration check.

No TensorRT runtime exists here, so ``tensorrt`` is a stand-in module whose registry
records ``load_library`` calls, and the "plugin library" is another shared object that
lacks the auto-registration entry point (as a library whose initializer could not reach
the registry would report 0 creators).
"""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest

from trtnet import plugins


@pytest.fixture
def some_shared_object():
    compiled = pytest.importorskip("trtnet._C", reason="needs the compiled extension as a stand-in .so")
    return compiled.__file__


def _fake_tensorrt(monkeypatch, accepts: bool, registered: tuple = ()) -> list:
    """A tensorrt module whose one registry refuses a second registration of a creator, as
    IPluginRegistry::loadLibrary does ("will fail and return nullptr if any of the plugins are
    already registered", NvInferRuntimeCommon.h, TensorRT 10.3 line 205-206)."""
    calls: list = []
    creators = set(registered)

    class Registry:
        def load_library(self, path):
            calls.append(path)
            if not accepts or creators & set(plugins.SPECS):
                return None
            creators.update(plugins.SPECS)
            return object()

        def get_creator(self, name, version, namespace=""):
            ok = name in creators and (version, namespace) == (plugins.VERSION, plugins.NAMESPACE)
            return object() if ok else None

    registry = Registry()
    module = types.SimpleNamespace(get_plugin_registry=lambda: registry, __version__="fake")
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


def test_a_second_copy_or_spelling_of_the_library_is_not_loaded_again(monkeypatch, some_shared_object, tmp_path):
    # trtnet.build puts a copy next to every engine: two engines in two folders, then the default.
    calls = _fake_tensorrt(monkeypatch, accepts=True)
    copies = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        copies.append(Path(shutil.copy(some_shared_object, tmp_path / folder / "libtrtnet_plugins.so")))
    plugins.load(copies[0])
    plugins.load(copies[1])
    plugins.load(tmp_path / "a" / ".." / "a" / "libtrtnet_plugins.so")
    plugins.load(some_shared_object)
    assert calls == [str(copies[0].resolve())]


def test_creators_registered_by_someone_else_are_used_as_they_are(monkeypatch, some_shared_object):
    calls = _fake_tensorrt(monkeypatch, accepts=True, registered=("FastNMS", "InverseWarp"))
    plugins.load(some_shared_object)
    assert calls == []


def test_a_partial_registration_is_a_clear_error(monkeypatch, some_shared_object):
    calls = _fake_tensorrt(monkeypatch, accepts=True, registered=("FastNMS",))
    with pytest.raises(RuntimeError, match="only FastNMS of trtnet's plugins .* InverseWarp is not"):
        plugins.load(some_shared_object)
    assert calls == []
