"""The shared prediction head over P3..P7 (only ``prediction_layers.0`` holds weights).

Per level: upfeature conv3x3 + ReLU, then the bbox / conf / mask convs; each output
[1, A*k, H, W] is permuted to [1, H, W, A*k] and viewed as [1, H*W*A, k] (anchor innermost
within a cell, in the priors' order: scale, then aspect ratio), levels are concatenated, then
softmax over classes (conf) and tanh (mask). A = anchors per cell: 3, or 9 for YOLACT++.
"""

from __future__ import annotations

from typing import Any, Sequence

from trtnet import names
from trtnet.config import Config
from trtnet.network.layers import RELU, Graph, GraphError, activation, TANH, concat, conv, shuffle, softmax

COMPONENT = "head"
PREFIX = "prediction_layers.0"
LEVELS = ("P3", "P4", "P5", "P6", "P7")


def _flatten(g: Graph, x: Any, k: int, name: str) -> Any:
    """[N, A*k, H, W] -> [N, H*W*A, k] (0 keeps the batch dimension)."""
    _, c, h, w = (int(d) for d in tuple(x.shape))
    return shuffle(g, x, name, first_transpose=(0, 2, 3, 1), reshape=(0, h * w * c // k, k))


def build_head(g: Graph, levels: Sequence[Any], config: Config) -> tuple[Any, Any, Any]:
    """[P3..P7] -> (head/loc [1,A,4], head/conf [1,A,C] softmax, head/mask [1,A,K] tanh)."""
    spec = config.head
    if not spec.shared:
        raise GraphError("only the shared prediction head (share_prediction_module=True) is supported")
    if config.proto.coeff_activation != "tanh":
        raise GraphError(f"mask coefficient activation {config.proto.coeff_activation!r} is not supported")
    anchors = config.anchors
    counts = {len(s) * len(a) for s, a in zip(anchors.scales, anchors.aspect_ratios)}
    if len(counts) != 1:  # one shared conv serves every level: its A must be the same everywhere
        raise GraphError(f"anchors per cell differ between levels ({sorted(counts)}); the shared head needs one count")
    per_cell = anchors.per_cell  # 3 (YOLACT, YolactEdge) or 9 (YOLACT++: 3 scales x 3 ratios)
    outputs: dict[str, list[Any]] = {"loc": [], "conf": [], "mask": []}
    widths = {"loc": 4, "conf": config.num_classes, "mask": config.mask_dim}
    layer_of = {"loc": "bbox_layer", "conf": "conf_layer", "mask": "mask_layer"}
    for level, x in zip(LEVELS, levels):
        for i, (out_ch, kernel, padding) in enumerate(spec.extra_head_net):
            key = f"{PREFIX}.upfeature.{2 * i}"
            x = conv(g, x, key, padding=padding, kernel=kernel, out_channels=out_ch, act=RELU,
                     component=COMPONENT, name=f"{key}@{level}",
                     out_name=f"{PREFIX}.upfeature.{2 * i + 1}@{level}")
        for what, k in widths.items():
            key = f"{PREFIX}.{layer_of[what]}"
            y = conv(g, x, key, padding=spec.padding, kernel=spec.kernel_size, out_channels=per_cell * k,
                     component=COMPONENT, name=f"{key}@{level}")
            outputs[what].append(_flatten(g, y, k, f"{key}@{level}.flat"))
    loc = concat(g, outputs["loc"], 1, f"{PREFIX}.bbox_layer.levels", names.LOC)
    conf = concat(g, outputs["conf"], 1, f"{PREFIX}.conf_layer.levels", "head/conf_logits")
    conf = softmax(g, g.into(conf, "detect"), 2, f"{PREFIX}.conf_softmax", names.CONF)  # feeds NMS: fp32
    mask = concat(g, outputs["mask"], 1, f"{PREFIX}.mask_layer.levels", "head/mask_raw")
    mask = activation(g, mask, TANH, f"{PREFIX}.mask_tanh", names.MASK)
    return loc, conf, mask
