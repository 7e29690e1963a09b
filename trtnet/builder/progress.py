"""Progress of a TensorRT engine build: ``IProgressMonitor`` shown as tqdm bars.

TensorRT (10.0+, in the 10.3 and 11.x bindings) reports nested build phases through
``IBuilderConfig.progress_monitor`` (NvInfer.h ``IProgressMonitor``: ``phaseStart(name,
parent, nbSteps)``, ``stepComplete(name, step)`` returning false to cancel, ``phaseFinish``).
Each phase gets one bar, indented under its parent; Ctrl-C cancels the build cleanly
through ``stepComplete`` instead of killing the process inside TensorRT.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, Iterator, Optional


def make_progress_monitor(trt: Any, *, enabled: Optional[bool] = None, file: Any = None) -> Optional[Any]:
    """An ``trt.IProgressMonitor`` drawing tqdm bars, or None when the bindings lack the class.

    ``enabled`` None: bars only on a terminal (tqdm's rule), so logs stay clean.
    """
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None
    from tqdm import tqdm

    class TqdmProgressMonitor(base):  # type: ignore[misc, valid-type]
        """Bars per build phase; ``cancelled`` after a KeyboardInterrupt asks TensorRT to stop."""

        def __init__(self) -> None:
            base.__init__(self)  # the binding's trampoline must be initialised explicitly
            self.bars: dict[str, Any] = {}
            self.depth: dict[str, int] = {}
            self.cancelled = False
            self.phases: list[str] = []  # every phase started, in order (for tests and logs)

        def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
            depth = self.depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self.depth[phase_name] = depth
            self.phases.append(phase_name)
            self.bars[phase_name] = tqdm(total=num_steps, desc="  " * depth + phase_name, leave=depth == 0,
                                         position=depth, disable=None if enabled is None else not enabled,
                                         file=file or sys.stderr, unit="step")

        def step_complete(self, phase_name: str, step: int) -> bool:
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.n = step + 1
                bar.refresh()
            return not self.cancelled

        def phase_finish(self, phase_name: str) -> None:
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return TqdmProgressMonitor()


@contextlib.contextmanager
def cancel_on_interrupt(monitor: Optional[Any]) -> Iterator[None]:
    """While inside, Ctrl-C sets ``monitor.cancelled`` (TensorRT stops at its next step)
    instead of raising inside a TensorRT callback; a second Ctrl-C interrupts at once."""
    if monitor is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if monitor.cancelled:
            raise KeyboardInterrupt
        monitor.cancelled = True
        print("\ntrtnet.build: cancelling the build (Ctrl-C again to interrupt at once)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
