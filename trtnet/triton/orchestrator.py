"""The model clients call: a Triton Python-backend (BLS) orchestrator of the video schedule.

Under Triton's sequence batcher (``oldest`` strategy) one ``execute`` receives frames of
several camera streams, at most one per stream, each with its correlation id and START/END
flags. Per stream (:class:`trtnet.triton.streams.StreamTable`) it keeps the frame count and
the keyframe state, sends every frame to the keyframe or the non-keyframe model with
*asynchronous* BLS requests (awaited together, so Triton's dynamic batcher can merge the
streams' frames into one engine batch), keeps the keyframe state where the keyframe model
left it (GPU tensors passed on through DLPack, never copied to the host), assembles the
masks (CuPy on the GPU, NumPy in the CPU test mode; :func:`trtnet.runtime.masks.postprocess`) and
answers classes, scores, mask scores, boxes and masks (the mask scores are the engines'
``mask_scores`` output when they re-score masks, YOLACT++; the box scores otherwise). Streams idle for longer than the timeout are
evicted (Triton sends no signal when it drops a sequence); START resets a stream.
Without a ``nonkeyframe_model`` parameter (an image config: no flow network) every frame goes
to the keyframe model and no state is kept (the interval must then be 1).

The repository's ``model.py`` re-exports :class:`TritonPythonModel`; trtnet must be
importable in Triton's Python environment (``pip install trtnet`` there).
"""

from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np

from trtnet import names
from trtnet.network.yolact_edge import STATE_INPUTS
from trtnet.runtime.segmenter import REQUIRED_OUTPUTS, instances_from_outputs

from .model_config import CONTROL_CORRID, CONTROL_END, CONTROL_START
from .streams import StreamTable

# Orchestrator outputs (one response per frame; upstream postprocess's results).
OUT_CLASSES = "classes"    # int32 [D] 0-based foreground class
OUT_SCORES = "scores"      # float32 [D] box scores
OUT_MASK_SCORES = "mask_scores"  # float32 [D] mask scores (YOLACT++ re-scored; else = scores)
OUT_BOXES = "boxes"        # int32 [D, 4] pixels x1, y1, x2, y2
OUT_MASKS = "masks"        # uint8 [D, H, W] 0/1 at the frame's size
OUT_KEYFRAME = "keyframe"  # bool [1]: which model ran

# Model parameters (config.pbtxt ``parameters``) the exporter writes.
PARAMETERS = ("keyframe_model", "nonkeyframe_model", "keyframe_interval", "motion_threshold",
              "idle_timeout_s", "score_threshold", "mask_scores")
# Parameter "mask_scores" = "1": the engine models output names.MASK_SCORES (the exporter reads
# it from their I/O), so the orchestrator requests it; otherwise the box scores are the mask scores.


def _parameter(config: dict, key: str) -> Optional[str]:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return value if value not in (None, "") else None


