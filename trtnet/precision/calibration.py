"""INT8 calibration: activation ranges for an int8 precision plan, and their cache file
(the machinery of ``python -m trtnet.calibrate``, whose CLI is :mod:`trtnet.calibrate`).

TensorRT 11 is strongly typed and has no calibrators, so trtnet computes the per-tensor
ranges itself, the way TensorRT's classic ``IInt8EntropyCalibrator2`` did: run the fp32
network (the NumPy emulator) over calibration images, histogram |x| of every tensor an
int8 layer reads (2048 bins), and choose for each tensor the clipping threshold whose
128-level quantization of the clipped distribution is closest (KL divergence) to it
(NVIDIA, "8-bit Inference with TensorRT", GTC 2017). ``method="max"`` takes the observed
|max| instead. The int8 layers then use scale = amax / 127 (trtnet.precision).

Video configs: the non-keyframe network is calibrated too -- the keyframe network runs on
image k, the non-keyframe network on image k+1 with that keyframe's state (with a single
image, on the same image). Tensors both networks read share one range.

The cache is a JSON file: ``amax`` (tensor name -> range, names of the fp32 network) plus
metadata (config, plan, method, number of images, trtnet version), written atomically.
Ranges do not depend on the plan, so a cache made for ``int8_all`` serves every plan.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from trtnet import __version__, names
from trtnet.config import Config, get_config
from trtnet.media.files import write_atomically
from trtnet.precision import (
    AmaxRecorder,
    PlanLike,
    PrecisionPlan,
    as_plan,
    calibration_name,
)
from trtnet.network.weights import WeightStore, WeightsSource, resolve_config

NUM_BINS = 2048          # histogram bins over [0, max|x|]
NUM_QUANTIZED_BINS = 128  # int8 levels of one sign: the candidate distributions' resolution
SMOOTHING_EPS = 1e-4     # mass given to empty bins so KL(P||Q) stays finite
METHODS = ("entropy", "max")
CACHE_FORMAT = "trtnet-calibration-1"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_PLAN = "int8_all"


class CalibrationError(ValueError):
    """Calibration cannot run, or a calibration cache does not fit; the message says why."""


# -- range selection -----------------------------------------------------------------


def _smooth(dist: np.ndarray) -> Optional[np.ndarray]:
    """``dist`` with SMOOTHING_EPS moved into its empty bins (None if it cannot be)."""
    zeros = dist == 0
    n_zeros = int(zeros.sum())
    n_nonzeros = dist.size - n_zeros
    if n_nonzeros == 0:
        return None
    out = dist + SMOOTHING_EPS * zeros - (SMOOTHING_EPS * n_zeros / n_nonzeros) * ~zeros
    return out if (out > 0).all() else None


def kl_divergences(hist: np.ndarray, *, start_bin: int = NUM_QUANTIZED_BINS,
                   levels: int = NUM_QUANTIZED_BINS) -> np.ndarray:
    """KL(P_i || Q_i) for every candidate threshold bin i in start_bin..len(hist).

    P_i: the first i bins of ``hist`` with everything beyond folded into bin i-1 (what
    clipping at the threshold does). Q_i: those i bins (without the outliers) quantized to
    ``levels`` levels -- bin j belongs to level floor(j * levels / i) -- each level's count
    spread evenly over its bins that are non-empty in P_i. Both are smoothed (empty bins
    get SMOOTHING_EPS) and normalised. Entry k is for i = start_bin + k.
    """
    hist = np.asarray(hist, np.float64)
    n = hist.size
    if n < start_bin:
        raise ValueError(f"histogram has {n} bins, fewer than the first candidate {start_bin}")
    total = hist.sum()
    cumulative = np.concatenate([[0.0], np.cumsum(hist)])
    out = np.full(n - start_bin + 1, np.inf)
    for k, i in enumerate(range(start_bin, n + 1)):
        p = hist[:i].copy()
        p[-1] += total - cumulative[i]
        nonzero = p != 0
        level = np.arange(i) * levels // i
        level_sum = np.bincount(level, weights=hist[:i], minlength=levels)
        level_nonzero = np.bincount(level, weights=nonzero, minlength=levels)
        q = np.where(nonzero, (level_sum / np.maximum(level_nonzero, 1))[level], 0.0)
        p_s, q_s = _smooth(p), _smooth(q)
        if p_s is None or q_s is None:
            continue
        p_s /= p_s.sum()
        q_s /= q_s.sum()
        out[k] = float(np.sum(p_s * np.log(p_s / q_s)))
    return out


def entropy_amax(hist: np.ndarray, bin_width: float) -> float:
    """Clipping threshold minimising KL(P||Q) (see :func:`kl_divergences`): the upper edge
    of the last bin kept. Histograms narrower than 128 bins are kept whole.

    Bin 0 counts as much as bin 1: after a ReLU about half the values are exact zeros, and
    that spike (represented exactly by int8 whatever the scale) would otherwise dominate
    the divergence and pull the threshold far down (NVIDIA's pytorch-quantization
    histogram calibrator does the same).
    """
    hist = np.asarray(hist, np.float64).copy()
    nonzero = np.flatnonzero(hist)
    if nonzero.size == 0:
        return 0.0
    hist = hist[: nonzero[-1] + 1]
    if hist.size <= NUM_QUANTIZED_BINS:
        return hist.size * bin_width
    hist[0] = hist[1]
    divergence = kl_divergences(hist)
    best = int(np.argmin(divergence))  # first minimum: the smallest threshold among equals
    return (NUM_QUANTIZED_BINS + best) * bin_width


class AbsHistogram:
    """Histogram of |x| over [0, top] in NUM_BINS bins, ``top`` growing with the data.

    ``top`` starts at the first batch's max; a larger value later doubles it as often as
    needed, merging neighbouring bins (exact: the old edges are edges of the new bins), so
    one pass over the images suffices. The max stays in the upper half of the range, so at
    least 1024 of the bins carry the distribution.
    """

    def __init__(self, bins: int = NUM_BINS) -> None:
        self.counts = np.zeros(bins, np.int64)
        self.top = 0.0
        self.max = 0.0

    def add(self, values: np.ndarray) -> None:
        a = np.abs(np.asarray(values, np.float32)).ravel()
        if a.size == 0:
            return
        m = float(a.max())
        if not math.isfinite(m):
            raise CalibrationError("a calibrated tensor holds inf/nan values")
        self.max = max(self.max, m)
        bins = self.counts.size
        if m > self.top:
            if self.top == 0.0:  # everything so far was 0 (bin 0)
                self.top = m
            else:
                factor = 2 ** math.ceil(math.log2(m / self.top))
                if factor >= bins:
                    self.counts = np.bincount([0], weights=[self.counts.sum()], minlength=bins).astype(np.int64)
                else:
                    merged = self.counts.reshape(bins // factor, factor).sum(axis=1)
                    self.counts = np.concatenate([merged, np.zeros(bins - merged.size, np.int64)])
                self.top *= factor
        if self.top == 0.0:
            self.counts[0] += a.size
            return
        idx = np.minimum((a * np.float32(bins / self.top)).astype(np.int64), bins - 1)
        self.counts += np.bincount(idx, minlength=bins)

    @property
    def bin_width(self) -> float:
        return self.top / self.counts.size

    def amax(self, method: str) -> float:
        if method == "max":
            return self.max
        if method == "entropy":
            return min(entropy_amax(self.counts, self.bin_width), self.max) if self.max > 0 else 0.0
        raise CalibrationError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")


# -- which tensors -----------------------------------------------------------------


def required_tensors(weights: WeightsSource, config: Union[Config, str], plan: PlanLike, *,
                     nonkeyframe: bool = False) -> list[str]:
    """Names (in the fp32 network) of the tensors the int8 layers of ``plan`` read, in order."""
    from trtnet import emulator
    from trtnet.network import build_keyframe, build_nonkeyframe

    recorder = AmaxRecorder()
    builder = build_nonkeyframe if nonkeyframe else build_keyframe
    builder(emulator.Network(), emulator.trt, weights, config, plan=as_plan(plan).with_amax(recorder))
    return list(dict.fromkeys(calibration_name(n) for n in recorder.requested))


# -- images ---------------------------------------------------------------------------

ImagesSource = Union[str, os.PathLike, Sequence[np.ndarray]]


def image_files(folder: Union[str, os.PathLike]) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"calibration images: {folder} is not a directory")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"calibration images: no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def iter_images(source: ImagesSource, max_images: Optional[int] = None) -> Iterator[np.ndarray]:
    """uint8 HxWx3 BGR frames from a folder (cv2.imread) or a sequence of arrays."""
    if isinstance(source, (str, os.PathLike)):
        import cv2

        for path in image_files(source)[:max_images]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise CalibrationError(f"calibration images: cannot read {path}")
            yield image
        return
    frames = list(source)[:max_images]
    if not frames:
        raise CalibrationError("calibration images: none given")
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise CalibrationError(f"calibration image {i}: expected uint8 HxWx3 BGR, got {frame.dtype} {frame.shape}")
        yield frame


# -- the cache --------------------------------------------------------------------------


@dataclass
class CalibrationCache:
    """Calibrated activation ranges (tensor name -> |max| threshold) and how they were made."""

    amax: dict[str, float]
    config: str
    plan: str
    method: str
    num_images: int
    trtnet_version: str = __version__
    seconds: float = field(default=0.0, compare=False)
    # observed |max| of each tensor (diagnostics: how far the entropy threshold clips)
    observed_max: dict[str, float] = field(default_factory=dict, compare=False)

    def clipping_summary(self) -> str:
        """One line: how many ranges sit below the observed max, and the lowest ratio."""
        ratios = {k: self.amax[k] / m for k, m in self.observed_max.items() if k in self.amax and m > 0}
        clipped = {k: r for k, r in ratios.items() if r < 0.999}
        if not clipped:
            return f"{len(self.amax)} ranges, none below the observed max"
        low = min(clipped, key=clipped.get)
        return (f"{len(self.amax)} ranges, {len(clipped)} below the observed max "
                f"(median {np.median(list(clipped.values())):.2f}x, lowest {clipped[low]:.2f}x: {low})")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT, "config": self.config, "plan": self.plan, "method": self.method,
            "num_images": self.num_images, "trtnet_version": self.trtnet_version,
            "seconds": round(self.seconds, 1), "amax": {k: float(v) for k, v in self.amax.items()},
            "observed_max": {k: float(v) for k, v in self.observed_max.items()},
        }

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the cache as JSON, atomically (temporary file + os.replace)."""
        text = json.dumps(self.to_json(), indent=1) + "\n"
        path = write_atomically(path, text.encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "CalibrationCache":
        """Read a cache file (format checked; see :meth:`check` for fitting a network)."""
        path = Path(path)
        if not path.is_file():
            raise CalibrationError(f"calibration cache not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CalibrationError(f"calibration cache {path} is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            raise CalibrationError(f"{path} is not a trtnet calibration cache (format {CACHE_FORMAT!r})")
        missing = [k for k in ("config", "plan", "method", "num_images", "amax") if k not in data]
        if missing or not isinstance(data["amax"], dict):
            raise CalibrationError(f"calibration cache {path} lacks {', '.join(missing) or 'an amax table'}")
        amax = {}
        for name, value in data["amax"].items():
            if not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
                raise CalibrationError(
                    f"calibration cache {path}: range of {name!r} must be a positive number, got {value!r}"
                )
            amax[name] = float(value)
        return cls(amax, data["config"], data["plan"], data["method"], int(data["num_images"]),
                   data.get("trtnet_version", "?"), float(data.get("seconds", 0.0)),
                   {k: float(v) for k, v in dict(data.get("observed_max") or {}).items()})

    def check(self, config: Union[Config, str], required: Iterable[str], *, source: str = "calibration cache",
              plan: PlanLike = None) -> None:
        """Raise CalibrationError unless the cache is for ``config`` and has every ``required`` range."""
        name = get_config(config).name if isinstance(config, str) else config.name
        if get_config(self.config).name != name:
            raise CalibrationError(f"{source} was made for {self.config}, not {name}; calibrate this model")
        missing = [t for t in required if t not in self.amax]
        if missing:
            shown = ", ".join(missing[:8]) + (f" (+{len(missing) - 8} more)" if len(missing) > 8 else "")
            wanted = (as_plan(plan).preset or str(as_plan(plan))) if plan is not None else DEFAULT_PLAN
            raise CalibrationError(
                f"{source} (made for plan {self.plan}) has no range for {len(missing)} tensor(s) that "
                f"int8 layers of plan {wanted} read: {shown}; recalibrate with "
                f"python -m trtnet.calibrate --precision-plan {wanted}"
            )

    def plan_for(self, weights: WeightsSource, config: Union[Config, str], plan: PlanLike, *,
                 nonkeyframe: bool = False, source: str = "calibration cache") -> PrecisionPlan:
        """``plan`` with this cache's ranges, after checking they cover the network to build."""
        plan = as_plan(plan)
        self.check(config, required_tensors(weights, config, plan, nonkeyframe=nonkeyframe),
                   source=source, plan=plan)
        return plan.with_amax(self.amax)


def load_plan(cache_path: Union[str, os.PathLike], weights: WeightsSource, config: Union[Config, str],
              plan: PlanLike, *, nonkeyframe: bool = False) -> PrecisionPlan:
    """``plan`` with the ranges of the cache file at ``cache_path`` (checked against the network)."""
    cache = CalibrationCache.load(cache_path)
    return cache.plan_for(weights, config, plan, nonkeyframe=nonkeyframe,
                          source=f"calibration cache {cache_path}")


# -- calibration -------------------------------------------------------------------------


class Calibrator:
    """Histograms of the tensors to calibrate, fed with fp32 activations."""

    def __init__(self, tensors: Iterable[str], bins: int = NUM_BINS) -> None:
        self.histograms = {name: AbsHistogram(bins) for name in tensors}

    def observe(self, activations: Mapping[str, np.ndarray]) -> None:
        for name, value in activations.items():
            if name in self.histograms:
                self.histograms[name].add(value)

    def amax(self, method: str = "entropy") -> dict[str, float]:
        """Range of every observed tensor (tiny positive floor for all-zero tensors)."""
        if method not in METHODS:
            raise CalibrationError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
        out = {}
        for name, hist in self.histograms.items():
            if hist.counts.sum() == 0:
                raise CalibrationError(f"tensor {name!r} was never observed during calibration")
            out[name] = max(hist.amax(method), 1e-8)  # an all-zero tensor: any scale works
        return out


def collect_histograms(
    store: WeightStore, config: Config, plan: PrecisionPlan, images: ImagesSource, *,
    max_images: Optional[int] = None, progress: Optional[Callable[[str], None]] = None,
) -> tuple[Calibrator, int]:
    """Histograms of the tensors ``plan``'s int8 layers read, over fp32 emulator passes on
    ``images``; returns them and the number of images used (see :func:`calibrate`)."""
    from trtnet import emulator
    from trtnet.network import build_keyframe, build_nonkeyframe, keyframe_state

    video = config.is_video
    key_tensors = required_tensors(store, config, plan)
    nonkey_tensors = required_tensors(store, config, plan, nonkeyframe=True) if video else []
    calibrator = Calibrator(dict.fromkeys(key_tensors + nonkey_tensors))
    say = progress or (lambda _msg: None)

    key_net = emulator.Network()
    build_keyframe(key_net, emulator.trt, store, config)
    state_names = [names.FPN1_LATERAL3, names.FPN1_P4, names.FPN1_P5] if video else []
    key_fetch = list(dict.fromkeys(key_tensors + state_names))
    if video:
        nonkey_net = emulator.Network()
        build_nonkeyframe(nonkey_net, emulator.trt, store, config)

    count = 0
    frames = iter_images(images, max_images)
    frame = next(frames, None)
    while frame is not None:
        t0 = time.perf_counter()
        out = emulator.run(key_net, {names.INPUT: frame[None]}, fetch=key_fetch, outputs=False)
        calibrator.observe({k: out[k] for k in key_tensors})
        following = next(frames, None)
        if video:  # non-keyframe pass on the next image (the same one if it is the only one)
            state = {k: np.ascontiguousarray(v, np.float32) for k, v in keyframe_state(out).items()}
            nonkey_frame = frame if following is None and count == 0 else following
            if nonkey_frame is not None:
                inputs = {names.INPUT: nonkey_frame[None], **state}
                calibrator.observe(emulator.run(nonkey_net, inputs, fetch=nonkey_tensors, outputs=False))
        del out
        count += 1
        say(f"image {count}: {frame.shape[1]}x{frame.shape[0]}, {time.perf_counter() - t0:.1f} s")
        frame = following
    if count == 0:
        raise CalibrationError("calibration images: none given")
    return calibrator, count


def calibrate(
    weights: WeightsSource, config: Union[Config, str, None], images: ImagesSource, *,
    plan: PlanLike = DEFAULT_PLAN, method: str = "entropy", max_images: Optional[int] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> CalibrationCache:
    """Ranges for the int8 layers of ``plan`` from fp32 emulator passes over ``images``.

    ``images``: a folder of images or a sequence of uint8 HxWx3 BGR frames (any size; the
    network resizes them). ``config`` None: recognised from the weights. Video configs
    calibrate the non-keyframe network as well (see the module docstring).
    """
    if method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
    plan = as_plan(plan)
    if not plan.uses_int8:
        raise CalibrationError(f"precision plan {plan} has no int8 component: nothing to calibrate")
    if max_images is not None and max_images < 1:
        raise CalibrationError(f"max_images must be at least 1, got {max_images}")
    store = WeightStore.load(weights)
    config = resolve_config(store, config if isinstance(config, (str, type(None))) else config.name)
    start = time.perf_counter()
    calibrator, count = collect_histograms(store, config, plan, images, max_images=max_images,
                                           progress=progress)
    amax = calibrator.amax(method)
    return CalibrationCache(amax, config.name, plan.preset or str(plan), method, count,
                            seconds=time.perf_counter() - start,
                            observed_max={k: h.max for k, h in calibrator.histograms.items()})
