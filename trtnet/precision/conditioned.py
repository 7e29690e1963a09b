"""A well-conditioned checkpoint of a released config, to judge fp16 and int8 by.

The random-weight reference networks are chaotic (+-1 grey level of input noise moves C5
by 29%), so reduced precision cannot be judged on them: any rounding is amplified the same
way. This module makes deterministic weights for a released architecture whose activations
behave like a trained network's: every BatchNorm's running statistics are measured on real
images (so each channel leaves its BN at zero mean and unit variance before gamma/beta),
the last BN of every residual branch has a small gain (the identity dominates, as after
training), and every conv without BN is rescaled per output channel to zero mean and a
chosen std (unit by default; the class logits wider so that detections have confident
scores). Statistics are measured with the fp32 emulator, layer order converging over a few
passes (each pass re-measures with the previous pass's corrections upstream). Video configs
also get their flow net and SPA conditioned, on the non-keyframe network.

    weights = conditioned_weights(config, images)   # dict of upstream keys -> float32
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from trtnet import names
from trtnet.config import Config, get_config

# gamma of the last BN of a residual branch (std relative to the identity). Trained networks
# keep these small: the common recipe initialises them at zero (Goyal et al. 2017, "Accurate,
# Large Minibatch SGD", sec. 5.1; He et al. 2019, "Bag of Tricks", sec. 3.1) so each block
# starts as the identity. At 0.25 the branches amplified the fp16 kernel rounding (measured:
# fp16 kernels alone, activations fp32, give 97% of the fp16 error) to 1.1-1.7% on P6, P7,
# proto, conf and mask through MobileNetV2's 10 residual blocks; at 0.1 every tensor is
# under 1% (tests/test_int8_accuracy.py) and +-1 grey moves C5 by 1.3% instead of 1.6%.
RESIDUAL_GAIN = 0.1
LOGIT_STD = 1.5        # per-class std of the class logits: softmax maxima spread over (0, 1)
OUTPUT_STD = 1.0       # every other conv without BN
SHARED_PASSES = 2       # passes: the head's shared convs are solved after each (two in a chain)
SPATIAL_ROUGHNESS = 0.2  # white-noise share of the spatial kernels (see smooth_kernel)
# the flow net's predictions (mean, std), as a trained one makes them: offsets of a fraction of a
# feature cell (the warp moves by flow / 8 of the half-width), the warp's scale near 1, its bias
# near 0 (upstream: warped * scale + bias)
FLOW_OFFSET = (0.0, 0.5)
WARP_SCALE = (1.0, 0.1)
WARP_BIAS = (0.0, 0.1)
MOTION_PIXELS = 4      # the current frame of the flow net's conditioning: the keyframe moved by this
BN_EPS = 1e-5          # upstream's BatchNorm eps (trtnet.network.weights folds with it)


def with_max_size(config: Union[Config, str], max_size: int) -> Config:
    """``config`` evaluated at ``max_size`` x ``max_size`` (same weights; faster tests)."""
    config = get_config(config) if isinstance(config, str) else config
    return dataclasses.replace(config, max_size=int(max_size))


def augmented(images: Sequence[np.ndarray], count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` deterministic variants of ``images`` (uint8 BGR): random crops of 50-100%
    of each side, horizontal flips and brightness/contrast changes, cycling over the sources."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        src = np.asarray(images[i % len(images)])
        h, w = src.shape[:2]
        ch, cw = (int(d * rng.uniform(0.5, 1.0)) for d in (h, w))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        img = src[y:y + ch, x:x + cw].astype(np.float32)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = (img - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20)
        out.append(np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)))
    return out


def _bn_key(conv_key: str, weights: Mapping[str, np.ndarray]) -> Optional[str]:
    """The BatchNorm folded into conv ``conv_key`` (upstream's naming), or None."""
    head, _, last = conv_key.rpartition(".")
    candidates = []
    if last.isdigit():  # MobileNetV2 / downsample: conv at index i, its BN at i + 1
        candidates.append(f"{head}.{int(last) + 1}")
    if last.startswith("conv") and last[4:].isdigit():  # ResNet: convN -> bnN
        candidates.append(f"{head}.bn{last[4:]}")
    return next((c for c in candidates if f"{c}.running_mean" in weights), None)


def _layers(network: Any) -> list[Any]:
    return [network.get_layer(i) for i in range(network.num_layers)]


def _residual_branch_convs(network: Any) -> set[str]:
    """Conv layers whose output (through at most one activation) is the branch (first)
    input of an add: trtnet's add helper takes the branch first, the identity second."""
    from trtnet import emulator

    trt = emulator.trt
    producer = {layer.get_output(0).name: layer for layer in _layers(network)}
    out = set()
    for layer in _layers(network):
        if layer.type == trt.LayerType.ELEMENTWISE and layer.op == trt.ElementWiseOperation.SUM:
            src = producer.get(layer.get_input(0).name)
            if src is not None and src.type != trt.LayerType.CONVOLUTION:
                src = producer.get(src.get_input(0).name) if src.num_inputs else None
            if src is not None and src.type == trt.LayerType.CONVOLUTION:
                out.add(src.name.split("@")[0])
    return out


def smooth_kernel(w: np.ndarray, rng: np.random.Generator, roughness: float = SPATIAL_ROUGHNESS) -> np.ndarray:
    """Spatial kernels [O, I, k, k] made mostly smooth, like trained filters: each (o, i) slice
    becomes its sum times a binomial blur profile plus ``roughness`` of white noise. Random
    kernels pass every spatial frequency alike, so pixel noise (white) grows layer by layer
    against the image (mostly low frequencies); smooth ones damp it."""
    k = w.shape[-1]
    profile = np.array([math.comb(k - 1, i) for i in range(k)], np.float64)
    profile = np.outer(profile, profile)
    profile /= np.linalg.norm(profile)
    mix = rng.standard_normal(w.shape[:2])[..., None, None] * profile
    noise = rng.standard_normal(w.shape) / k
    out = mix + roughness * noise
    return (out * (np.linalg.norm(w) / np.linalg.norm(out))).astype(np.float32)


def mosaic(images: Sequence[np.ndarray], grid: int, tile: int) -> np.ndarray:
    """``grid`` x ``grid`` images (resized to ``tile`` x ``tile``) as one uint8 BGR frame:
    one network pass then measures statistics over all of them."""
    import cv2

    rows = [np.concatenate([cv2.resize(np.asarray(images[(r * grid + c) % len(images)]), (tile, tile),
                                       interpolation=cv2.INTER_AREA) for c in range(grid)], axis=1)
            for r in range(grid)]
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def _target(key: str, residual_gain: float, logit_std: float) -> tuple[float, float]:
    """(mean, std) every output channel of conv ``key`` (without BN) is solved to."""
    if key.endswith("conf_layer"):
        return 0.0, logit_std
    if key.startswith("flow_net.pred"):  # the flow net's predictions, as a trained one makes them
        kind = key.rsplit(".", 1)[-1]
        return {"scale": WARP_SCALE, "bias": WARP_BIAS, "conv": FLOW_OFFSET}[kind]
    if key.startswith("spa.refine_convs"):  # SPA adds it to the warped feature: a residual branch
        return 0.0, residual_gain
    return 0.0, OUTPUT_STD


def _solve_pass(net: Any, inputs: Mapping[str, np.ndarray], fetch: Sequence[str], weights: dict[str, np.ndarray],
                skip: set[str], residual_gain: float, logit_std: float) -> set[str]:
    """Condition every conv of ``net`` (built from ``weights``) not in ``skip``, in place in
    ``weights``; return the conv keys of ``net``. See :func:`conditioned_weights`."""
    from trtnet import emulator

    convs = {id(layer): layer.name.split("@")[0] for layer in _layers(net)
             if layer.type == emulator.trt.LayerType.CONVOLUTION}
    uses = {key: list(convs.values()).count(key) for key in set(convs.values())}
    affine: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key -> (a, b): corrected y = a y + b
    solved: set[str] = set(skip)
    pooled: dict[str, list[np.ndarray]] = {}  # shared key -> [sum, sum of squares, count]

    def solve(key: str, mean: np.ndarray, std: np.ndarray) -> None:
        """Correct ``key`` (whose current output has these channel stats) to its target."""
        std = np.maximum(std, 1e-6)
        bn = _bn_key(key, weights)
        if bn is not None:  # y = gamma (raw - m) / sqrt(v + eps) + beta: re-centre on this data
            gamma, beta = weights[f"{bn}.weight"].astype(np.float64), weights[f"{bn}.bias"]
            m, v = weights[f"{bn}.running_mean"], weights[f"{bn}.running_var"].astype(np.float64)
            root = np.sqrt(v + BN_EPS)
            weights[f"{bn}.running_mean"] = ((mean - beta) * root / gamma + m).astype(np.float32)
            weights[f"{bn}.running_var"] = np.maximum((std * root / gamma) ** 2 - BN_EPS, 1e-8).astype(np.float32)
            a2 = np.abs(gamma) / std
            b2 = beta - a2 * mean
        else:
            target_mean, target_std = _target(key, residual_gain, logit_std)
            if f"{key}.bias" not in weights:  # its mean cannot move: the rms goes to the target std
                std = np.sqrt(std * std + mean * mean)
            a2 = target_std / std
            w = weights[f"{key}.weight"]
            weights[f"{key}.weight"] = (w * a2.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
            b2 = np.zeros_like(a2)
            if f"{key}.bias" in weights:
                weights[f"{key}.bias"] = ((weights[f"{key}.bias"] - mean) * a2 + target_mean).astype(np.float32)
                b2 = target_mean - a2 * mean
        a, b = affine.get(key, (1.0, 0.0))
        affine[key] = (a2 * a, a2 * b + b2)

    conv_class = type(next(layer for layer in _layers(net) if id(layer) in convs))
    plain = conv_class._execute

    def corrected(key: str, raw: np.ndarray) -> np.ndarray:
        a, b = (np.reshape(v, (1, -1, 1, 1)) if np.ndim(v) else v for v in affine.get(key, (1.0, 0.0)))
        return raw * a + b

    def execute(layer: Any, xs: list) -> list:  # the conv's output as the solved weights give it
        (raw,) = plain(layer, xs)
        key, raw = convs[id(layer)], raw.astype(np.float64)
        if key in skip:
            return [raw.astype(np.float32)]
        if uses[key] == 1 and key not in solved:
            y = corrected(key, raw)
            solve(key, y.mean(axis=(0, 2, 3)), y.std(axis=(0, 2, 3)))
            solved.add(key)
        y = corrected(key, raw)
        if uses[key] > 1:  # shared by several levels: pool every level, solve after the pass
            acc = pooled.setdefault(key, [0.0, 0.0, 0])
            acc[0] = acc[0] + y.sum(axis=(0, 2, 3))
            acc[1] = acc[1] + (y * y).sum(axis=(0, 2, 3))
            acc[2] += y.shape[0] * y.shape[2] * y.shape[3]
        return [y.astype(np.float32)]

    conv_class._execute = execute  # for these passes (a class attribute: layers have no __dict__)
    try:
        for _ in range(SHARED_PASSES):
            pooled.clear()
            emulator.run(net, dict(inputs), fetch=list(fetch), outputs=False)
            for key, (total, sq, count) in pooled.items():
                mean = total / count
                solve(key, mean, np.sqrt(np.maximum(sq / count - mean * mean, 0.0)))
    finally:
        conv_class._execute = plain
    return set(convs.values())


def conditioned_weights(
    config: Union[Config, str], frame: np.ndarray, *, seed: int = 0,
    residual_gain: float = RESIDUAL_GAIN, logit_std: float = LOGIT_STD,
) -> dict[str, np.ndarray]:
    """Weights for ``config`` conditioned on ``frame`` (uint8 BGR; a :func:`mosaic` of many
    images), starting from trtnet.network.random_weights(seed).

    One fp32 emulator pass, layer by layer in network order: each convolution's output is
    measured, its BN statistics (or, without BN, its weights and bias) are solved so that
    every channel has the target mean and std, and the corrected output is what the next
    layers read. A conv shared by several levels (the head) is solved on its first (largest)
    level and applied unchanged to the others. Video configs then condition the flow net and
    SPA the same way on the non-keyframe network, with ``frame`` as the keyframe and ``frame``
    moved by :data:`MOTION_PIXELS` as the current frame (flow offsets, warp scale and bias
    near a trained flow net's, see :func:`_target`).
    """
    from trtnet import emulator
    from trtnet.network.random_weights import random_weights
    from trtnet.network import build_keyframe, build_nonkeyframe, keyframe_state

    config = get_config(config) if isinstance(config, str) else config
    weights = random_weights(config.name, seed)
    for key, w in weights.items():
        if w.ndim == 4 and w.shape[-1] > 1:
            weights[key] = smooth_kernel(w, np.random.default_rng(seed + 1))
    net = emulator.Network()
    build_keyframe(net, emulator.trt, weights, config, export_state=False)
    for key in _residual_branch_convs(net):
        bn = _bn_key(key, weights)
        if bn is not None:
            weights[f"{bn}.weight"] = np.full_like(weights[f"{bn}.weight"], residual_gain)
    net = emulator.Network()
    tensors = build_keyframe(net, emulator.trt, weights, config, export_state=False)  # noqa: F841 - keeps weights alive
    image = {names.INPUT: np.asarray(frame)[None]}
    keyframe_convs = _solve_pass(net, image, [names.PROTO, names.LOC, names.MASK, names.CONF], weights,
                                 set(), residual_gain, logit_std)
    if config.is_video:
        net = emulator.Network()
        build_keyframe(net, emulator.trt, weights, config, export_state=True)
        state = keyframe_state(emulator.run(net, image))
        net = emulator.Network()
        tensors = build_nonkeyframe(net, emulator.trt, weights, config)  # noqa: F841
        moved = np.roll(np.asarray(frame), MOTION_PIXELS, axis=(0, 1))[None]
        _solve_pass(net, {names.INPUT: moved, **state}, [names.PROTO, names.LOC, names.MASK, names.CONF],
                    weights, keyframe_convs, residual_gain, logit_std)
    return weights
