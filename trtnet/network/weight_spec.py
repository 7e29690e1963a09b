"""Every key and shape a checkpoint of each yolact_edge config holds, and config recognition.

Key names and module order follow upstream's ``Yolact`` module tree (``yolact.py``,
``backbone.py``, commit 873fceb): backbone, proto_net, fpn_phase_1, fpn_phase_2, spa,
flow_net_pre_convs, flow_net, prediction_layers.0, semantic_seg_conv. Checkpoints hold
modules inference never runs (``semantic_seg_conv``, flow ``pred1/upfeat2/upflow2``,
MobileNetV2's last two stages); they are listed here because a checkpoint has them.
BatchNorm ``num_batches_tracked`` is an int64 scalar (shape ``()``).

Recognition (:func:`match_config`) compares a checkpoint's key->shape map with every
config: a config *matches* when none of its keys is missing or misshapen. Keys a
config does not know (an unused module, a training-only layer) do not prevent a match;
they are reported as ``extra`` differences, and the config with the fewest differences
of any kind wins (so a video checkpoint is not taken for its image-only sibling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from trtnet.config import CONFIGS, Config

Shape = tuple[int, ...]
SCALAR: Shape = ()


def _conv(out: dict, name: str, cout: int, cin: int, k: int, bias: bool = True) -> None:
    out[f"{name}.weight"] = (cout, cin, k, k)
    if bias:
        out[f"{name}.bias"] = (cout,)


def _bn(out: dict, name: str, channels: int) -> None:
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        out[f"{name}.{leaf}"] = (channels,)
    out[f"{name}.num_batches_tracked"] = SCALAR


def _resnet(out: dict, blocks: Sequence[int]) -> list[int]:
    """Bottleneck ResNet (stride on the 3x3 conv); returns each stage's output channels."""
    _conv(out, "backbone.conv1", 64, 3, 7, bias=False)
    _bn(out, "backbone.bn1", 64)
    inplanes, channels = 64, []
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        for j in range(n):
            p = f"backbone.layers.{stage}.{j}"
            _conv(out, f"{p}.conv1", planes, inplanes, 1, bias=False)
            _bn(out, f"{p}.bn1", planes)
            _conv(out, f"{p}.conv2", planes, planes, 3, bias=False)
            _bn(out, f"{p}.bn2", planes)
            _conv(out, f"{p}.conv3", planes * 4, planes, 1, bias=False)
            _bn(out, f"{p}.bn3", planes * 4)
            if j == 0:  # upstream adds downsample whenever channels change or stride != 1
                _conv(out, f"{p}.downsample.0", planes * 4, inplanes, 1, bias=False)
                _bn(out, f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
        channels.append(inplanes)
    return channels


def _make_divisible(v: float, divisor: int) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn(out: dict, name: str, cout: int, cin: int, k: int, groups: int = 1) -> None:
    """torchvision's ConvBNReLU: ``name.0`` conv without bias, ``name.1`` BatchNorm."""
    out[f"{name}.0.weight"] = (cout, cin // groups, k, k)
    _bn(out, f"{name}.1", cout)


def _mobilenetv2(out: dict, rows: Sequence[Sequence[int]], width_mult: float,
                 round_nearest: int) -> list[int]:
    """MobileNetV2: stem, one stage per (t, c, n, s) row, 1x1 to 1280; returns channels."""
    cin = _make_divisible(32 * width_mult, round_nearest)
    last = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
    _conv_bn(out, "backbone.layers.0", cin, 3, 3)
    channels = [cin]
    for stage, (t, c, n, _s) in enumerate(rows, start=1):
        cout = _make_divisible(c * width_mult, round_nearest)
        for j in range(n):
            p = f"backbone.layers.{stage}.{j}.conv"
            hidden = int(round(cin * t))
            i = 0
            if t != 1:
                _conv_bn(out, f"{p}.{i}", hidden, cin, 1)
                i += 1
            _conv_bn(out, f"{p}.{i}", hidden, hidden, 3, groups=hidden)   # depthwise
            out[f"{p}.{i + 1}.weight"] = (cout, hidden, 1, 1)             # linear pointwise
            _bn(out, f"{p}.{i + 2}", cout)
            cin = cout
        channels.append(cout)
    _conv_bn(out, f"backbone.layers.{len(rows) + 1}", last, cin, 1)
    channels.append(last)
    return channels


def _proto_net(out: dict, config: Config, cin: int) -> None:
    """``make_net``: every entry is [layer, ReLU], so layer i is ``proto_net.{2i}``."""
    for i, (cout, k, _pad) in enumerate(config.proto.layers):
        if k > 0:
            _conv(out, f"proto_net.{2 * i}", cout, cin, k)
        elif cout is not None:  # transposed conv: weight (in, out, k, k)
            out[f"proto_net.{2 * i}.weight"] = (cin, cout, -k, -k)
            out[f"proto_net.{2 * i}.bias"] = (cout,)
        cin = cout if cout is not None else cin


def _flow(out: dict, config: Config, f: int) -> None:
    flow = config.flow
    e = flow.encode_channels
    cin = f
    for i, reduce in enumerate(flow.reduce_channels):
        _conv(out, f"flow_net_pre_convs.convs.{i}.0", reduce, cin, 3)
        cin = reduce
    # build_flow_convs(encode_layers, in, out): in -> e*l0 -> ... -> e*l_last -> out, each a
    # 3x3 conv + LeakyReLU; upstream's video configs use encode_layers [[1], [2], [4]].
    stages = ((cin * 2, (1,), e), (e, (2,), e * 2), (e * 2, (4,), e * 4))
    for s, (stage_in, layers, stage_out) in enumerate(stages, start=1):
        widths = [stage_in] + [e * m for m in layers] + [stage_out]
        for i in range(len(widths) - 1):
            groups = flow.num_groups if (s == 1 and i < len(widths) - 2) else 1
            _conv(out, f"flow_net.conv{s}.{i}.0", widths[i + 1], widths[i] // groups, 3)
    for name, cin_pred in (("pred3", e * 4), ("pred2", e * 4 + 2), ("pred1", e * 2 + 2)):
        _conv(out, f"flow_net.{name}.conv", 2, cin_pred, 3, bias=False)
        _conv(out, f"flow_net.{name}.scale", f, cin_pred, 1)
        _conv(out, f"flow_net.{name}.bias", f, cin_pred, 1)
    _conv(out, "flow_net.upfeat3", e * 2, e * 4, 3, bias=False)
    _conv(out, "flow_net.upflow3", 2, 2, 3, bias=False)
    _conv(out, "flow_net.upfeat2", e, e * 4 + 2, 3, bias=False)
    _conv(out, "flow_net.upflow2", 2, 2, 3, bias=False)


def expected_shapes(config: "Config | str") -> dict[str, Shape]:
    """Every key and shape a checkpoint of ``config`` holds, in upstream's module order."""
    if isinstance(config, str):
        from trtnet.config import get_config
        config = get_config(config)
    out: dict[str, Shape] = {}
    bb = config.backbone
    if bb.family == "resnet":
        channels = _resnet(out, bb.layers)
    elif bb.family == "mobilenetv2":
        channels = _mobilenetv2(out, bb.layers, bb.width_mult, bb.round_nearest)
    else:
        raise ValueError(f"config {config.name}: unknown backbone family {bb.family!r}")
    f = config.fpn.num_features
    _proto_net(out, config, f)
    src = [channels[i] for i in bb.selected_layers]
    for i, c in enumerate(reversed(src)):
        _conv(out, f"fpn_phase_1.lat_layers.{i}", f, c, 1)
    for i in range(len(src)):
        _conv(out, f"fpn_phase_2.pred_layers.{i}", f, f, 3)
    if config.fpn.use_conv_downsample:
        for i in range(config.fpn.num_downsample):
            _conv(out, f"fpn_phase_2.downsample_layers.{i}", f, f, 3)
    if config.flow is not None and config.flow.use_spa:
        for i in range(len(src) - 1):
            _conv(out, f"spa.refine_convs.{i}.0", f, 2 * f, 3)
    if config.is_video:
        _flow(out, config, f)
    cin = f
    for i, (cout, k, _pad) in enumerate(config.head.extra_head_net):
        _conv(out, f"prediction_layers.0.upfeature.{2 * i}", cout, cin, k)
        cin = cout
    priors = config.anchors.per_cell
    k = config.head.kernel_size
    _conv(out, "prediction_layers.0.bbox_layer", priors * 4, cin, k)
    _conv(out, "prediction_layers.0.conf_layer", priors * config.num_classes, cin, k)
    _conv(out, "prediction_layers.0.mask_layer", priors * config.mask_dim, cin, k)
    if config.use_semantic_segmentation_loss:
        _conv(out, "semantic_seg_conv", config.num_classes - 1, f, 1)
    return out


@dataclass(frozen=True)
class Difference:
    """One way a checkpoint differs from a config: a key missing, extra, or misshapen."""

    kind: str                     # 'missing' | 'shape' | 'extra'
    key: str
    expected: Optional[Shape]
    found: Optional[Shape]

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"{self.key}: missing (expected shape {_fmt(self.expected)})"
        if self.kind == "extra":
            return f"{self.key}: not part of the config (shape {_fmt(self.found)})"
        return f"{self.key}: expected shape {_fmt(self.expected)}, found {_fmt(self.found)}"

    @property
    def blocking(self) -> bool:
        """True when the config cannot be built from this checkpoint (missing or misshapen)."""
        return self.kind != "extra"


def _fmt(shape: Optional[Shape]) -> str:
    return "?" if shape is None else str(tuple(shape))


def compare(expected: Mapping[str, Shape], shapes: Mapping[str, Sequence[int]]
            ) -> list[Difference]:
    """Differences between a config's expected shapes and a checkpoint's, blocking first,
    each group in the config's key order (then the checkpoint's for extras)."""
    blocking = []
    for key, exp in expected.items():
        if key not in shapes:
            blocking.append(Difference("missing", key, exp, None))
        elif tuple(shapes[key]) != exp:
            blocking.append(Difference("shape", key, exp, tuple(shapes[key])))
    extra = [Difference("extra", k, None, tuple(s)) for k, s in shapes.items()
             if k not in expected]
    return blocking + extra


def match_config(shapes: Mapping[str, Sequence[int]],
                 configs: Optional[Mapping[str, Config]] = None
                 ) -> tuple[str, list[Difference]]:
    """The config a checkpoint (key -> shape) belongs to, and how it differs from it.

    Returns the best config's name and its differences: an empty list is an exact match;
    only ``extra`` differences still mean a match (see :attr:`Difference.blocking`).
    Best = fewest blocking differences, then fewest extras.
    """
    configs = CONFIGS if configs is None else configs
    best: Optional[tuple[tuple[int, int], str, list[Difference]]] = None
    for name, config in configs.items():
        diffs = compare(expected_shapes(config), shapes)
        n_blocking = sum(d.blocking for d in diffs)
        score = (n_blocking, len(diffs) - n_blocking)
        if best is None or score < best[0]:
            best = (score, name, diffs)
    assert best is not None, "no configs to match against"
    return best[1], best[2]
