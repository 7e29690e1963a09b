"""YOLACT++ fast mask re-scoring: mask_scores = box scores x maskiou_net(cropped mask)[class].

After Fast NMS, per kept detection (upstream layers/output_utils.py postprocess, yolact.py
FastMaskIoUNet):

    det/coeffs [N,D,K] x proto [N,H,W,K] -> sigmoid -> crop to det/boxes (padding 1)
      -> maskiou/input [N,D,H,W] (un-thresholded, on the prototype grid)
      -> maskiou_net: five unpadded 3x3 stride-2 convs (8..128) + ReLU, 1x1 conv to C-1 + ReLU
      -> global max pool -> maskiou/pred [N,D,C-1]
      -> the value at det/classes x det/scores -> mask_scores [N,D]  (0 past det/count)

Box scores are unchanged (upstream's rescore_mask without rescore_bbox). Mask assembly, crop,
class pick and rescoring run in fp32 like upstream's postprocess ("detect"); only the maskiou_net
convolutions follow the plan ("maskiou": the head's precision, never int8, see
trtnet.precision.plans). All shapes keep the dynamic batch N; D = detect.max_det.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trtnet import names
from trtnet.config import Config
from trtnet.network.layers import (
    RELU,
    SIGMOID,
    Graph,
    GraphError,
    activation,
    conv,
    elementwise,
    shuffle,
    unary,
)

COMPONENT = "maskiou"  # the maskiou_net convolutions
POST = "detect"        # always fp32: assembly, crop, class pick, rescoring
PREFIX = "maskiou_net.maskiou_net"
CROP_PADDING = 1       # upstream crop(masks, boxes) default padding


def _cast(g: Graph, x: Any, dtype: Any, name: str) -> Any:
    return g.named(g.network.add_cast(x, dtype), name)


def _box_coord(g: Graph, boxes: Any, index: int, name: str) -> Any:
    """``boxes[:, :, index]`` as [N, D, 1, 1] (a gather keeps the batch dynamic)."""
    picked = g.named(g.network.add_gather(boxes, g.constant(np.array([index], np.int32), f"{name}.index"), 2),
                     f"{name}.gather")
    return shuffle(g, picked, name, reshape=(0, 0, 1, 1))


def assemble_masks(g: Graph, proto: Any, coeffs: Any) -> Any:
    """sigmoid(coeffs @ proto^T): [N,D,K] x [N,H,W,K] -> masks [N,D,H,W] (fp32)."""
    _, h, w, k = (int(d) for d in tuple(proto.shape))
    proto = shuffle(g, g.into(proto, POST), "maskiou.proto_flat", reshape=(0, h * w, k))
    layer = g.network.add_matrix_multiply(g.into(coeffs, POST), g.trt.MatrixOperation.NONE,
                                          proto, g.trt.MatrixOperation.TRANSPOSE)
    logits = g.named(layer, "maskiou.lincomb")  # [N, D, H*W]
    masks = activation(g, logits, SIGMOID, "maskiou.sigmoid")
    return shuffle(g, masks, "maskiou.masks", reshape=(0, 0, h, w))


def _inside(g: Graph, index: Any, lo: Any, hi: Any, name: str) -> Any:
    """1.0 where lo <= index < hi, else 0.0 (TensorRT has no GREATER_EQUAL: NOT(index < lo))."""
    left = unary(g, elementwise(g, index, lo, "LESS", f"{name}.below"), "NOT", f"{name}.from_lo")
    right = elementwise(g, index, hi, "LESS", f"{name}.to_hi")
    both = elementwise(g, left, right, "AND", f"{name}.inside")
    return _cast(g, both, g.trt.DataType.FLOAT, f"{name}.keep")


def _sanitize(g: Graph, a: Any, b: Any, size: int, name: str) -> tuple[Any, Any]:
    """Upstream sanitize_coordinates (cast=False): relative a, b -> pixel [lo, hi) on a ``size`` grid."""
    scale = g.constant(np.full((1, 1, 1, 1), size, np.float32), f"{name}.size")
    a = elementwise(g, a, scale, "PROD", f"{name}.a_px")
    b = elementwise(g, b, scale, "PROD", f"{name}.b_px")
    lo = elementwise(g, a, b, "MIN", f"{name}.lo_raw")
    hi = elementwise(g, a, b, "MAX", f"{name}.hi_raw")
    pad = g.constant(np.full((1, 1, 1, 1), CROP_PADDING, np.float32), f"{name}.padding")
    lo = elementwise(g, elementwise(g, lo, pad, "SUB", f"{name}.lo_padded"),
                     g.constant(np.zeros((1, 1, 1, 1), np.float32), f"{name}.zero"), "MAX", f"{name}.lo")
    hi = elementwise(g, elementwise(g, hi, pad, "SUM", f"{name}.hi_padded"), scale, "MIN", f"{name}.hi")
    return lo, hi


def crop_masks(g: Graph, masks: Any, boxes: Any) -> Any:
    """Upstream crop(masks, boxes, padding=1): zero every pixel outside the padded box.

    masks [N,D,H,W], boxes [N,D,4] relative x1,y1,x2,y2 -> maskiou/input [N,D,H,W]. A column c
    is kept iff x1 <= c < x2 (floats, after sanitize), rows alike.
    """
    _, _, h, w = (int(d) for d in tuple(masks.shape))
    boxes = g.into(boxes, POST)
    x1, y1, x2, y2 = (_box_coord(g, boxes, i, f"maskiou.box_{c}") for i, c in enumerate(("x1", "y1", "x2", "y2")))
    x_lo, x_hi = _sanitize(g, x1, x2, w, "maskiou.crop_x")
    y_lo, y_hi = _sanitize(g, y1, y2, h, "maskiou.crop_y")
    cols = g.constant(np.arange(w, dtype=np.float32).reshape(1, 1, 1, w), "maskiou.columns")
    rows = g.constant(np.arange(h, dtype=np.float32).reshape(1, 1, h, 1), "maskiou.rows")
    keep_x = _inside(g, cols, x_lo, x_hi, "maskiou.crop_x")  # [N,D,1,W]
    keep_y = _inside(g, rows, y_lo, y_hi, "maskiou.crop_y")  # [N,D,H,1]
    masks = elementwise(g, masks, keep_x, "PROD", "maskiou.crop_columns")
    cropped = elementwise(g, masks, keep_y, "PROD", "maskiou.crop_rows")
    cropped.name = names.MASKIOU_INPUT
    return cropped


def maskiou_net(g: Graph, masks: Any, config: Config) -> Any:
    """FastMaskIoUNet: [N,D,H,W] masks -> maskiou/pred [N,D,C-1] (each after ReLU and global max)."""
    _, d, h, w = (int(v) for v in tuple(masks.shape))
    x = shuffle(g, masks, "maskiou_net.input", reshape=(-1, 1, h, w))  # one mask per image: [N*D,1,H,W]
    last = len(config.maskiou.layers) - 1
    for i, (out_ch, kernel, stride) in enumerate(config.maskiou.layers):
        if out_ch is None:
            if i != last:
                raise GraphError(f"{PREFIX}.{2 * i}: only the last maskiou_net layer may take num_classes - 1")
            out_ch = config.num_classes - 1
        x = conv(g, x, f"{PREFIX}.{2 * i}", stride=stride, padding=0, kernel=kernel, out_channels=out_ch,
                 act=RELU, component=COMPONENT, out_name=f"{PREFIX}.{2 * i + 1}")
    pooled = g.named(g.network.add_reduce(x, g.trt.ReduceOperation.MAX, 0b1100, False), "maskiou_net.global_max")
    per_det = shuffle(g, g.into(pooled, POST), "maskiou_net.per_detection", reshape=(-1, d, int(tuple(x.shape)[1])))
    per_det.name = names.MASKIOU_PRED
    return per_det


def class_value(g: Graph, pred: Any, classes: Any) -> Any:
    """pred [N,D,C-1] at each detection's class [N,D] -> [N,D]; 0 for class -1 (padded slots).

    A one-hot product and a max over classes: pred >= 0 (final ReLU), so the max is exactly the
    picked value (x * 1) against zeros (x * 0).
    """
    num = int(tuple(pred.shape)[2])
    cls = shuffle(g, classes, "maskiou.classes", reshape=(0, 0, 1))
    ids = g.constant(np.arange(num, dtype=np.int32).reshape(1, 1, num), "maskiou.class_ids")
    onehot = _cast(g, elementwise(g, cls, ids, "EQUAL", "maskiou.class_match"), g.trt.DataType.FLOAT,
                   "maskiou.class_onehot")
    picked = elementwise(g, pred, onehot, "PROD", "maskiou.class_masked")
    return g.named(g.network.add_reduce(picked, g.trt.ReduceOperation.MAX, 0b100, False), "maskiou.at_class")


def valid_slots(g: Graph, count: Any, capacity: int) -> Any:
    """1.0 for slots < det/count of their frame, else 0.0: [N] -> [N, D]."""
    count = shuffle(g, count, "maskiou.count", reshape=(0, 1))
    slots = g.constant(np.arange(capacity, dtype=np.int32).reshape(1, capacity), "maskiou.slots")
    return _cast(g, elementwise(g, slots, count, "LESS", "maskiou.slot_used"), g.trt.DataType.FLOAT,
                 "maskiou.slot_valid")


def build_maskiou(g: Graph, proto: Any, detections: Mapping[str, Any], config: Config) -> dict[str, Any]:
    """proto NHWC and the det/* tensors -> maskiou/input, maskiou/pred and mask_scores (by name)."""
    if config.maskiou is None:
        raise GraphError(f"config {config.name!r} has no maskiou_net (Config.maskiou is None)")
    capacity = int(tuple(detections[names.DET_SCORES].shape)[1])
    masks = assemble_masks(g, proto, detections[names.DET_COEFFS])
    cropped = crop_masks(g, masks, detections[names.DET_BOXES])
    pred = maskiou_net(g, cropped, config)
    maskiou = class_value(g, pred, detections[names.DET_CLASSES])
    rescored = elementwise(g, g.into(detections[names.DET_SCORES], POST), maskiou, "PROD", "maskiou.rescore")
    valid = valid_slots(g, detections[names.DET_COUNT], capacity)
    scores = elementwise(g, rescored, valid, "PROD", "maskiou.mask_scores")
    scores.name = names.MASK_SCORES
    return {names.MASKIOU_INPUT: cropped, names.MASKIOU_PRED: pred, names.MASK_SCORES: scores}
