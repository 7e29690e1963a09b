"""Video segmentation with a keyframe and a non-keyframe engine (YolactEdge's video mode).

Upstream ``eval.py`` runs the full network on every k-th frame (``every_k_frames = 5``,
frame index % k == 0) and keeps its phase-1 features (P4, P5) and C3 lateral; the frames
in between run the partial backbone + FeatFlowNet and warp that keyframe state. Here the
state never leaves the device: the non-keyframe engine reads the keyframe engine's outputs
in place (both engines share one stream; the buffers are overwritten only by the next
keyframe). The engines are TensorRT engines or emulated ones (trtnet.runtime.emulated):
the schedule below needs neither TensorRT nor CuPy.

Adaptive keyframes (beyond the paper, its "smart keyframe selection" future work): every
non-keyframe engine also outputs ``flow/motion``, how far the frame has moved from its
keyframe (trtnet.network.flow.motion_statistic). With a ``motion_threshold``, a non-keyframe
whose motion is above it makes the next frame a keyframe; ``keyframe_interval`` is then
the longest run allowed between keyframes.
"""

from __future__ import annotations

from typing import Any, Optional

from trtnet import names

from trtnet.runtime import profiling
from trtnet.runtime.masks import Instances
from trtnet.network.yolact_edge import STATE_INPUTS

from .engine import Engine, EngineError, EngineSource, frame_batch
from .schedule import DEFAULT_KEYFRAME_INTERVAL, KeyframeSchedule
from .segmenter import REQUIRED_OUTPUTS, assemble_batch, is_batch_call, is_engine
# flow/motion above which --adaptive-keyframes makes the next frame a keyframe (a relative
# feature change; python -m trtnet.bench keyframes shows its response to slow and fast motion)
DEFAULT_MOTION_THRESHOLD = 0.3


