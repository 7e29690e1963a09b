"""trtnet's TensorRT plugins: the spec (:mod:`.specs`), the NumPy reference
(:mod:`.reference`) and :func:`load`, which registers the compiled creators with
TensorRT's plugin registry by loading ``libtrtnet_plugins.so``; and
:func:`tensorrt_plugin_creator`, which makes sure TensorRT's own plugin library
(libnvinfer_plugin: ModulatedDeformConv2d for YOLACT++'s DCNv2) is registered.

Nothing here imports tensorrt or needs the compiled library at import time.

Room rule: this room imports only trtnet.names/config and the compiled ``trtnet._C``
(through :mod:`.extension`, the loader that never fails at import); the emulator, network and
runtime sit above it.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from .specs import (FAST_NMS, INVERSE_WARP, NAMESPACE, SPECS, TENSORRT_PLUGINS, TIE_RULE, TRT_PLUGIN_NAMESPACE,
                    VERSION, get_spec)

__all__ = [
    "FAST_NMS", "INVERSE_WARP", "NAMESPACE", "SPECS", "TENSORRT_PLUGINS", "TIE_RULE", "VERSION",
    "LibNvInferPluginError", "get_spec", "library_path", "load", "load_libnvinfer_plugin", "registered",
    "tensorrt_plugin_creator",
]

LIBRARY_NAME = "libtrtnet_plugins.so"
ENV_VAR = "TRTNET_PLUGIN_LIBRARY"

_loaded: dict[str, ctypes.CDLL] = {}


def _candidates() -> list[Path]:
    """Where the library may be, most specific first."""
    found: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        found.append(Path(env))
    try:  # written by the build (setup.py / CMake) with the installed location
        from . import extension as _ext

        for attr in ("PLUGIN_LIBRARY", "PLUGINS_LIBRARY", "plugin_library", "PLUGIN_LIB"):
            value = getattr(_ext, attr, None)
            if value:
                found.append(Path(value))
    except ImportError:
        pass
    package = Path(__file__).resolve().parent.parent
    found += [package / LIBRARY_NAME, package / "lib" / LIBRARY_NAME,
              package.parent / "build" / LIBRARY_NAME]
    return found


def library_path() -> Path:
    """Path of ``libtrtnet_plugins.so``; a clear error listing where it looked."""
    candidates = _candidates()
    for path in candidates:
        if path.is_file():
            return path
    looked = "\n  ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"{LIBRARY_NAME} not found. Build it (pip install . / cmake --build build) or set "
        f"{ENV_VAR} to its path. Looked in:\n  {looked}"
    )


def load(path: str | os.PathLike | None = None) -> ctypes.CDLL:
    """Load the plugin library once so its creators are in TensorRT's plugin registry.

    The route is TensorRT's own ``registry.load_library`` (IPluginRegistry::loadLibrary: the
    library's getCreators hands the creators to the registry). The registry is one per
    process and loadLibrary "will fail and return nullptr if any of the plugins are already
    registered" (NvInferRuntimeCommon.h, TensorRT 10.3 line 205-206, 11.1 line 134-135), so
    load_library is skipped when FastNMS and InverseWarp are registered already
    (``get_creator``): by another spelling or copy of the library (two engines in different
    folders, ``--plugin-library X`` and then the default), by the C++ runtime, or by the
    library itself (TRTNET_PLUGINS_REGISTER_ON_LOAD=1, trtnetInitPlugins). Needs the real
    TensorRT runtime; the emulator never calls this, it runs the plugins through their CPU twins.
    """
    lib_path = Path(path) if path is not None else library_path()
    key = str(lib_path.resolve())
    if key in _loaded:
        return _loaded[key]
    if not lib_path.is_file():
        raise FileNotFoundError(f"could not load {lib_path}: no such file")
    try:
        import tensorrt as trt  # libnvinfer first: the library finds the process's TensorRT
    except ImportError as exc:
        raise ImportError(
            f"loading {LIBRARY_NAME} needs the TensorRT Python package (tensorrt 10.3+): {exc}"
        ) from exc
    try:
        lib = ctypes.CDLL(key, mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise OSError(
            f"could not load {lib_path}: {exc} (it needs libnvinfer from TensorRT "
            "10.3+ and the CUDA runtime on the library path)"
        ) from exc
    registry = trt.get_plugin_registry()
    present = registered(registry)
    if not present:
        if not registry.load_library(key):
            raise RuntimeError(
                f"{lib_path} loaded, but TensorRT's plugin registry did not register its "
                f"creators ({', '.join(SPECS)} in namespace {NAMESPACE!r}); is it built "
                f"against this TensorRT ({getattr(trt, '__version__', '?')})? (TensorRT's log says why)"
            )
    elif len(present) < len(SPECS):
        missing = sorted(set(SPECS) - set(present))
        raise RuntimeError(
            f"only {', '.join(present)} of trtnet's plugins is registered with TensorRT (by another "
            f"library), {', '.join(missing)} is not; TensorRT refuses to load {lib_path} over them "
            "(IPluginRegistry::loadLibrary): load one libtrtnet_plugins.so per process"
        )
    _loaded[key] = lib
    return lib


def registered(registry) -> list[str]:
    """Which of trtnet's creators ``registry`` holds (IPluginRegistry::getCreator(name, version, namespace))."""
    return [name for name in SPECS if registry.get_creator(name, VERSION, NAMESPACE) is not None]


