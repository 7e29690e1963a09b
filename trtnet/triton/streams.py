"""Per-camera-stream bookkeeping of the Triton orchestrator (no Triton needed: unit-testable).

Triton's sequence batcher routes every frame of a stream (one correlation id) to the
orchestrator in order, but keeps no state for it across our two models, and it sends no
signal when it drops an idle sequence. :class:`StreamTable` therefore holds, per
correlation id, the keyframe schedule (the same :class:`trtnet.runtime.schedule.KeyframeSchedule`
as :class:`trtnet.runtime.VideoSegmenter`), the keyframe state tensors and when the stream
was last seen, and evicts streams idle for longer than the timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from trtnet.runtime.schedule import KeyframeSchedule


@dataclass
class Stream:
    """One camera stream: its schedule, keyframe state (device tensors) and last activity."""

    schedule: KeyframeSchedule
    last_seen: float
    state: Optional[dict[str, Any]] = None
    frames: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StreamTable:
    """Streams by correlation id.

    ``keyframe_interval`` and ``motion_threshold`` as in VideoSegmenter; ``idle_timeout_s``:
    a stream not seen for longer than this is forgotten (its next frame must carry START,
    which Triton's sequence batcher enforces after its own idle timeout, set to the same value).
    """

    def __init__(self, keyframe_interval: int, idle_timeout_s: float, *,
                 motion_threshold: Optional[float] = None, clock: Callable[[], float] = time.monotonic) -> None:
        if not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s}")
        KeyframeSchedule(keyframe_interval, motion_threshold)  # validates the settings once
        self.keyframe_interval = keyframe_interval
        self.motion_threshold = motion_threshold
        self.idle_timeout_s = float(idle_timeout_s)
        self.clock = clock
        self._streams: dict[int, Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, corrid: int) -> bool:
        return corrid in self._streams

    def get(self, corrid: int) -> Optional[Stream]:
        return self._streams.get(corrid)

    def frame(self, corrid: int, *, start: bool, frame_hw: tuple[int, int]) -> tuple[Stream, bool]:
        """Register a frame of ``corrid``: (its stream, whether it runs the keyframe model).

        START (or an unknown stream) begins a new stream; a frame size unlike the stream's
        last one forces a keyframe (the keyframe state has that size's feature maps)."""
        now = self.clock()
        stream = None if start else self._streams.get(corrid)
        if stream is None:
            stream = Stream(KeyframeSchedule(self.keyframe_interval, self.motion_threshold), now)
            self._streams[corrid] = stream
        stream.last_seen = now
        keyframe = stream.schedule.take(frame_hw)
        stream.frames += 1
        return stream, keyframe

    def end(self, corrid: int) -> None:
        """The stream's last frame was answered (END): forget it."""
        self._streams.pop(corrid, None)

    def evict_idle(self) -> list[int]:
        """Forget streams not seen for longer than the idle timeout; their ids."""
        now = self.clock()
        idle = [c for c, s in self._streams.items() if now - s.last_seen > self.idle_timeout_s]
        for corrid in idle:
            del self._streams[corrid]
        return idle
