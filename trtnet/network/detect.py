"""Box decoding against the priors and Fast NMS through the trtnet FastNMS plugin.

decode (upstream box_utils.decode, variances 0.1 / 0.2):
    cxcy = p_xy + loc_xy * 0.1 * p_wh ;  wh = p_wh * exp(loc_wh * 0.2)
    x1y1 = cxcy - wh / 2 ;  x2y2 = wh + x1y1      (same operation order as upstream)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtnet import names
from trtnet.config import Config
from trtnet.network.layers import Graph, GraphError, concat, elementwise, shuffle, slice_, unary
from trtnet.plugins.specs import FAST_NMS

COMPONENT = "detect"


def _scalar(g: Graph, value: float, name: str) -> Any:
    return g.constant(np.full((1, 1, 1), value, np.float32), name)


def _last_two(g: Graph, x: Any, first: int, name: str) -> Any:
    """``x[..., first:first + 2]`` of a rank-3 tensor, for any batch size."""
    index = g.constant(np.array([first, first + 1], np.int32), f"{name}.index")
    return g.named(g.network.add_gather(x, index, 2), name)


def decode_boxes(g: Graph, loc: Any, priors: Any, config: Config) -> Any:
    """loc [N,A,4] and priors [A,4] (cx,cy,w,h) -> boxes [N,A,4] (x1,y1,x2,y2), decoded/boxes.

    The loc halves are gathered (a slice would need the batch size at build time); the priors
    [1,A,*] broadcast over the batch.
    """
    loc = g.into(loc, COMPONENT)
    a = int(tuple(priors.shape)[0])
    v_xy, v_wh = config.detect.variances
    p = shuffle(g, priors, "decode.priors", reshape=(1, a, 4))
    p_xy = slice_(g, p, (0, 0, 0), (1, a, 2), "decode.priors_xy")
    p_wh = slice_(g, p, (0, 0, 2), (1, a, 2), "decode.priors_wh")
    l_xy = _last_two(g, loc, 0, "decode.loc_xy")
    l_wh = _last_two(g, loc, 2, "decode.loc_wh")
    off = elementwise(g, l_xy, _scalar(g, v_xy, "decode.variance_xy"), "PROD", "decode.loc_xy_scaled")
    off = elementwise(g, off, p_wh, "PROD", "decode.offset_xy")
    cxcy = elementwise(g, p_xy, off, "SUM", "decode.center")
    grow = elementwise(g, l_wh, _scalar(g, v_wh, "decode.variance_wh"), "PROD", "decode.loc_wh_scaled")
    grow = unary(g, grow, "EXP", "decode.exp_wh")
    wh = elementwise(g, p_wh, grow, "PROD", "decode.size")
    half = elementwise(g, wh, _scalar(g, 2.0, "decode.two"), "DIV", "decode.half_size")
    x1y1 = elementwise(g, cxcy, half, "SUB", "decode.x1y1")
    x2y2 = elementwise(g, wh, x1y1, "SUM", "decode.x2y2")
    return concat(g, [x1y1, x2y2], 2, "decode.corners", names.BOXES)


def fast_nms(g: Graph, boxes: Any, conf: Any, coeffs: Any, config: Config) -> dict[str, Any]:
    """The FastNMS plugin on decoded boxes, softmax scores and mask coefficients.

    Returns det/count, det/boxes, det/scores, det/classes, det/coeffs (fixed capacity max_det).
    """
    spec = config.detect
    registry = g.trt.get_plugin_registry()
    creator = registry.get_creator(FAST_NMS.name, FAST_NMS.version, FAST_NMS.namespace)
    if creator is None:
        raise GraphError(
            f"TensorRT plugin {FAST_NMS.namespace}::{FAST_NMS.name} v{FAST_NMS.version} is not "
            "registered: load trtnet's plugin library first (trtnet.plugins.load())"
        )
    plugin = FAST_NMS.create_plugin(
        g.trt, creator, "fastnms", top_k=spec.top_k, conf_thresh=spec.conf_thresh,
        nms_thresh=spec.nms_thresh, max_det=spec.max_det, background_class=0,
    )
    if plugin is None:
        raise GraphError(f"creating the {FAST_NMS.name} plugin failed (fields: {FAST_NMS.field_names})")
    inputs = [g.into(t, COMPONENT) for t in (boxes, conf, coeffs)]
    layer = g.network.add_plugin_v3(inputs, [], plugin)
    layer.name = "fastnms"
    out = {}
    for i, label in enumerate(names.DETECTIONS):
        t = layer.get_output(i)
        t.name = label
        out[label] = t
    return out
