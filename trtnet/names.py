"""The one place for tensor names.

Every arrow of the pipeline in DESIGN.md is a tensor with one name, used by the
network builder, the emulator, the reference files (``../shared/reference``), the
runtime and the C++ API. Reference files prefix these with a pass name
(``key/``, ``nonkey/``, ``img0/``...); see :func:`in_pass`.
"""

from __future__ import annotations

# Network input: uint8 frames, NHWC, BGR, dynamic height and width.
INPUT = "frame"

# Backbone outputs fed to the FPN.
C3, C4, C5 = "backbone/C3", "backbone/C4", "backbone/C5"
BACKBONE = (C3, C4, C5)
PREPROCESSED = "preprocessed"  # float32 [1,3,550,550] NCHW RGB, normalised

# FPN phase 1 (top-down sums before the 3x3 pred convs) and the C3 lateral.
FPN1_P3, FPN1_P4, FPN1_P5 = "fpn_phase_1/P3", "fpn_phase_1/P4", "fpn_phase_1/P5"
FPN1_LATERAL3 = "fpn_phase_1/lateral3"
FPN1 = (FPN1_P3, FPN1_P4, FPN1_P5)

# FPN outputs.
P3, P4, P5, P6, P7 = "fpn/P3", "fpn/P4", "fpn/P5", "fpn/P6", "fpn/P7"
FPN = (P3, P4, P5, P6, P7)

# ProtoNet output: NHWC [1,138,138,32] like upstream.
PROTO = "proto"

# Prediction head, all priors (P3..P7, then y, x, aspect ratio).
LOC = "head/loc"            # [1, A, 4] raw regression
CONF = "head/conf"          # [1, A, num_classes] softmax
MASK = "head/mask"          # [1, A, mask_dim] tanh coefficients
PRIORS = "priors"           # [A, 4] cx, cy, w, h relative
BOXES = "decoded/boxes"     # [1, A, 4] x1, y1, x2, y2 relative

# Fast NMS outputs (fixed capacity max_det).
DET_COUNT = "det/count"     # int32 [1]
DET_BOXES = "det/boxes"     # [1, max_det, 4] x1, y1, x2, y2 relative
DET_SCORES = "det/scores"   # [1, max_det]
DET_CLASSES = "det/classes"  # int32 [1, max_det], 0-based foreground
DET_COEFFS = "det/coeffs"   # [1, max_det, mask_dim]
DETECTIONS = (DET_COUNT, DET_BOXES, DET_SCORES, DET_CLASSES, DET_COEFFS)

# YOLACT++ fast mask re-scoring (config.maskiou; trtnet.network.maskiou), after Fast NMS.
MASKIOU_INPUT = "maskiou/input"  # [1, max_det, 138, 138] cropped sigmoid masks (not an output)
MASKIOU_PRED = "maskiou/pred"    # [1, max_det, num_classes - 1] maskiou_net after max pool (not an output)
MASK_SCORES = "mask_scores"      # [1, max_det] det/scores x maskiou at det/classes, 0 past det/count


# YOLACT++ DCNv2 convs (trtnet.network.deform_conv): the offsets [N,18,H,W] (channel 2k = dy,
# 2k+1 = dx of tap k), the modulation mask after the sigmoid [N,9,H,W] and the output before
# bn2 of the DCN at checkpoint key ``backbone.layers.S.B.conv2``, as the reference files name them.
def dcn_tensor(key: str, part: str) -> str:
    """``dcn/layers.S.B.conv2/{offset,mask,out}`` of the DCN at ``key``."""
    if part not in ("offset", "mask", "out"):
        raise ValueError(f"DCN tensor part must be offset, mask or out, got {part!r}")
    return f"dcn/{key.removeprefix('backbone.')}/{part}"

# Video (non-keyframe) path.
PARTIAL_C3 = "partial_backbone/C3"
LATERAL3 = "lateral3"
# Keyframe state fed to a non-keyframe engine: the keyframe engine's exported
# fpn_phase_1/lateral3, P4, P5 under the "key/" pass prefix (the reference's key-pass names).
KEY_LATERAL3 = "key/fpn_phase_1/lateral3"
KEY_FPN1_P4, KEY_FPN1_P5 = "key/fpn_phase_1/P4", "key/fpn_phase_1/P5"
FLOW_PRECONV_CURRENT = "flow/preconv_current"    # flow_net_pre_convs(current lateral)
FLOW_PRECONV_KEYFRAME = "flow/preconv_keyframe"  # flow_net_pre_convs(keyframe lateral)
FLOW_P4, FLOW_P5 = "flow/flow_P4", "flow/flow_P5"
FLOW_SCALE_P4, FLOW_SCALE_P5 = "flow/scale_P4", "flow/scale_P5"
FLOW_BIAS_P4, FLOW_BIAS_P5 = "flow/bias_P4", "flow/bias_P5"
WARPED_P4, WARPED_P5 = "warp/warped_P4", "warp/warped_P5"
SPA_P4, SPA_P5 = "spa/P4", "spa/P5"
FPN1_FINAL_P3 = "fpn_phase_1_final/P3"
# float32 [1]: how far the frame has moved from its keyframe (flow.motion_statistic); the
# non-keyframe engine's output that --adaptive-keyframes thresholds.
FLOW_MOTION = "flow/motion"


def in_pass(pass_name: str, name: str) -> str:
    """Reference-file key of tensor ``name`` in pass ``pass_name`` (``key``, ``img0``...)."""
    return f"{pass_name}/{name}"
