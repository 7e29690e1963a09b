"""``trtnet export-triton``: a Triton model repository from built engines.

Layout written (``NAME`` = ``--name``)::

    REPO/NAME/                 the model clients call: orchestrator (Python backend, BLS,
         config.pbtxt            sequence batcher), 1/model.py
    REPO/NAME_keyframe/        stateless, dynamic batching: 1/model.plan (the keyframe engine)
    REPO/NAME_nonkeyframe/     stateless, dynamic batching: 1/model.plan; the keyframe
                               state comes in as ordinary inputs (video configs only)
    REPO/plugins/libtrtnet_plugins.so   the plugin library the plans need
    REPO/README.md             how to start the server (plugin loading), a client, perf_analyzer

An image config (no flow network) has no non-keyframe model: the orchestrator, written with
keyframe interval 1 and no ``nonkeyframe_model`` parameter, sends every frame to the keyframe
model, so clients call the same model with the same outputs (``mask_scores`` included).

With ``--backend emulator`` (the CPU test mode) the two engine models are Python-backend
models running trtnet's emulator on the same inputs and outputs (1/model.py + the weights).
The repository is written to a temporary folder beside REPO and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from trtnet import names
from trtnet.media.files import new_file_mode

from . import model_config as mc
from .orchestrator import OUT_BOXES, OUT_CLASSES, OUT_KEYFRAME, OUT_MASK_SCORES, OUT_MASKS, OUT_SCORES

PLUGIN_DIR = "plugins"


class ExportError(Exception):
    """A repository cannot be written from what was given (the message says why)."""


@dataclass
class EngineModel:
    """What the exporter needs to know of one engine (from its JSON sidecar, or the emulator)."""

    role: str                  # "keyframe" | "nonkeyframe"
    io: list                   # sidecar I/O entries: name, mode, shape (-1 dynamic), dtype
    max_batch: int             # the profile's largest batch (0: the engine does not batch)
    config: str
    files: dict = field(default_factory=dict)  # file name in the version folder -> source path
    parameters: dict = field(default_factory=dict)


def _batch_of(io: Sequence[dict], profile: dict) -> int:
    frame = next((e for e in io if e["name"] == names.INPUT and e["mode"] == "input"), None)
    if frame is None:
        raise ExportError(f"the engine has no input {names.INPUT!r}: not a trtnet engine")
    if frame["shape"][0] != -1:
        return 0
    try:
        return int(profile[names.INPUT]["max"][0])
    except (KeyError, IndexError, TypeError):
        raise ExportError("the engine has a dynamic batch but its sidecar records no profile for "
                          f"{names.INPUT!r}") from None


def engine_model(engine: Path, role: str) -> EngineModel:
    """An engine file and its sidecar (``ENGINE.json``, written by trtnet.build)."""
    from trtnet.builder.sidecar import sidecar_path

    sidecar = sidecar_path(engine)
    if not engine.is_file():
        raise ExportError(f"{role} engine not found: {engine}")
    try:
        meta = json.loads(sidecar.read_text())
        io, profile, network = meta["io"], meta.get("optimization_profile", {}), meta["network"]
        config = meta["config"]
    except FileNotFoundError:
        raise ExportError(f"{engine} has no sidecar {sidecar.name} (engines from python -m trtnet.build have "
                          "one): the exporter reads the engine's inputs and outputs from it") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{sidecar} is not a trtnet engine sidecar ({type(exc).__name__}: {exc})") from None
    if network != role:
        raise ExportError(f"{engine} is a {network} engine, given as the {role} engine")
    return EngineModel(role, io, _batch_of(io, profile), config, files={"model.plan": engine})


def emulated_model(weights: Path, store: Any, config: Any, role: str, max_batch: int,
                   precision: Optional[str]) -> EngineModel:
    """A Python-backend stand-in running the emulator on ``weights`` (loaded as ``store``),
    with the I/O a TensorRT engine of the same network has."""
    from trtnet import emulator
    from trtnet.builder.sidecar import tensor_entries
    from trtnet.network.yolact_edge import build_keyframe, build_nonkeyframe

    network = emulator.Network()
    build = build_nonkeyframe if role == "nonkeyframe" else build_keyframe
    build(network, emulator.trt, store, config, plan=precision)
    io = tensor_entries(network, emulator.trt)
    batched = max_batch if io[0]["shape"][0] == -1 else 0
    weights_name = "weights" + Path(weights).suffix  # .safetensors, or an upstream .pth read as is
    params = {"config": config.name, "role": role, "weights": weights_name, "precision_plan": precision or ""}
    return EngineModel(role, io, batched, config.name, files={weights_name: weights, "model.py": None},
                       parameters=params)


def rescores_masks(model: EngineModel) -> bool:
    """True when the engine outputs YOLACT++'s re-scored mask scores (names.MASK_SCORES)."""
    return any(e["name"] == names.MASK_SCORES and e["mode"] == "output" for e in model.io)


def orchestrator_specs() -> tuple[list[mc.TensorSpec], list[mc.TensorSpec]]:
    """The client-facing model's inputs and outputs (per frame; Triton adds the batch)."""
    inputs = [mc.TensorSpec(names.INPUT, "TYPE_UINT8", (-1, -1, 3))]
    outputs = [mc.TensorSpec(OUT_CLASSES, "TYPE_INT32", (-1,)), mc.TensorSpec(OUT_SCORES, "TYPE_FP32", (-1,)),
               mc.TensorSpec(OUT_MASK_SCORES, "TYPE_FP32", (-1,)), mc.TensorSpec(OUT_BOXES, "TYPE_INT32", (-1, 4)), mc.TensorSpec(OUT_MASKS, "TYPE_UINT8", (-1, -1, -1)),
               mc.TensorSpec(OUT_KEYFRAME, "TYPE_BOOL", (1,))]
    return inputs, outputs


