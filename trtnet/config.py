"""Every released YolactEdge, YOLACT and YOLACT++ model configuration, as frozen dataclasses.

Values follow upstream ``yolact_edge/data/config.py`` (haotian-liu/yolact_edge, commit 873fceb)
and ``data/config.py`` of dbolya/yolact (commit 902073d: yolact_base, yolact_im400/700,
yolact_resnet50, yolact_darknet53, yolact_plus_base, yolact_plus_resnet50), keeping only what
inference needs. Upstream's names are kept so a user can pass the name they trained with;
the ``_config`` suffix is accepted too.

Quirks kept on purpose, because released weights were trained with them:
``use_square_anchors`` (every anchor is square whatever its aspect ratio) and
``preapply_sqrt=False`` (aspect ratios enter as ``sqrt(ar)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

MEANS_BGR = (103.94, 116.78, 123.68)
STD_BGR = (57.38, 57.12, 58.40)

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)

# COCO's category id of each contiguous class (upstream data/config.py COCO_LABEL_MAP, inverted:
# COCO skips ids 12, 26, 29, 30, 45, 66, 68, 69, 71 and 83). Results for COCO's evaluation use it.
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)

YOUTUBE_VIS_CLASSES = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake",
    "monkey", "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle",
    "bear", "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane",
    "truck", "zebra", "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog",
    "eagle", "earless_seal", "tennis_racket",
)


@dataclass(frozen=True)
class BackboneSpec:
    """Which backbone, and which of its stages feed the FPN.

    ``family`` is 'resnet' (``layers`` = blocks per stage, e.g. (3, 4, 6, 3)),
    'mobilenetv2' (``layers`` = the (t, c, n, s) rows of the inverted-residual table) or
    'darknet' (``layers`` = residual blocks per stage, (1, 2, 8, 8, 4) for DarkNet-53).
    ``selected_layers`` index upstream's ``backbone.layers`` (C3, C4, C5 in that order).
    ``partial_layers`` = how many stages the non-keyframe (partial) backbone runs.
    """

    family: str
    layers: tuple
    selected_layers: tuple[int, ...]
    partial_layers: int = 2
    width_mult: float = 1.0  # mobilenetv2 only
    round_nearest: int = 8   # mobilenetv2 only
    # YOLACT++ (resnet only): upstream's dcn_layers (per stage, how many trailing blocks may use
    # DCNv2 for their 3x3 conv) and dcn_interval (every interval-th block of those).
    dcn_layers: tuple[int, ...] = (0, 0, 0, 0)
    dcn_interval: int = 1

    def uses_dcn(self, stage: int, block: int) -> bool:
        """Whether block ``block`` of ``layers.<stage>`` has a deformable 3x3 conv (upstream's rule)."""
        blocks = int(self.layers[stage])
        return block + int(self.dcn_layers[stage]) >= blocks and block % self.dcn_interval == 0

    @property
    def has_dcn(self) -> bool:
        return any(int(d) > 0 for d in self.dcn_layers)

    @property
    def name(self) -> str:
        """Upstream's backbone name (``ResNet101``, ``ResNet50_DCNv2``, ``DarkNet53``...)."""
        if self.family == "resnet":
            base = f"ResNet{_RESNET_DEPTH[tuple(self.layers)]}"
            if not self.has_dcn:
                return base
            return f"{base}_DCNv2" if self.dcn_interval == 1 else f"{base}_DCN_Interval{self.dcn_interval}"
        if self.family == "darknet":
            return f"DarkNet{_DARKNET_DEPTH[tuple(self.layers)]}"
        return "MobileNetV2"


_RESNET_DEPTH = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}
_DARKNET_DEPTH = {(1, 2, 8, 8, 4): 53}


@dataclass(frozen=True)
class TransformSpec:
    """Upstream's backbone ``transform`` flags (BGR 0-255 input, after the resize).

    normalize: (x - mean) / std with the BGR means (ResNet, MobileNetV2); subtract_means:
    x - mean only; to_float: x / 255 (DarkNet). Exactly one is set in every released config.
    """

    normalize: bool = True
    subtract_means: bool = False
    to_float: bool = False


@dataclass(frozen=True)
class FPNSpec:
    num_features: int = 256
    interpolation_mode: str = "bilinear"
    num_downsample: int = 2
    use_conv_downsample: bool = True
    pad: bool = True