class VideoSegmenter:
    """Frames of one video in order -> Instances per frame.

    ``keyframe``: an engine exporting the keyframe state (trtnet.build of a video config
    does, as does ``EmulatedEngine(weights, config)``); ``nonkeyframe``: the non-keyframe
    engine of the same config and weights. Both are Engine-like objects sharing one stream,
    or engine files/bytes (then loaded with TensorRT). Call :meth:`reset` at a cut or a new
    video. After each frame, ``last_was_keyframe`` says which engine ran and ``last_motion``
    is the non-keyframe's motion statistic (None after a keyframe).

    Schedule (:class:`~trtnet.runtime.schedule.KeyframeSchedule`, shared with the Triton
    orchestrator): a keyframe when ``keyframe_interval`` frames have passed since the last one
    (from the first frame: upstream's frame % k == 0), when the frame size changes, or, with
    ``motion_threshold``, right after a non-keyframe whose motion was above the threshold.

    Several cameras at once: call with a list of frames of one size (one per camera, always
    in the same order) and get a list of Instances; each camera keeps its own keyframe state
    (batch entry i of the state), all cameras switch to a keyframe together (adaptive: when
    any camera's motion crosses the threshold), and a change of batch size starts with a keyframe.
    """

    def __init__(self, keyframe: Engine | EngineSource, nonkeyframe: Engine | EngineSource, *,
                 keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL, motion_threshold: Optional[float] = None,
                 score_threshold: float = 0.0, crop: bool = True, on_device: bool = False,
                 **engine_kwargs: Any) -> None:
        self.schedule = KeyframeSchedule(keyframe_interval, motion_threshold)
        self.keyframe = keyframe if is_engine(keyframe) else Engine(keyframe, **engine_kwargs)
        stream_kwargs = {"stream": self.keyframe.stream, **engine_kwargs}
        self.nonkeyframe = nonkeyframe if is_engine(nonkeyframe) else Engine(nonkeyframe, **stream_kwargs)
        self.stream = self.keyframe.stream
        if self.nonkeyframe.stream is not self.stream:
            raise EngineError("the keyframe and non-keyframe engines must share one stream (pass stream=)")
        for engine, what in ((self.keyframe, "keyframe"), (self.nonkeyframe, "non-keyframe")):
            missing = [n for n in REQUIRED_OUTPUTS if n not in engine.outputs]
            if missing:
                raise EngineError(f"the {what} engine {engine.source} has no output(s) {', '.join(missing)}")
        not_exported = [n for n in STATE_INPUTS if n not in self.keyframe.outputs]
        if not_exported:
            raise EngineError(f"the keyframe engine {self.keyframe.source} does not export the keyframe state "
                              f"({', '.join(not_exported)}); build it from a video config")
        not_taken = [n for n in STATE_INPUTS.values() if n not in self.nonkeyframe.inputs]
        if not_taken:
            raise EngineError(f"{self.nonkeyframe.source} is not a non-keyframe engine (no input(s) "
                              f"{', '.join(not_taken)})")
        if motion_threshold is not None and names.FLOW_MOTION not in self.nonkeyframe.outputs:
            raise EngineError(f"adaptive keyframes need the {names.FLOW_MOTION} output, which the non-keyframe "
                              f"engine {self.nonkeyframe.source} lacks: rebuild it with this trtnet "
                              "(python -m trtnet.build --nonkeyframe)")
        self.score_threshold = score_threshold
        self.crop = crop
        self.on_device = on_device
        self.reset()

    @property
    def keyframe_interval(self) -> int:
        return self.schedule.interval

    @property
    def motion_threshold(self) -> Optional[float]:
        return self.schedule.motion_threshold

    @property
    def adaptive(self) -> bool:
        return self.schedule.adaptive

    def reset(self) -> None:
        """Forget the keyframe: the next frame is a keyframe."""
        self.index = 0
        self._state: Optional[dict[str, Any]] = None
        self.schedule.reset()
        self.last_was_keyframe = False

    @property
    def last_motion(self) -> Optional[float]:
        """The motion statistic of the last frame if it was a non-keyframe (else None; for a
        batch of cameras the largest)."""
        return self.schedule.last_motion

    def _state_batch(self) -> Optional[int]:
        """Cameras the keyframe state holds (None before the first keyframe)."""
        return None if self._state is None else int(next(iter(self._state.values())).shape[0])

    def next_is_keyframe(self, frame_hw: Optional[tuple[int, int]] = None) -> bool:
        """Whether the next frame (of size ``frame_hw``, if given) will run the keyframe engine."""
        return self._state is None or self.schedule.next_is_keyframe(frame_hw)

    def outputs(self, frame: Any, *, synchronize: bool = True) -> dict[str, Any]:
        """Raw outputs for the next frame (device buffers, valid until the next call of that
        engine), ready when this returns unless ``synchronize=False`` (then read them on
        :attr:`stream`). With adaptive keyframes a non-keyframe's motion is read on the stream
        here, and that read is the frame's one wait for the stream."""
        batch = frame_batch(frame, getattr(self.keyframe, "cupy", None))
        new_batch = self._state_batch() != int(batch.shape[0])  # also True before the first keyframe
        waited = False
        if self.schedule.take((int(batch.shape[1]), int(batch.shape[2])), force=new_batch):
            with profiling.stage(profiling.KEYFRAME_ENGINE):
                out = self.keyframe(batch, synchronize=False)
            self._state = {name: out[exported] for exported, name in STATE_INPUTS.items()}
            self.last_was_keyframe = True
        else:
            with profiling.stage(profiling.NONKEYFRAME_ENGINE):
                out = self.nonkeyframe.run({names.INPUT: batch, **self._state}, synchronize=False)
            motion = out.get(names.FLOW_MOTION)
            self.schedule.record_motion(motion, stream=self.stream)
            if synchronize and self.adaptive and motion is not None:
                waited = self.schedule.last_motion is not None  # copied on the stream: waits for it
            self.last_was_keyframe = False
        if synchronize and not waited:
            self.stream.synchronize()
        self.index += 1
        return out

    def __call__(self, frame: Any, score_threshold: Optional[float] = None) -> Instances | list[Instances]:
        batch = frame_batch(frame, getattr(self.keyframe, "cupy", None))
        out = self.outputs(batch, synchronize=False)  # the assembly follows on the stream
        threshold = self.score_threshold if score_threshold is None else score_threshold
        found = assemble_batch(out, batch, self.stream, score_threshold=threshold, crop=self.crop,
                               on_device=self.on_device)
        return found if is_batch_call(frame) else found[0]
