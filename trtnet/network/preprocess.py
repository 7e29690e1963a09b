"""Preprocessing inside the network, as upstream's evaluation does it (FastBaseTransform).

uint8 BGR frames [N,H,W,3] (any N, H, W) -> float -> NCHW -> bilinear resize to SxS
(align_corners=False, no antialias) BEFORE normalising -> the config's transform ->
BGR to RGB last. Output: ``preprocessed`` float32 [N,3,S,S], RGB. Every frame of a batch
is processed on its own (no layer mixes batch entries).

Transforms (upstream's backbone transform flags, data/config.py): ``normalize``
(x - mean) / std with the BGR means (ResNet, MobileNetV2); ``subtract_means`` x - mean;
``to_float`` x / 255 with no mean or std (DarkNet-53).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtnet import names
from trtnet.config import Config
from trtnet.network.layers import Graph, GraphError, elementwise, resize_bilinear, shuffle

COMPONENT = "preprocess"


def add_frame_input(g: Graph, name: str = names.INPUT) -> Any:
    """The network input: uint8 frames NHWC BGR; dynamic batch (frames of one size, e.g. one
    per camera; the engine profile sets 1..max_batch), height and width."""
    return g.network.add_input(name, g.trt.DataType.UINT8, (-1, -1, -1, 3))


def build_preprocess(g: Graph, frame: Any, config: Config) -> Any:
    """``frame`` (uint8 [N,H,W,3] BGR) -> normalised float32 [N,3,S,S] RGB."""
    if config.channel_order != "RGB":
        raise GraphError(f"channel order {config.channel_order!r} is not supported (upstream: RGB only)")
    size = int(config.max_size)
    x = g.cast(frame, g.trt.DataType.FLOAT, name="preprocess.to_float")
    x = shuffle(g, x, "preprocess.to_nchw", first_transpose=(0, 3, 1, 2))
    x = resize_bilinear(g, x, (size, size), "preprocess.resize", component=COMPONENT)
    x = _transform(g, x, config)
    bgr_to_rgb = g.constant(np.array([2, 1, 0], np.int32), "preprocess.rgb_order")
    layer = g.network.add_gather(x, bgr_to_rgb, 1)
    return g.named(layer, "preprocess.bgr_to_rgb", names.PREPROCESSED)


def _transform(g: Graph, x: Any, config: Config) -> Any:
    """The config's transform on the resized float BGR image (see the module docstring)."""
    spec = config.transform
    if sum((spec.normalize, spec.subtract_means, spec.to_float)) != 1:
        raise GraphError(f"config {config.name}: exactly one of normalize, subtract_means and "
                         f"to_float must be set, got {spec}")
    if spec.to_float:
        scale = g.constant(np.full((1, 1, 1, 1), 255.0, np.float32), "preprocess.255")
        return elementwise(g, x, scale, "DIV", "preprocess.div_255")
    mean = g.constant(np.asarray(config.means_bgr, np.float32).reshape(1, 3, 1, 1), "preprocess.mean_bgr")
    x = elementwise(g, x, mean, "SUB", "preprocess.sub_mean")
    if spec.subtract_means:
        return x
    std = g.constant(np.asarray(config.std_bgr, np.float32).reshape(1, 3, 1, 1), "preprocess.std_bgr")
    return elementwise(g, x, std, "DIV", "preprocess.div_std")
