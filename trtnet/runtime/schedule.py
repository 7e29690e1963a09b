"""Which frames of a video run the keyframe network: one rule for every runtime.

Upstream ``eval.py`` runs the full network on every k-th frame (``every_k_frames = 5``:
frame index % k == 0). Beyond that rule a keyframe is forced at the start, after a reset
and when the frame size changes (the keyframe state holds feature maps of one size), and,
with adaptive keyframes, right after a non-keyframe whose motion statistic
(``flow/motion``) was above the threshold; ``interval`` then caps the run between keyframes.
Used by :class:`trtnet.runtime.VideoSegmenter` and the Triton orchestrator alike.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

DEFAULT_KEYFRAME_INTERVAL = 5  # upstream eval.py every_k_frames


def _largest(value: Any, stream: Any = None) -> float:
    """A motion output as one number: for a batch of cameras, the largest motion.

    A device value is copied on ``stream``, the engine's, so the copy follows the engine that
    wrote it: without a stream CuPy copies on the current stream ("If given, the stream is used
    to perform the copy. Otherwise, the current stream is used.", docs.cupy.dev cupy.asnumpy /
    ndarray.get), which is not ordered after a ``Stream(non_blocking=True)`` ("does not
    synchronize with the NULL stream", cupy.cuda.Stream) and can read the motion before the
    engine has written it."""
    if hasattr(type(value), "__cuda_array_interface__"):  # a device array (CuPy's, or the fakes')
        value = value.get() if stream is None else value.get(stream=stream)
    return float(np.asarray(value).max())


class KeyframeSchedule:
    """Keyframe decisions for one stream of frames."""

    def __init__(self, interval: int = DEFAULT_KEYFRAME_INTERVAL, motion_threshold: Optional[float] = None) -> None:
        if int(interval) != interval or int(interval) < 1:
            raise ValueError(f"keyframe_interval must be a whole number >= 1, got {interval}")
        if motion_threshold is not None and not float(motion_threshold) >= 0:
            raise ValueError(f"motion_threshold must be >= 0, got {motion_threshold}")
        self.interval = int(interval)
        self.motion_threshold = None if motion_threshold is None else float(motion_threshold)
        self.reset()

    def reset(self) -> None:
        """Forget the keyframe: the next frame is a keyframe."""
        self._since_keyframe: Optional[int] = None  # frames since the last keyframe, it included
        self._frame_hw: Optional[tuple[int, int]] = None
        self._motion: Any = None  # the last non-keyframe's motion (maybe a device scalar: read lazily)
        self._motion_stream: Any = None  # the stream that writes it
        self._motion_value: Optional[float] = None  # once read

    @property
    def adaptive(self) -> bool:
        return self.motion_threshold is not None

    @property
    def last_motion(self) -> Optional[float]:
        """The last frame's motion statistic if it was a non-keyframe, else None."""
        if self._motion is None:
            return None
        if self._motion_value is None:
            self._motion_value = _largest(self._motion, self._motion_stream)
        return self._motion_value

    def next_is_keyframe(self, frame_hw: Optional[tuple[int, int]] = None) -> bool:
        """Whether a frame of size ``frame_hw`` coming next runs the keyframe network."""
        if self._since_keyframe is None or self._since_keyframe >= self.interval:
            return True
        if frame_hw is not None and self._frame_hw is not None and tuple(frame_hw) != self._frame_hw:
            return True
        return self.adaptive and self._motion is not None and self.last_motion > self.motion_threshold

    def take(self, frame_hw: Optional[tuple[int, int]] = None, *, force: bool = False) -> bool:
        """Decide for the next frame and record it; True for a keyframe. ``force``: the caller
        needs a keyframe for its own reason (no state, another batch of cameras)."""
        keyframe = force or self.next_is_keyframe(frame_hw)
        if keyframe:
            self._since_keyframe = 0
        self._since_keyframe += 1
        self.record_motion(None)
        if frame_hw is not None:
            self._frame_hw = (int(frame_hw[0]), int(frame_hw[1]))
        return keyframe

    def record_motion(self, motion: Any, stream: Any = None) -> None:
        """The motion statistic the non-keyframe just taken produced (None: not available); a
        device array is read, when needed, on ``stream`` (the engine's, which writes it)."""
        self._motion, self._motion_stream, self._motion_value = motion, stream, None
