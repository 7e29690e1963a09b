"""YolactEdge keyframe (image) network: frame -> detections + prototypes.

    frame (uint8 [1,H,W,3] BGR) -> preprocess -> backbone C3..C5 -> FPN phase 1 -> phase 2
      P3 -> ProtoNet -> proto ; P3..P7 -> shared head -> loc, conf, mask
      decode(loc, priors) -> FastNMS -> det/count, boxes, scores, classes, coeffs

The same code builds on TensorRT (``trt`` = the tensorrt module, a strongly typed network)
and on trtnet's NumPy emulator (``trt`` = trtnet.emulator.trt).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from trtnet import names
from trtnet.config import Config, get_config
from trtnet.network.backbone import build_backbone
from trtnet.network.detect import decode_boxes, fast_nms
from trtnet.network.fpn import build_fpn_phase_1, build_fpn_phase_2
from trtnet.network.head import build_head
from trtnet.network.layers import Graph
from trtnet.network.preprocess import add_frame_input, build_preprocess
from trtnet.network.priors import build_priors
from trtnet.network.protonet import build_protonet
from trtnet.precision import PlanLike
from trtnet.weights import WeightsSource

# Outputs of the keyframe engine; video models also export the state later frames need.
KEYFRAME_OUTPUTS = names.DETECTIONS + (names.PROTO,)
KEYFRAME_STATE = (names.FPN1_LATERAL3, names.FPN1_P4, names.FPN1_P5)


class NetworkTensors(dict):
    """Named tensors of a built network (name -> ITensor); also holds the WeightStore whose
    arrays TensorRT points at, so keep this object until the engine is built."""

    weights: Any = None


def _as_config(config: Union[Config, str]) -> Config:
    return get_config(config) if isinstance(config, str) else config


def _export_fp32(g: Graph, t: Any, label: str) -> Any:
    """Mark ``t`` as output ``label`` in float32 (a cast named ``label`` if it is fp16)."""
    if t.dtype != g.trt.DataType.FLOAT and t.dtype != g.trt.DataType.INT32:
        t.name = f"{label}.fp16"
        t = g.named(g.network.add_cast(t, g.trt.DataType.FLOAT), f"{label}.to_fp32", label)
    g.network.mark_output(t)
    return t


def build_predictions(g: Graph, phase1: Sequence[Any], config: Config) -> NetworkTensors:
    """Everything after FPN phase 1, shared by keyframe and non-keyframe networks.

    phase-1 [P3, P4, P5] -> FPN phase 2 (P3..P7) -> ProtoNet (proto) and the shared head
    (loc, conf, mask) -> decode against the priors -> FastNMS. Marks det/* and proto as
    outputs (proto in float32 whatever the plan) and returns the tensors by name.
    """
    levels = build_fpn_phase_2(g, phase1, config)
    proto = build_protonet(g, levels[config.proto.source], config)
    loc, conf, mask = build_head(g, levels, config)
    priors = build_priors(g, config, levels)
    boxes = decode_boxes(g, loc, priors, config)
    detections = fast_nms(g, boxes, conf, mask, config)
    tensors = NetworkTensors((t.name, t) for t in (*levels, loc, conf, mask, priors, boxes))
    tensors.update(detections)
    tensors[names.PROTO] = _export_fp32(g, proto, names.PROTO)
    for label in names.DETECTIONS:
        g.network.mark_output(detections[label])
    tensors.weights = g.weights
    return tensors


def build_keyframe(
    network: Any, trt: Any, weights: WeightsSource, config: Union[Config, str], *,
    plan: PlanLike = None, export_state: Optional[bool] = None,
) -> NetworkTensors:
    """Add the keyframe network to ``network``; return every named tensor (trtnet.names).

    Marked outputs: det/* and proto; with ``export_state`` (default: video configs) also
    fpn_phase_1/lateral3, P4, P5, which a non-keyframe engine takes as its keyframe state.
    ``weights`` is a WeightStore, a dict of arrays or a file; keep a WeightStore alive until
    TensorRT has built the engine (trt.Weights do not copy).
    """
    config = _as_config(config)
    g = Graph(network, trt, weights, plan)
    frame = add_frame_input(g)
    image = build_preprocess(g, frame, config)
    c3, c4, c5 = build_backbone(g, image, config)
    phase1, lateral3 = build_fpn_phase_1(g, [c3, c4, c5], config)
    tensors = build_predictions(g, phase1, config)
    tensors.update((t.name, t) for t in (frame, image, c3, c4, c5, lateral3, *phase1))
    if config.is_video if export_state is None else export_state:
        for label in KEYFRAME_STATE:
            tensors[label] = _export_fp32(g, tensors[label], label)
    return tensors


def emulate_keyframe(
    weights: WeightsSource, config: Union[Config, str], frame_bgr: np.ndarray,
    fetch: Optional[Sequence[str]] = None, *, plan: PlanLike = None,
) -> dict[str, np.ndarray]:
    """Run the keyframe network on trtnet's NumPy emulator (slow, exact reference).

    ``frame_bgr`` is uint8 HxWx3 (or 1xHxWx3) BGR like cv2.imread; returns the marked
    outputs plus any tensor named in ``fetch`` (e.g. trtnet.names.C3).
    """
    from trtnet import emulator

    frame = np.asarray(frame_bgr)
    if frame.ndim == 3:
        frame = frame[None]
    if frame.dtype != np.uint8 or frame.ndim != 4 or frame.shape[0] != 1 or frame.shape[3] != 3:
        raise ValueError(
            f"expected a uint8 BGR frame HxWx3 (or 1xHxWx3), got {frame.dtype} {frame.shape}"
        )
    net = emulator.Network()
    build_keyframe(net, emulator.trt, weights, config, plan=plan)
    return emulator.run(net, {names.INPUT: frame}, fetch=list(fetch) if fetch else None)
