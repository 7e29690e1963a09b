"""Adaptive vs fixed keyframes on a synthetic clip: a photo moved slowly, then fast.

``python -m trtnet.bench keyframes [--case DIR] [--frames 12] [--slow 1] [--fast 12] [--size 550]
[--motion-threshold M]`` -- a video reference case's photo and weights (default vid_resnet50)
on the emulator.
Runs the clip three ways: every frame a keyframe (the reference), the adaptive schedule
(a keyframe after any frame whose flow/motion exceeds M), and the fixed schedule with the
keyframe count closest to the adaptive one. Prints where each puts its keyframes, the
motion per frame, and how far each schedule's non-keyframe results are from the
all-keyframe results: FPN features P3-P7 and prototypes (mean |error| / mean |reference|),
and the share of reference detections (score > 0.3) found again (same class, box IoU >= 0.5).
Clip means count keyframes as exact, so the two schedules compare at equal cost.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from trtnet import names
from trtnet.runtime.video import DEFAULT_MOTION_THRESHOLD

FEATURES = names.FPN  # compared as the network's own intermediate results (EmulatedEngine fetch)
DETECTION_SCORE = 0.3
BOX_IOU = 0.5
EXAMPLES = (
    "python -m trtnet.bench keyframes --size 320 --frames 8",
    "python -m trtnet.bench keyframes --case ../shared/reference/vid_resnet50 --motion-threshold 0.05",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--case", type=Path, default=None, metavar="DIR",
                        help="reference case of a video config: its key image and weights (default "
                             "$TRTNET_REFERENCE_DIR/vid_resnet50, else ../shared/reference/vid_resnet50)")
    parser.add_argument("--frames", type=int, default=12, help="clip length; the first half slow (default 12)")
    parser.add_argument("--slow", type=float, default=1.0, help="slow motion, input pixels per frame (default 1)")
    parser.add_argument("--fast", type=float, default=12.0, help="fast motion, input pixels per frame (default 12)")
    parser.add_argument("--size", type=int, default=550,
                        help="network input side (max_size; default 550, upstream's; smaller is faster)")
    parser.add_argument("--motion-threshold", type=float, default=DEFAULT_MOTION_THRESHOLD,
                        help=f"adaptive schedule threshold (default {DEFAULT_MOTION_THRESHOLD})")


def synthetic_clip(image: np.ndarray, frames: int, slow: float, fast: float) -> tuple[list[np.ndarray], list[float]]:
    """``image`` translated along (1, 1/2) by ``slow`` pixels per frame for the first half of
    the clip, then ``fast``; the border reflects. Returns the frames and each one's shift."""
    import cv2

    h, w = image.shape[:2]
    shifts, shift = [], 0.0
    for i in range(frames):
        if i:
            shift += slow if i < frames // 2 else fast
        shifts.append(shift)
    clip = [cv2.warpAffine(image, np.float32([[1, 0, s], [0, 1, s / 2]]), (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT) for s in shifts]
    return clip, shifts


@dataclass
class ScheduleRun:
    label: str
    keyframes: list[bool]
    motions: list[Optional[float]]
    outputs: list[dict[str, np.ndarray]]

    @property
    def keyframe_indices(self) -> list[int]:
        return [i for i, k in enumerate(self.keyframes) if k]


def run_schedule(video: Any, clip: Sequence[np.ndarray], label: str) -> ScheduleRun:
    """Every frame through a VideoSegmenter: which engine ran, its motion, its raw outputs."""
    video.reset()
    run = ScheduleRun(label, [], [], [])
    for frame in clip:
        out = video.outputs(frame)
        run.keyframes.append(video.last_was_keyframe)
        run.motions.append(video.last_motion)
        run.outputs.append({k: np.array(v) for k, v in out.items()})
    return run


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean() / max(np.abs(b).mean(), 1e-12))


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


def detection_recall(got: dict, want: dict) -> Optional[float]:
    """Share of ``want``'s detections above DETECTION_SCORE that ``got`` has (same class, box IoU >= 0.5)."""
    def dets(out):
        n = int(np.asarray(out[names.DET_COUNT]).reshape(-1)[0])
        scores = np.asarray(out[names.DET_SCORES]).reshape(-1)[:n]
        keep = scores > DETECTION_SCORE
        return (np.asarray(out[names.DET_BOXES]).reshape(-1, 4)[:n][keep],
                np.asarray(out[names.DET_CLASSES]).reshape(-1)[:n][keep])

    (gb, gc), (wb, wc) = dets(got), dets(want)
    if len(wb) == 0:
        return None
    if len(gb) == 0:
        return 0.0
    hit = (_box_iou(wb, gb) >= BOX_IOU) & (wc[:, None] == gc[None, :])
    return float(hit.any(axis=1).mean())


def errors(run: ScheduleRun, reference: ScheduleRun) -> list[dict[str, Optional[float]]]:
    """Per frame: FPN and proto relative errors and detection recall against the reference run."""
    out = []
    for got, want in zip(run.outputs, reference.outputs):
        out.append({"fpn": float(np.mean([_relative(got[n], want[n]) for n in FEATURES])),
                     "proto": _relative(got[names.PROTO], want[names.PROTO]),
                     "recall": detection_recall(got, want)})
    return out


