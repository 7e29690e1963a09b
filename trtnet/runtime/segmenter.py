"""Frames in, instances out: an engine plus the mask assembler.

The engine is a TensorRT :class:`Engine` or anything offering its interface (an
:class:`~trtnet.runtime.emulated.EmulatedEngine` on CPU): named inputs in, named outputs
out, a ``stream``. The postprocess is :func:`instances_from_outputs` (any backend producing
the det/* and proto tensors): upstream's ``postprocess`` via :func:`trtnet.runtime.masks.postprocess`,
on CuPy arrays on the engine's stream, or on NumPy arrays.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from trtnet import names

from trtnet.runtime import profiling
from trtnet.runtime.masks import Instances, postprocess

from .engine import Engine, EngineError, EngineSource, frame_batch

REQUIRED_OUTPUTS = (*names.DETECTIONS, names.PROTO)


def instances_from_outputs(outputs: Mapping[str, Any], frame_hw: tuple[int, int], *,
                           score_threshold: float = 0.0, crop: bool = True) -> Instances:
    """Detector outputs (det/*, proto; NumPy or CuPy) of one frame -> Instances at the frame's size.

    A YOLACT++ engine's ``mask_scores`` output becomes Instances.mask_scores; without it the
    mask scores are the box scores."""
    missing = [n for n in REQUIRED_OUTPUTS if n not in outputs]
    if missing:
        raise KeyError(f"the network produced no {', '.join(missing)}; was it built by trtnet.build?")
    return postprocess(outputs[names.DET_COUNT], outputs[names.DET_BOXES], outputs[names.DET_SCORES],
                       outputs[names.DET_CLASSES], outputs[names.DET_COEFFS], outputs[names.PROTO],
                       frame_hw, crop=crop, score_threshold=score_threshold,
                       mask_scores=outputs.get(names.MASK_SCORES))


def is_engine(engine: Any) -> bool:
    """True for an object with the Engine interface (TensorRT or emulated), False for a file/bytes."""
    return all(hasattr(engine, attr) for attr in ("run", "inputs", "outputs", "stream"))


def assemble_on_stream(outputs: Mapping[str, Any], frame_hw: tuple[int, int], stream: Any, *,
                       score_threshold: float, crop: bool, on_device: bool) -> Instances:
    """Instances of one frame from an engine's outputs: the mask assembler's work follows the
    engine on its ``stream``, then the result is copied to the host unless ``on_device``."""
    with profiling.stage(profiling.POSTPROCESS):
        with stream:
            inst = instances_from_outputs(outputs, frame_hw, score_threshold=score_threshold, crop=crop)
        stream.synchronize()
        return inst if on_device else to_host(inst)


def host_array(array: Any) -> np.ndarray:
    """``array`` as a NumPy array (copied from the GPU when it is a CuPy array)."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def outputs_of_frame(outputs: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The outputs of batch entry ``index`` (each output keeps a batch dimension of 1)."""
    return {name: array[index:index + 1] for name, array in outputs.items()}


def is_batch_call(frame: Any) -> bool:
    """A list of frames, or an NxHxWx3 array with N != 1: the caller gets a list of Instances."""
    return isinstance(frame, (list, tuple)) or (len(frame.shape) == 4 and int(frame.shape[0]) != 1)


def assemble_batch(outputs: Mapping[str, Any], batch: Any, stream: Any, *, score_threshold: float,
                   crop: bool, on_device: bool) -> list[Instances]:
    """Instances of every frame of ``batch`` [N,H,W,3] from the engine's outputs (see assemble_on_stream)."""
    frame_hw = (int(batch.shape[1]), int(batch.shape[2]))
    return [assemble_on_stream(outputs_of_frame(outputs, i), frame_hw, stream, score_threshold=score_threshold,
                               crop=crop, on_device=on_device) for i in range(int(batch.shape[0]))]


def to_host(inst: Instances) -> Instances:
    """Every field as a NumPy array (copies from the GPU when they are CuPy arrays)."""
    return Instances(*(None if a is None else host_array(a) for a in inst))


class Segmenter:
    """Instance segmentation of images with a keyframe engine (TensorRT, a file or bytes of
    one, or an emulated engine).

    ``Segmenter("model.engine")(frame)`` -> Instances (classes 0-based foreground, scores,
    pixel boxes x1, y1, x2, y2, bool masks [D, H, W], mask scores) like upstream's ``postprocess``;
    on the host by default, on the GPU with ``on_device=True``. A list of frames of one size
    (e.g. one per camera; engines built with ``--max-batch N``) runs as one batch and gives
    a list of Instances, in order.
    """

    def __init__(self, engine: Engine | EngineSource, *, score_threshold: float = 0.0, crop: bool = True,
                 on_device: bool = False, **engine_kwargs: Any) -> None:
        self.engine = engine if is_engine(engine) else Engine(engine, **engine_kwargs)
        missing = [n for n in REQUIRED_OUTPUTS if n not in self.engine.outputs]
        if missing:
            raise EngineError(f"{self.engine.source} has no output(s) {', '.join(missing)}: not a trtnet "
                              f"detector engine (outputs: {', '.join(self.engine.outputs)})")
        self.score_threshold = score_threshold
        self.crop = crop
        self.on_device = on_device

    def outputs(self, frame: Any) -> dict[str, Any]:
        """The engine's raw outputs for one frame (device buffers, valid until the next call)."""
        return self.engine(frame)

    def __call__(self, frame: Any, score_threshold: Optional[float] = None) -> Instances | list[Instances]:
        batch = frame_batch(frame, getattr(self.engine, "cupy", None))
        with profiling.stage(profiling.KEYFRAME_ENGINE):
            outputs = self.engine(batch, synchronize=False)
        threshold = self.score_threshold if score_threshold is None else score_threshold
        found = assemble_batch(outputs, batch, self.engine.stream, score_threshold=threshold, crop=self.crop,
                               on_device=self.on_device)
        return found if is_batch_call(frame) else found[0]