@dataclass(frozen=True)
class AnchorSpec:
    """Anchors per FPN level (P3..P7): upstream's ``pred_scales`` and ``pred_aspect_ratios``."""

    scales: tuple[tuple[float, ...], ...] = ((24,), (48,), (96,), (192,), (384,))
    aspect_ratios: tuple[tuple[float, ...], ...] = ((1, 0.5, 2),) * 5
    use_pixel_scales: bool = True
    preapply_sqrt: bool = False
    use_square_anchors: bool = True

    @property
    def per_cell(self) -> int:
        """Anchors per feature-map cell (the same on every level for released configs)."""
        return len(self.scales[0]) * len(self.aspect_ratios[0])


# One ProtoNet layer: (out_channels, kernel, padding). out_channels None with kernel -2 is
# upstream's "bilinear x2 interpolation" entry.
ProtoLayer = tuple[Optional[int], int, int]


@dataclass(frozen=True)
class ProtoSpec:
    layers: tuple[ProtoLayer, ...] = (
        (256, 3, 1), (256, 3, 1), (256, 3, 1), (None, -2, 0), (256, 3, 1), (32, 1, 0),
    )
    source: int = 0                        # mask_proto_src: FPN level P3
    prototype_activation: str = "relu"
    coeff_activation: str = "tanh"
    mask_activation: str = "sigmoid"
    bias: bool = False                     # mask_proto_bias

    @property
    def mask_dim(self) -> int:
        return int(self.layers[-1][0])


@dataclass(frozen=True)
class HeadSpec:
    """The shared prediction module (only ``prediction_layers.0`` holds weights)."""

    extra_head_net: tuple[ProtoLayer, ...] = ((256, 3, 1),)
    kernel_size: int = 3
    padding: int = 1
    shared: bool = True


@dataclass(frozen=True)
class DetectSpec:
    """Fast NMS settings of upstream's eval.py (its defaults; cfg.use_fast_nms is never read)."""

    top_k: int = 200
    conf_thresh: float = 0.05
    nms_thresh: float = 0.5
    max_det: int = 100
    variances: tuple[float, float] = (0.1, 0.2)


@dataclass(frozen=True)
class FlowSpec:
    """FeatFlowNet ("mini") + SPA settings of the video configs."""

    model: str = "mini"
    warp_mode: str = "flow"               # 'flow' or 'none' (no flow net in the checkpoint)
    use_spa: bool = True
    warp_layers: tuple[str, ...] = ("P4", "P5")
    encode_channels: int = 64
    reduce_channels: tuple[int, ...] = (64,)
    num_groups: int = 1
    use_scale_factor: bool = True
    use_scale_bias: bool = True
    flow_divisor: float = 8.0             # upstream's grid += flow / 8


@dataclass(frozen=True)
class MaskIoUSpec:
    """YOLACT++ fast mask re-scoring: upstream's maskiou_net over the cropped low-res masks.

    Each layer is (out_channels, kernel, stride), unpadded, ReLU after every one (the last too);
    out_channels None in the last layer means num_classes - 1.
    """

    layers: tuple[tuple[Optional[int], int, int], ...] = (
        (8, 3, 2), (16, 3, 2), (32, 3, 2), (64, 3, 2), (128, 3, 2), (None, 1, 1),
    )


@dataclass(frozen=True)
class Config:
    name: str
    backbone: BackboneSpec
    num_classes: int                      # including background
    class_names: tuple[str, ...]          # foreground classes, index = 0-based class id
    max_size: int = 550
    means_bgr: tuple[float, float, float] = MEANS_BGR
    std_bgr: tuple[float, float, float] = STD_BGR
    channel_order: str = "RGB"
    transform: TransformSpec = field(default_factory=TransformSpec)
    fpn: FPNSpec = field(default_factory=FPNSpec)
    anchors: AnchorSpec = field(default_factory=AnchorSpec)
    proto: ProtoSpec = field(default_factory=ProtoSpec)
    head: HeadSpec = field(default_factory=HeadSpec)
    detect: DetectSpec = field(default_factory=DetectSpec)
    flow: Optional[FlowSpec] = None       # None: image-only model (no flow net, no SPA)
    use_semantic_segmentation_loss: bool = True  # checkpoint holds semantic_seg_conv.*
    # dataset category id of each class; None: 1..N (upstream's label_map None, e.g. YouTube-VIS)
    label_map: Optional[tuple[int, ...]] = None
    maskiou: Optional[MaskIoUSpec] = None  # YOLACT++: mask_scores = scores x maskiou_net
    # Which upstream repository the config comes from: 'yolact_edge' checkpoints name the FPN
    # fpn_phase_1/fpn_phase_2, 'yolact' (dbolya/yolact) ones fpn.* (renamed on conversion).
    family: str = "yolact_edge"

    @property
    def is_video(self) -> bool:
        """True when the model has a flow net, so non-keyframes can be warped."""
        return self.flow is not None and self.flow.warp_mode == "flow"

    @property
    def mask_dim(self) -> int:
        return self.proto.mask_dim

    @property
    def category_ids(self) -> tuple[int, ...]:
        """The dataset category id of each 0-based class (upstream's get_label_map, inverted)."""
        return self.label_map or tuple(range(1, len(self.class_names) + 1))


