"""The JSON sidecar written next to every engine: what the engine is and how it was built.

``model.engine`` gets ``model.engine.json`` (never a header glued into the engine file,
which TensorRT, trtexec, Triton and the C++ runtime must read as is). It records the
config, the precision plan, the calibration cache's hash, the TensorRT version, the GPU,
every I/O tensor (name, mode, shape with -1 for dynamic dims, dtype), the optimization
profile, the builder settings, the plugin library and TensorRT's own plugins the engine's layers
use (``tensorrt_plugins``: ["ModulatedDeformConv2d"] for YOLACT++, which a runtime must register
from libnvinfer_plugin before deserializing): enough to tell, months later, whether an engine
still matches its weights, calibration and plugin build.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from trtnet.media.files import write_atomically
from trtnet.precision import COMPONENTS

FORMAT = "trtnet-engine-sidecar/1"


def sidecar_path(engine_path: os.PathLike | str) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def file_sha256(path: os.PathLike | str) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entry(path: Optional[os.PathLike | str]) -> Optional[dict[str, Any]]:
    """{"path", "sha256"} of a file, None for no file."""
    if path is None:
        return None
    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}


def gpu_description() -> dict[str, Any]:
    """Name and compute capability of CUDA device 0 (through CuPy); 'unknown' without it."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        return {"name": name.decode() if isinstance(name, bytes) else str(name),
                "compute_capability": f"{props['major']}.{props['minor']}",
                "memory_mib": int(props["totalGlobalMem"]) >> 20,
                "memory_bytes": int(props["totalGlobalMem"])}
    except Exception as exc:  # noqa: BLE001 - no CuPy, no driver, no device: still write the sidecar
        return {"name": "unknown", "reason": f"{type(exc).__name__}: {exc}"[:200]}


def gpu_memory_bytes(gpu: Mapping[str, Any]) -> int | None:
    """Total device memory of a sidecar's 'gpu' entry (:func:`gpu_description`), None if unknown.

    Sidecars written before ``memory_bytes`` have only ``memory_mib`` (rounded down to MiB)."""
    if gpu.get("memory_bytes") is not None:
        return int(gpu["memory_bytes"])
    if gpu.get("memory_mib") is not None:
        return int(gpu["memory_mib"]) << 20
    return None


def target_gpu(engine_path: os.PathLike | str | None) -> dict[str, Any]:
    """The GPU an engine is for: the 'gpu' of ``engine_path``'s existing sidecar (the engine
    was built there before: a dry run on a desktop checks the Orin it is rebuilt for) when it
    names the memory, else this machine's (:func:`gpu_description`)."""
    if engine_path is not None:
        try:
            gpu = json.loads(sidecar_path(engine_path).read_text(encoding="utf-8")).get("gpu") or {}
        except (OSError, ValueError, AttributeError):
            gpu = {}
        if isinstance(gpu, dict) and gpu_memory_bytes(gpu) is not None:
            return {**gpu, "name": f"{gpu.get('name', 'the GPU')} (from {sidecar_path(engine_path).name})"}
    return gpu_description()


def tensor_entries(network: Any, trt: Any) -> list[dict[str, Any]]:
    """Name, mode, shape (-1 = dynamic) and dtype of every network input and output."""
    entries = []
    for mode, count, get in (("input", network.num_inputs, network.get_input),
                             ("output", network.num_outputs, network.get_output)):
        for i in range(count):
            t = get(i)
            dtype = t.dtype
            entries.append({"name": t.name, "mode": mode, "shape": [int(d) for d in tuple(t.shape)],
                            "dtype": getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1])})
    return entries


def tensorrt_plugins(config: Any, nonkeyframe: bool) -> list[str]:
    """TensorRT's own plugins (libnvinfer_plugin) the network's layers use, so a runtime (the C++
    one reads this field) knows to register them before deserializing: ModulatedDeformConv2d when
    a ResNet block the engine runs has a DCNv2 (``BackboneSpec.uses_dcn``, the rule the network
    code follows; the non-keyframe engine runs the stages up to the first selected one only,
    as trtnet.network.backbones.build_backbone does)."""
    from trtnet.plugins.specs import TENSORRT_PLUGINS

    spec = config.backbone
    if spec.family != "resnet" or not spec.has_dcn:
        return []
    stages = spec.layers[:int(spec.selected_layers[0]) + 1] if nonkeyframe else spec.layers
    if any(spec.uses_dcn(i, j) for i, blocks in enumerate(stages) for j in range(int(blocks))):
        return [TENSORRT_PLUGINS[0].name]
    return []


def describe(*, engine: bytes, config: Any, plan: Any, nonkeyframe: bool, trt: Any,
             io: Sequence[Mapping[str, Any]], profile: Mapping[str, Sequence[Sequence[int]]],
             builder: Mapping[str, Any], weights: Optional[os.PathLike | str] = None,
             calibration_cache: Optional[os.PathLike | str] = None,
             plugin_library: Optional[os.PathLike | str] = None) -> dict[str, Any]:
    """The sidecar's content (a JSON-ready dict)."""
    from trtnet import __version__

    return {
        "format": FORMAT,
        "engine": {"bytes": len(engine), "sha256": hashlib.sha256(engine).hexdigest()},
        "network": "nonkeyframe" if nonkeyframe else "keyframe",
        "config": config.name,
        "classes": list(config.class_names),  # index = the engine's 0-based class id (C++ Instance::class_name)
        "precision_plan": {"plan": str(plan), "preset": plan.preset,
                           "components": {c: plan.of(c) for c in COMPONENTS}},
        "calibration_cache": file_entry(calibration_cache),
        "weights": file_entry(weights),
        "tensorrt_version": str(getattr(trt, "__version__", "unknown")),
        "gpu": gpu_description(),
        "io": [dict(e) for e in io],
        "optimization_profile": {name: {"min": list(s[0]), "opt": list(s[1]), "max": list(s[2])}
                                 for name, s in profile.items()},
        "builder": dict(builder),
        "plugin_library": file_entry(plugin_library),
        "tensorrt_plugins": tensorrt_plugins(config, nonkeyframe),
        "trtnet_version": __version__,
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_sidecar(engine_path: os.PathLike | str, content: Mapping[str, Any]) -> Path:
    """Write ``content`` as ``<engine>.json`` atomically; returns its path."""
    path = sidecar_path(engine_path)
    write_atomically(path, (json.dumps(content, indent=1) + "\n").encode())
    return path