class TritonPythonModel:
    """Triton Python-backend entry points (``initialize``, async ``execute``, ``finalize``)."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils  # only inside Triton (or a test's stand-in)

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        if _parameter(config, "keyframe_model") is None:
            raise pb_utils.TritonModelException("config.pbtxt lacks the parameter keyframe_model")
        self.keyframe_model = _parameter(config, "keyframe_model")
        self.nonkeyframe_model = _parameter(config, "nonkeyframe_model")  # None: keyframes only
        motion = _parameter(config, "motion_threshold")
        interval = int(_parameter(config, "keyframe_interval") or (5 if self.nonkeyframe_model else 1))
        if self.nonkeyframe_model is None and (interval != 1 or motion is not None):
            raise pb_utils.TritonModelException(
                f"keyframe_interval {interval}{' and motion_threshold' if motion is not None else ''} without a "
                "nonkeyframe_model: with the keyframe model alone every frame is a keyframe (interval 1)")
        self.streams = StreamTable(interval,
                                   float(_parameter(config, "idle_timeout_s") or 60.0),
                                   motion_threshold=None if motion is None else float(motion))
        self.score_threshold = float(_parameter(config, "score_threshold") or 0.0)
        rescored = _parameter(config, "mask_scores") == "1"
        self.detector_outputs = [*REQUIRED_OUTPUTS] + ([names.MASK_SCORES] if rescored else [])
        # The keyframe state is requested only where a non-keyframe model reads it.
        self.keyframe_outputs = [*self.detector_outputs] + ([*STATE_INPUTS] if self.nonkeyframe_model else [])
        self.nonkeyframe_outputs = [*self.detector_outputs] + ([names.FLOW_MOTION] if motion is not None else [])

    # -- tensors ----------------------------------------------------------------------------
    def _array(self, tensor: Any, *, keep: bool = False) -> Any:
        """A response tensor as a NumPy (CPU) or CuPy (GPU, zero-copy DLPack) array; ``keep``:
        it outlives this execute (keyframe state), so a CPU tensor is copied out of the
        response's shared memory."""
        if tensor.is_cpu():
            return np.array(tensor.as_numpy()) if keep else tensor.as_numpy()
        import cupy  # GPU tensors only occur where CuPy is installed with Triton

        return cupy.from_dlpack(tensor.to_dlpack())

    def _tensor(self, name: str, array: Any) -> Any:
        if isinstance(array, np.ndarray):
            return self.pb.Tensor(name, array)
        return self.pb.Tensor.from_dlpack(name, array)  # CuPy: stays on the GPU

    def _control(self, request: Any, name: str) -> int:
        tensor = self.pb.get_input_tensor_by_name(request, name)
        return 0 if tensor is None else int(np.asarray(tensor.as_numpy()).reshape(-1)[0])

    # -- one batch of frames ----------------------------------------------------------------
    def _bls_request(self, frame_tensor: Any, stream: Any, keyframe: bool) -> Any:
        if keyframe:
            return self.pb.InferenceRequest(model_name=self.keyframe_model, inputs=[frame_tensor],
                                            requested_output_names=self.keyframe_outputs)
        state = [self._tensor(input_name, stream.state[input_name]) for input_name in STATE_INPUTS.values()]
        return self.pb.InferenceRequest(model_name=self.nonkeyframe_model, inputs=[frame_tensor, *state],
                                        requested_output_names=self.nonkeyframe_outputs)

    async def execute(self, requests: list) -> list:
        import asyncio

        self.streams.evict_idle()
        plans, pending = [], []
        for request in requests:
            frame_tensor = self.pb.get_input_tensor_by_name(request, names.INPUT)
            frame_shape = tuple(frame_tensor.shape())
            corrid = self._control(request, CONTROL_CORRID)
            stream, keyframe = self.streams.frame(corrid, start=bool(self._control(request, CONTROL_START)),
                                                  frame_hw=(int(frame_shape[-3]), int(frame_shape[-2])))
            plans.append((corrid, stream, keyframe, frame_shape, bool(self._control(request, CONTROL_END))))
            pending.append(self._bls_request(frame_tensor, stream, keyframe).async_exec())
        results = await asyncio.gather(*pending)
        return [self._respond(plan, result) for plan, result in zip(plans, results)]

    def _respond(self, plan: tuple, result: Any) -> Any:
        corrid, stream, keyframe, frame_shape, end = plan
        if result.has_error():
            self.streams.end(corrid)  # its state may be half-updated: the stream restarts with START
            return self.pb.InferenceResponse(error=self.pb.TritonError(
                f"stream {corrid}: the {'keyframe' if keyframe else 'non-keyframe'} model failed: "
                f"{result.error().message()}"))
        get = lambda n: self.pb.get_output_tensor_by_name(result, n)  # noqa: E731
        if keyframe and self.nonkeyframe_model is not None:
            # The non-keyframe model's state inputs, under their input names (CuPy arrays on the
            # GPU hold the response's memory through DLPack: no copy, no host round trip).
            stream.state = {input_name: self._array(get(exported), keep=True)
                            for exported, input_name in STATE_INPUTS.items()}
        elif self.streams.motion_threshold is not None:
            stream.schedule.record_motion(self._array(get(names.FLOW_MOTION)))
        outputs = {n: self._array(get(n)) for n in self.detector_outputs}
        inst = instances_from_outputs(outputs, (int(frame_shape[-3]), int(frame_shape[-2])),
                                      score_threshold=self.score_threshold)
        if end:
            self.streams.end(corrid)
        tensors = [
            self._tensor(OUT_CLASSES, _batch1(inst.classes.astype(np.int32))),
            self._tensor(OUT_SCORES, _batch1(inst.scores.astype(np.float32))),
            self._tensor(OUT_MASK_SCORES, _batch1(inst.mask_scores.astype(np.float32))),
            self._tensor(OUT_BOXES, _batch1(inst.boxes.astype(np.int32))),
            self._tensor(OUT_MASKS, _batch1(inst.masks.view(np.uint8))),  # bool is one byte of 0/1: no copy
            self.pb.Tensor(OUT_KEYFRAME, np.array([[keyframe]], dtype=bool)),
        ]
        return self.pb.InferenceResponse(output_tensors=tensors)

    def finalize(self) -> None:
        self.streams = None


def _batch1(array: Any) -> Any:
    """The response's batch dimension (the orchestrator batches one frame per request)."""
    return array[None]