RESNET101 = BackboneSpec("resnet", (3, 4, 23, 3), (1, 2, 3))
RESNET50 = BackboneSpec("resnet", (3, 4, 6, 3), (1, 2, 3))
MOBILENETV2 = BackboneSpec(
    "mobilenetv2",
    ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
     (6, 160, 3, 2), (6, 320, 1, 1)),
    (3, 4, 6),
)

_COCO = dict(num_classes=len(COCO_CLASSES) + 1, class_names=COCO_CLASSES, label_map=COCO_CATEGORY_IDS)
_YTVIS = dict(num_classes=len(YOUTUBE_VIS_CLASSES) + 1, class_names=YOUTUBE_VIS_CLASSES)

_yolact_edge = Config("yolact_edge", RESNET101, **_COCO)
_yolact_edge_vid = Config("yolact_edge_vid", RESNET101, **_YTVIS, flow=FlowSpec())
_yolact_edge_youtubevis = replace(
    _yolact_edge_vid, name="yolact_edge_youtubevis",
    flow=FlowSpec(warp_mode="none", use_spa=False),
)

# dbolya/yolact @ 902073d (data/config.py 656-806): yolact_base and its copies.
DARKNET53 = BackboneSpec("darknet", (1, 2, 8, 8, 4), (2, 3, 4))
_yolact_base = Config("yolact_base", RESNET101, **_COCO, family="yolact")


def _resized(config: Config, name: str, size: int) -> Config:
    """yolact_im400/700: every base scale s becomes int(s * size / 550) (upstream: s / 550 * size)."""
    base = config.max_size
    scales = tuple(tuple(int(s / base * size) for s in level) for level in config.anchors.scales)
    return replace(config, name=name, max_size=size, anchors=replace(config.anchors, scales=scales))


# YOLACT++: three scales per level, base * 2^(j/3), real (not square) aspect ratios.
_PLUS_ANCHORS = AnchorSpec(
    scales=tuple(tuple(b * 2 ** (j / 3.0) for j in range(3)) for b in (24, 48, 96, 192, 384)),
    use_square_anchors=False,
)
_yolact_plus_base = replace(
    _yolact_base, name="yolact_plus_base",
    backbone=replace(RESNET101, dcn_layers=(0, 4, 23, 3), dcn_interval=3),
    anchors=_PLUS_ANCHORS, maskiou=MaskIoUSpec(),
)

YOLACT_CONFIGS: tuple[Config, ...] = (
    _yolact_base,
    _resized(_yolact_base, "yolact_im400", 400),
    _resized(_yolact_base, "yolact_im700", 700),
    replace(_yolact_base, name="yolact_darknet53", backbone=DARKNET53,
            transform=TransformSpec(normalize=False, to_float=True)),
    replace(_yolact_base, name="yolact_resnet50", backbone=RESNET50),
    _yolact_plus_base,
    replace(_yolact_plus_base, name="yolact_plus_resnet50",
            backbone=replace(RESNET50, dcn_layers=(0, 4, 6, 3), dcn_interval=1)),
)

CONFIGS: dict[str, Config] = {c.name: c for c in (
    _yolact_edge,
    replace(_yolact_edge, name="yolact_edge_resnet50", backbone=RESNET50),
    replace(_yolact_edge, name="yolact_edge_mobilenetv2", backbone=MOBILENETV2),
    _yolact_edge_vid,
    replace(_yolact_edge_vid, name="yolact_edge_vid_resnet50", backbone=RESNET50),
    replace(_yolact_edge_vid, name="yolact_edge_vid_minimal", flow=FlowSpec(use_spa=False)),
    _yolact_edge_youtubevis,
    replace(_yolact_edge_youtubevis, name="yolact_edge_youtubevis_resnet50", backbone=RESNET50),
    *YOLACT_CONFIGS,
)}


class UnknownConfigError(KeyError):
    """Raised for a config name that is not a released YolactEdge / YOLACT / YOLACT++ model."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def get_config(name: str) -> Config:
    """The config called ``name`` (upstream spelling, with or without ``_config``)."""
    key = name[: -len("_config")] if name.endswith("_config") else name
    try:
        return CONFIGS[key]
    except KeyError:
        known = ", ".join(sorted(CONFIGS))
        raise UnknownConfigError(f"unknown config {name!r}; known configs: {known}") from None