MODEL_PY = {
    "orchestrator": "from trtnet.triton.orchestrator import TritonPythonModel  # noqa: F401\n",
    "emulator": "from trtnet.triton.emulator_model import TritonPythonModel  # noqa: F401\n",
}


@dataclass
class ExportSettings:
    name: str = "yolact_edge"
    keyframe_interval: int = 5
    motion_threshold: Optional[float] = None
    idle_timeout_s: float = 60.0
    max_streams: int = 8
    instances: int = 1
    queue_delay_us: int = 2000
    score_threshold: float = 0.0


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    os.chmod(path, new_file_mode())


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    os.chmod(dst, new_file_mode())


def _engine_config(model: EngineModel, name: str, settings: ExportSettings, emulated: bool) -> str:
    batched = model.max_batch > 0
    inputs = mc.specs_from_io(model.io, "input", batched)
    outputs = mc.specs_from_io(model.io, "output", batched)
    preferred = sorted({b for b in (1, 2, 4, 8, model.max_batch) if 1 < b <= model.max_batch})
    kind = "KIND_CPU" if emulated else "KIND_GPU"
    common = dict(inputs=inputs, outputs=outputs, max_batch_size=model.max_batch, instances=settings.instances,
                  kind=kind, preferred_batch_sizes=preferred, queue_delay_us=settings.queue_delay_us)
    if emulated:
        return mc.stateless_model(name, backend="python", parameters=model.parameters, **common)
    return mc.stateless_model(name, platform="tensorrt_plan", **common)


def write_repository(output: Path, keyframe: EngineModel, nonkeyframe: Optional[EngineModel],
                     settings: ExportSettings, *, emulated: bool, plugin_library: Optional[Path] = None,
                     overwrite: bool = False) -> Path:
    """Write the whole repository into a temporary folder, then rename it to ``output``.
    ``nonkeyframe`` None (an image config): the keyframe model alone, every frame a keyframe."""
    output = Path(output)
    if nonkeyframe is None:
        if settings.keyframe_interval != 1 or settings.motion_threshold is not None:
            raise ExportError("without a non-keyframe model every frame is a keyframe: keyframe interval 1 and "
                              "no motion threshold")
    elif keyframe.config != nonkeyframe.config:
        raise ExportError(f"the keyframe engine is of {keyframe.config}, the non-keyframe engine of "
                          f"{nonkeyframe.config}: both must come from one config and one checkpoint")
    if nonkeyframe is not None and rescores_masks(keyframe) != rescores_masks(nonkeyframe):
        which = "keyframe" if rescores_masks(keyframe) else "non-keyframe"
        raise ExportError(f"only the {which} engine outputs {names.MASK_SCORES!r}: both must come from one "
                          "config and one checkpoint")
    if output.exists() and not overwrite:
        raise ExportError(f"{output} exists; choose another folder or pass --overwrite")
    if not output.parent.is_dir():
        raise ExportError(f"folder {output.parent} does not exist (it is not created)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        model_names = {}
        stored: dict[Path, Path] = {}  # source -> its one copy: the emulated models share the weights
        for model in (keyframe, nonkeyframe) if nonkeyframe is not None else (keyframe,):
            model_name = f"{settings.name}_{model.role}"
            model_names[model.role] = model_name
            version = tmp / model_name / "1"
            version.mkdir(parents=True)
            parameters = dict(model.parameters)
            for file_name, src in model.files.items():
                if src is None:
                    _write(version / file_name, MODEL_PY["emulator"])
                    continue
                source = Path(src).resolve()
                if source in stored:  # a parameter naming the file now names the first copy
                    relative = os.path.relpath(stored[source], version)
                    parameters = {k: relative if v == file_name else v for k, v in parameters.items()}
                    continue
                _copy(source, version / file_name)
                stored[source] = version / file_name
            model = replace(model, parameters=parameters)
            _write(tmp / model_name / "config.pbtxt", _engine_config(model, model_name, settings, emulated))
        inputs, outputs = orchestrator_specs()
        params = {"keyframe_model": model_names["keyframe"], **(
                      {"nonkeyframe_model": model_names["nonkeyframe"]} if nonkeyframe is not None else {}),
                  "keyframe_interval": str(settings.keyframe_interval), "idle_timeout_s": str(settings.idle_timeout_s),
                  "score_threshold": str(settings.score_threshold), "config": keyframe.config}
        if settings.motion_threshold is not None:
            params["motion_threshold"] = str(settings.motion_threshold)
        if rescores_masks(keyframe):  # the orchestrator requests mask_scores from the model(s)
            params["mask_scores"] = "1"
        (tmp / settings.name / "1").mkdir(parents=True)
        _write(tmp / settings.name / "config.pbtxt", mc.sequence_model(
            settings.name, inputs=inputs, outputs=outputs, max_batch_size=settings.max_streams,
            idle_timeout_us=int(settings.idle_timeout_s * 1e6), instances=settings.instances,
            kind="KIND_CPU" if emulated else "KIND_GPU", parameters=params))
        _write(tmp / settings.name / "1" / "model.py", MODEL_PY["orchestrator"])
        if plugin_library is not None:
            (tmp / PLUGIN_DIR).mkdir()
            _copy(plugin_library, tmp / PLUGIN_DIR / plugin_library.name)
        from .readme import repository_readme

        _write(tmp / "README.md", repository_readme(settings, model_names, plugin_library, emulated))
        if output.exists():
            old = output.with_name(f".{output.name}.old")
            os.replace(output, old)
            os.replace(tmp, output)
            shutil.rmtree(old)
        else:
            os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
