"""NVTX ranges of the Python runtime and the per-stage times ``python -m trtnet.infer --log`` reports.

Every range name is here, in domain :data:`DOMAIN`, so an Nsight Systems timeline reads the
same whichever code path ran (docs/profiling.md). The ranges go through the ``nvtx`` package
when it is installed and cost nothing otherwise.

``with stage(UPLOAD): ...`` always opens the NVTX range; inside ``with StageTimes(sync) as t:``
it also adds the stage's wall time to ``t.ms`` (exclusive of the stages nested in it), calling
``sync`` (e.g. the CUDA stream's ``synchronize``) before reading the clock so asynchronous GPU
work is charged to the stage that queued it. Without a StageTimes nothing synchronizes.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from typing import Callable, Iterator, Optional

DOMAIN = "trtnet"

# Range (and stage) names, in pipeline order.
READ = "read"                       # decode the next frame (infer)
UPLOAD = "upload"                   # host frame -> the engine's device input buffers
KEYFRAME_ENGINE = "engine keyframe"  # the keyframe engine (single images: the only engine)
NONKEYFRAME_ENGINE = "engine nonkeyframe"  # the non-keyframe (video) engine
MASKS = "masks"                     # mask assembly: sigmoid(protos @ coeffs), crop, resize, threshold
POSTPROCESS = "postprocess"         # score threshold, pixel boxes, copy to the host (masks excluded)
DRAW = "draw"                       # overlay (infer)
WRITE = "write"                     # encode and write outputs (infer)

try:  # optional: NVIDIA's nvtx package (pip install nvtx)
    import nvtx as _nvtx  # type: ignore[import-not-found]
except Exception:  # noqa: BLE001 - any import failure just means no ranges
    _nvtx = None

_active: contextvars.ContextVar[Optional["StageTimes"]] = contextvars.ContextVar("trtnet_stage_times",
                                                                                  default=None)


def nvtx_available() -> bool:
    """True when ranges reach NVTX (the ``nvtx`` package is importable)."""
    return _nvtx is not None


class StageTimes:
    """Wall milliseconds per stage while active (``with StageTimes(sync) as times``)."""

    def __init__(self, sync: Optional[Callable[[], None]] = None) -> None:
        self.sync = sync
        self.ms: dict[str, float] = {}
        self._stack: list[list[float]] = []  # per open stage: [start, time spent in nested stages]
        self._token: Optional[contextvars.Token] = None

    def __enter__(self) -> "StageTimes":
        self._token = _active.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _active.reset(self._token)

    def _begin(self) -> None:
        if self.sync is not None:
            self.sync()
        self._stack.append([time.perf_counter(), 0.0])

    def _end(self, name: str) -> None:
        if self.sync is not None:
            self.sync()
        start, nested = self._stack.pop()
        total = time.perf_counter() - start
        self.ms[name] = self.ms.get(name, 0.0) + (total - nested) * 1e3
        if self._stack:
            self._stack[-1][1] += total


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """An NVTX range ``name`` (domain trtnet), timed when a :class:`StageTimes` is active."""
    times = _active.get()
    ranged = _nvtx.annotate(name, domain=DOMAIN) if _nvtx is not None else contextlib.nullcontext()
    with ranged:
        if times is None:
            yield
            return
        times._begin()
        try:
            yield
        finally:
            times._end(name)
