"""Example client: one Triton sequence per stream (a video file, a folder of images or a
camera index), frames sent in order over gRPC; prints per-frame results and the rate.

    python -m trtnet.triton.client --url localhost:8001 --model yolact_edge cam0.mp4 cam1.mp4
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from trtnet import names

from .orchestrator import OUT_BOXES, OUT_CLASSES, OUT_KEYFRAME, OUT_MASK_SCORES, OUT_MASKS, OUT_SCORES

OUTPUTS = (OUT_CLASSES, OUT_SCORES, OUT_MASK_SCORES, OUT_BOXES, OUT_MASKS, OUT_KEYFRAME)


def segment_frame(client, model: str, frame: np.ndarray, sequence_id: int, *, start: bool, end: bool) -> dict:
    """Send one uint8 BGR frame of sequence ``sequence_id``; the orchestrator's outputs (no batch dim)."""
    import tritonclient.grpc as grpcclient

    inp = grpcclient.InferInput(names.INPUT, [1, *frame.shape], "UINT8")
    inp.set_data_from_numpy(np.ascontiguousarray(frame)[None])
    result = client.infer(model, [inp], sequence_id=sequence_id, sequence_start=start, sequence_end=end,
                          outputs=[grpcclient.InferRequestedOutput(n) for n in OUTPUTS])
    return {n: result.as_numpy(n)[0] for n in OUTPUTS}


def frames_of(source: str) -> Iterator[np.ndarray]:
    """Frames of a video file, a camera index or an image folder (sorted), via OpenCV."""
    import cv2
    from pathlib import Path

    if Path(source).is_dir():
        for path in sorted(p for p in Path(source).iterdir() if p.is_file()):
            image = cv2.imread(str(path))
            if image is not None:
                yield image
        return
    camera = source.isdigit() and not Path(source).exists()
    cap = cv2.VideoCapture(int(source) if camera else source)
    if not cap.isOpened():
        raise OSError(f"cannot open {stream_label(source)}")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def stream_label(source: str) -> str:
    """What a stream is called in messages: ``camera 0`` only for a camera index."""
    from pathlib import Path

    if Path(source).is_dir():
        return f"folder {source}"
    if source.isdigit() and not Path(source).exists():
        return f"camera {source}"
    return f"video {source}"


def run_stream(client, model: str, sequence_id: int, frames: Iterable[np.ndarray]) -> list[dict]:
    """A whole stream as one sequence (START on the first frame, END on the last)."""
    frames = iter(frames)
    current: Optional[np.ndarray] = next(frames, None)
    results, first = [], True
    while current is not None:
        following = next(frames, None)
        results.append(segment_frame(client, model, current, sequence_id, start=first, end=following is None))
        first, current = False, following
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trtnet.triton.client", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  python -m trtnet.triton.client --url localhost:8001 cam0.mp4 "
                                       "cam1.mp4\n  python -m trtnet.triton.client 0 frames/\n\nexit status: 0 ok; "
                                       "1 a stream failed (message on stderr); 2 usage error")
    p.add_argument("sources", nargs="+", help="video files, image folders or camera indices: one stream each")
    p.add_argument("--url", default="localhost:8001", help="Triton gRPC address (default localhost:8001)")
    p.add_argument("--model", default="yolact_edge", help="the orchestrator model's name (default yolact_edge)")
    args = p.parse_args(argv)
    import threading

    import tritonclient.grpc as grpcclient

    counts, errors = [0] * len(args.sources), []

    def stream(i: int, source: str) -> None:
        label = stream_label(source)
        client = grpcclient.InferenceServerClient(args.url)  # one connection per stream thread
        try:
            for r in run_stream(client, args.model, 1000 + i, frames_of(source)):
                counts[i] += 1
                print(f"{label} frame {counts[i]}: {len(r[OUT_SCORES])} detections"
                      f"{' (keyframe)' if r[OUT_KEYFRAME][0] else ''}")
        except Exception as exc:  # noqa: BLE001 - reported per stream
            errors.append(f"{label}: {exc}")

    start = time.perf_counter()
    threads = [threading.Thread(target=stream, args=(i, s)) for i, s in enumerate(args.sources)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    print(f"{sum(counts)} frames from {len(counts)} streams in {seconds:.1f} s ({sum(counts) / seconds:.1f} frames/s)")
    for e in errors:
        print(f"trtnet.triton.client: error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
