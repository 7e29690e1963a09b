"""Video segmentation with a keyframe and a non-keyframe engine (YolactEdge's video mode).

Upstream ``eval.py`` runs the full network on every k-th frame (``every_k_frames = 5``,
frame index % k == 0) and keeps its phase-1 features (P4, P5) and C3 lateral; the frames
in between run the partial backbone + FeatFlowNet and warp that keyframe state. Here the
state never leaves the GPU: the non-keyframe engine reads the keyframe engine's output
buffers in place (both engines share one stream; the buffers are overwritten only by the
next keyframe).
"""

from __future__ import annotations

from typing import Any, Optional

from trtnet import names
from trtnet.masks import Instances
from trtnet.network.yolact_edge import STATE_INPUTS

from .engine import Engine, EngineError, EngineSource, frame_batch
from .segmenter import REQUIRED_OUTPUTS, instances_from_outputs, to_host

DEFAULT_KEYFRAME_INTERVAL = 5  # upstream eval.py every_k_frames


class VideoSegmenter:
    """Frames of one video in order -> Instances per frame.

    ``keyframe``: an engine built with the keyframe state exported (trtnet.build of a video
    config does); ``nonkeyframe``: the non-keyframe engine of the same config and weights.
    Call :meth:`reset` at a cut or a new video.
    """

    def __init__(self, keyframe: Engine | EngineSource, nonkeyframe: Engine | EngineSource, *,
                 keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL, score_threshold: float = 0.0,
                 crop: bool = True, on_device: bool = False, **engine_kwargs: Any) -> None:
        if int(keyframe_interval) < 1:
            raise ValueError(f"keyframe_interval must be >= 1, got {keyframe_interval}")
        self.keyframe = keyframe if isinstance(keyframe, Engine) else Engine(keyframe, **engine_kwargs)
        stream_kwargs = {"stream": self.keyframe.stream, **engine_kwargs}
        self.nonkeyframe = (nonkeyframe if isinstance(nonkeyframe, Engine)
                            else Engine(nonkeyframe, **stream_kwargs))
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
        self.keyframe_interval = int(keyframe_interval)
        self.score_threshold = score_threshold
        self.crop = crop
        self.on_device = on_device
        self.reset()

    def reset(self) -> None:
        """Forget the keyframe: the next frame is a keyframe."""
        self.index = 0
        self._state: Optional[dict[str, Any]] = None
        self.last_was_keyframe = False

    def outputs(self, frame: Any) -> dict[str, Any]:
        """Raw outputs for the next frame (device buffers, valid until the next call of that engine)."""
        batch = frame_batch(frame)
        if self._state is None or self.index % self.keyframe_interval == 0:
            out = self.keyframe(batch, synchronize=False)
            self._state = {name: out[exported] for exported, name in STATE_INPUTS.items()}
            self.last_was_keyframe = True
        else:
            out = self.nonkeyframe.run({names.INPUT: batch, **self._state}, synchronize=False)
            self.last_was_keyframe = False
        self.index += 1
        return out

    def __call__(self, frame: Any, score_threshold: Optional[float] = None) -> Instances:
        batch = frame_batch(frame)
        out = self.outputs(batch)
        threshold = self.score_threshold if score_threshold is None else score_threshold
        with self.stream:
            inst = instances_from_outputs(out, (int(batch.shape[1]), int(batch.shape[2])),
                                          score_threshold=threshold, crop=self.crop)
        self.stream.synchronize()
        return inst if self.on_device else to_host(inst)