# --- TensorRT's own plugin library ---------------------------------------------------------------
DCN_PLUGIN = "ModulatedDeformConv2d"


class LibNvInferPluginError(RuntimeError):
    """TensorRT's plugin library (libnvinfer_plugin) is missing or lacks a creator trtnet needs."""


def _libnvinfer_plugin_name(trt) -> str:
    major = str(getattr(trt, "__version__", "")).split(".")[0]
    return f"libnvinfer_plugin.so.{major}" if major.isdigit() else "libnvinfer_plugin.so"


def _find_creator(registry, name: str):
    for spec in TENSORRT_PLUGINS:
        if spec.name == name:
            creator = registry.get_creator(spec.name, spec.version, spec.namespace)
            if creator is not None:
                return spec, creator
    return None


def load_libnvinfer_plugin(trt, logger=None) -> None:
    """Register libnvinfer_plugin's creators with ``trt``'s plugin registry (once per process is enough).

    ``trt.init_libnvinfer_plugins(logger, "")`` is initLibNvInferPlugins (NvInferPlugin.h, 10.3 and
    11.1 line 38: "Initialize and register all the existing TensorRT plugins to the Plugin Registry
    with an optional namespace ... called once before accessing the Plugin Registry"); the Python
    bindings link libnvinfer_plugin, so it is there when the full ``tensorrt`` package is. A
    TensorRT without it (the lean or dispatch runtime, ``tensorrt_lean``) is a clear error.
    Also needed before deserializing an engine that holds such plugin layers.
    """
    lib = _libnvinfer_plugin_name(trt)
    init = getattr(trt, "init_libnvinfer_plugins", None)
    if init is None:
        raise LibNvInferPluginError(
            f"this TensorRT ({getattr(trt, '__version__', '?')}) has no init_libnvinfer_plugins: YOLACT++'s "
            f"deformable convolutions need TensorRT's plugin library {lib} ({DCN_PLUGIN}); install the full "
            "tensorrt package (not tensorrt_lean / tensorrt_dispatch)")
    if logger is None and getattr(trt, "Logger", None) is not None:
        logger = trt.Logger(trt.Logger.WARNING)
    try:
        ok = init(logger, TRT_PLUGIN_NAMESPACE)
    except (OSError, RuntimeError) as exc:
        raise LibNvInferPluginError(f"TensorRT's plugin library {lib} could not be initialised: {exc}") from exc
    if not ok:
        raise LibNvInferPluginError(
            f"init_libnvinfer_plugins failed: TensorRT's plugin library {lib} is missing or did not register "
            f"its plugins ({DCN_PLUGIN} is needed by YOLACT++'s deformable convolutions); TensorRT's log says why")


def tensorrt_plugin_creator(trt, name: str = DCN_PLUGIN, logger=None):
    """(spec, creator) of libnvinfer_plugin's plugin ``name``: the newest version registered.

    ModulatedDeformConv2d is version "2" (IPluginV3) in TensorRT 10.13+ and 11.x and version "1"
    (IPluginV2DynamicExt) before (see trtnet.plugins.specs); libnvinfer_plugin is initialised first
    when neither is registered. Works with tensorrt and trtnet.emulator.trt.
    """
    registry = trt.get_plugin_registry()
    found = _find_creator(registry, name)
    if found is None:
        load_libnvinfer_plugin(trt, logger)
        found = _find_creator(registry, name)
    if found is None:
        versions = ", ".join(s.version for s in TENSORRT_PLUGINS if s.name == name)
        raise LibNvInferPluginError(
            f"TensorRT's plugin registry has no {name} (versions {versions}, namespace "
            f"{TRT_PLUGIN_NAMESPACE!r}) after loading {_libnvinfer_plugin_name(trt)}; it needs TensorRT 10.3+")
    return found
