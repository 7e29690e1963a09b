"""Anchor boxes (priors), computed once in NumPy and baked into the network as a constant.

Upstream ``PredictionModule.make_priors``: order level (P3..P7), row y, column x, then
scale (outer) and aspect ratio (inner): 3 anchors per cell for YOLACT / YolactEdge, 9 for
YOLACT++ (3 scales x 3 ratios, not square: 57,744 priors at 550); centre
((x+0.5)/W, (y+0.5)/H); with preapply_sqrt=False the ratio enters as sqrt(ar); pixel scales give w = scale*ar/max_size, h = scale/ar/max_size; square
anchors set h = w. Computed in float64 like upstream's Python floats, stored as float32.
"""

from __future__ import annotations

from math import sqrt
from typing import Any, Optional, Sequence

import numpy as np

from trtnet import names
from trtnet.config import Config
from trtnet.network.layers import GraphError


def conv_out(size: int, kernel: int = 3, stride: int = 2, padding: int = 1) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def feature_sizes(config: Config) -> list[tuple[int, int]]:
    """(H, W) of P3..P7 for the config's square max_size input: 550 -> 69, 35, 18, 9, 5;
    400 -> 50, 25, 13, 7, 4; 700 -> 88, 44, 22, 11, 6.

    Every stride-2 step of the backbones (ResNet's 7x7/p3 conv and 3x3/p1 max pool,
    MobileNetV2's and DarkNet's 3x3/p1 convs) and of the FPN downsample convs maps n to
    (n - 1) // 2 + 1; C3 is three such steps in. DarkNet's stride-1 stem keeps the size.
    """
    n = int(config.max_size)
    for _ in range(3):  # stride 8: C3
        n = conv_out(n)
    sizes = []
    for _ in range(len(config.anchors.scales)):
        sizes.append((n, n))
        n = conv_out(n)
    return sizes


def make_priors(config: Config) -> np.ndarray:
    """Priors [A, 4] (cx, cy, w, h), relative to the input size, float32."""
    spec = config.anchors
    size = float(config.max_size)
    rows = []
    for (h, w), scales, ratios in zip(feature_sizes(config), spec.scales, spec.aspect_ratios):
        for j in range(h):
            for i in range(w):
                cx, cy = (i + 0.5) / w, (j + 0.5) / h
                for scale in scales:
                    for ar in ratios:
                        r = ar if spec.preapply_sqrt else sqrt(ar)
                        if spec.use_pixel_scales:
                            bw, bh = scale * r / size, scale / r / size
                        else:
                            bw, bh = scale * r / w, scale / r / h
                        if spec.use_square_anchors:
                            bh = bw
                        rows.append((cx, cy, bw, bh))
    return np.asarray(rows, dtype=np.float64).astype(np.float32)


def num_priors(config: Config) -> int:
    return sum(h * w for h, w in feature_sizes(config)) * config.anchors.per_cell


def build_priors(g: Any, config: Config, levels: Optional[Sequence[Any]] = None) -> Any:
    """The priors as a constant tensor [A, 4] named ``priors``.

    With ``levels`` (the P3..P7 tensors), checks that the priors' grids are those maps' sizes.
    """
    if levels is not None:
        found = [tuple(int(d) for d in tuple(t.shape)[2:]) for t in levels]
        if found != feature_sizes(config):
            raise GraphError(f"FPN level sizes {found} do not match the prior grids {feature_sizes(config)}")
    return g.constant(make_priors(config), names.PRIORS)