def closest_fixed_interval(frames: int, keyframes: int) -> int:
    """The fixed interval whose keyframe count (ceil(frames / k)) is closest to ``keyframes``
    (ties: more keyframes)."""
    return min(range(1, frames + 1), key=lambda k: (abs(-(-frames // k) - keyframes), k))


def _mean(values: Sequence[Optional[float]]) -> float:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else float("nan")


def compare(video_factory: Any, clip: Sequence[np.ndarray], threshold: float) -> dict[str, Any]:
    """The three runs and their errors: ``video_factory(interval, threshold)`` -> a VideoSegmenter."""
    n = len(clip)
    reference = run_schedule(video_factory(1, None), clip, "every frame")
    # the error of a non-keyframe that did not move at all: what warping costs whatever the motion
    still = run_schedule(video_factory(n, None), [clip[0], clip[0]], "still")
    floor = errors(still, replace(reference, outputs=[reference.outputs[0]] * 2))[1]
    adaptive = run_schedule(video_factory(n, threshold), clip, f"adaptive (motion > {threshold:g})")
    interval = closest_fixed_interval(n, sum(adaptive.keyframes))
    fixed = run_schedule(video_factory(interval, None), clip, f"fixed every {interval}")
    return {"reference": reference, "runs": [adaptive, fixed], "floor": floor,
            "errors": {r.label: errors(r, reference) for r in (adaptive, fixed)}}


def format_comparison(result: dict[str, Any], shifts: Sequence[float]) -> str:
    adaptive, fixed = result["runs"]
    lines = [f"{'frame':>5} {'shift px':>8} | {adaptive.label:>26} | {fixed.label:>22}"]
    for i, shift in enumerate(shifts):
        cells = []
        for run in (adaptive, fixed):
            e = result["errors"][run.label][i]
            motion = run.motions[i]
            what = "KEY" if run.keyframes[i] else f"m {motion:.3f} fpn {e['fpn']:.3f}"
            cells.append(what)
        lines.append(f"{i:>5} {shift:>8.1f} | {cells[0]:>26} | {cells[1]:>22}")
    lines.append("")
    lines.append(f"{'schedule':<26} {'keyframes':<22} {'non-keyframes: FPN':>18} {'proto':>7} {'recall':>7}"
                 f" | {'clip: FPN':>9} {'proto':>7} {'recall':>7}")
    for run in (adaptive, fixed):
        e = result["errors"][run.label]
        nonkey = [x for x, k in zip(e, run.keyframes) if not k]
        clip_fpn = [0.0 if k else x["fpn"] for x, k in zip(e, run.keyframes)]
        clip_proto = [0.0 if k else x["proto"] for x, k in zip(e, run.keyframes)]
        clip_recall = [(1.0 if x["recall"] is not None else None) if k else x["recall"]
                       for x, k in zip(e, run.keyframes)]
        lines.append(f"{run.label:<26} {len(run.keyframe_indices):>2} {str(run.keyframe_indices):<19} "
                     f"{_mean([x['fpn'] for x in nonkey]):>18.4f} {_mean([x['proto'] for x in nonkey]):>7.4f} "
                     f"{_mean([x['recall'] for x in nonkey]):>7.3f} | {_mean(clip_fpn):>9.4f} "
                     f"{_mean(clip_proto):>7.4f} {_mean(clip_recall):>7.3f}")
    floor = result["floor"]
    lines.append(f"{'non-keyframe, no motion':<26} {'(the warp floor)':<22} {floor['fpn']:>18.4f} "
                 f"{floor['proto']:>7.4f} {_mean([floor['recall']]):>7.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from trtnet import cli
    from trtnet.config import get_config
    from trtnet.verification.reference_data import ReferenceCase
    from trtnet.runtime import EmulatedEngine, VideoSegmenter
    from trtnet.network.weights import WeightStore

    case = ReferenceCase(cli.reference_case_dir("vid_resnet50", "--case", args.case))
    config = replace(get_config(case.config_name), max_size=args.size)
    if not config.is_video:
        raise cli.CliError(f"--case {case.path} is a case of {config.name}, an image config: the schedule "
                           "needs a video config (e.g. vid_resnet50)")
    store = WeightStore.load(case.weights_path)
    key = EmulatedEngine(store, config, fetch=FEATURES)
    nonkey = EmulatedEngine(store, config, nonkeyframe=True, stream=key.stream, fetch=FEATURES)
    clip, shifts = synthetic_clip(case.image("key"), args.frames, args.slow, args.fast)
    h, w = clip[0].shape[:2]
    print(f"{config.name} at {args.size} on the emulator: {args.frames} frames {w}x{h}, the first "
          f"{args.frames // 2} moving {args.slow:g} px/frame, then {args.fast:g} px/frame")
    start = time.perf_counter()
    result = compare(lambda interval, threshold: VideoSegmenter(key, nonkey, keyframe_interval=interval,
                                                                motion_threshold=threshold),
                     clip, args.motion_threshold)
    print(format_comparison(result, shifts))
    print(f"({time.perf_counter() - start:.1f} s; FPN/proto: mean |error| / mean |all-keyframe|; recall: "
          f"all-keyframe detections > {DETECTION_SCORE} found again, same class, box IoU >= {BOX_IOU})")
    return 0
