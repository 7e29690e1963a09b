"""Every key and shape a checkpoint of each config holds, and config recognition.

Key names and module order follow upstream's ``Yolact`` module tree (``yolact.py``,
``backbone.py``; yolact_edge 873fceb, dbolya/yolact 902073d): backbone, proto_net,
[maskiou_net], fpn_phase_1, fpn_phase_2, spa, flow_net_pre_convs, flow_net,
prediction_layers.0, semantic_seg_conv. dbolya/yolact checkpoints name the FPN ``fpn.*``;
the converter renames those keys to fpn_phase_1/2 (weights_convert.statedict) before they
are compared here, so both families are listed with the names the network reads. Checkpoints hold
modules inference never runs (``semantic_seg_conv``, flow ``pred1/upfeat2/upflow2``,
MobileNetV2's last two stages); they are listed here because a checkpoint has them.
BatchNorm ``num_batches_tracked`` is an int64 scalar (shape ``()``).

Recognition (:func:`match_config`) compares a checkpoint's key->shape map with every
config: a config *matches* when none of its keys is missing or misshapen. Keys a
config does not know (an unused module, a training-only layer) do not prevent a match;
they are reported as ``extra`` differences, and the config with the fewest differences
of any kind wins (so a video checkpoint is not taken for its image-only sibling). Extra
keys that would change what the network computes (a DCNv2 conv in the backbone, the
YOLACT++ ``maskiou_net``) block: such a checkpoint is never built as a plain config.

Several configs share every key and shape (yolact_base, yolact_im400, yolact_im700 and
yolact_edge; yolact_resnet50 and yolact_edge_resnet50): :func:`recognise` breaks such a tie
by the checkpoint's FPN naming (fpn.* is dbolya/yolact, fpn_phase_* yolact_edge), then by
the file name as upstream does (``<config>_<epoch>_<iter>.pth``); configs that build the
same network (differing only in name) are then one; otherwise it says which configs fit and
how to choose one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from trtnet.config import CONFIGS, BackboneSpec, Config

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


def _resnet(out: dict, spec: BackboneSpec) -> list[int]:
    """Bottleneck ResNet (stride on the 3x3 conv); returns each stage's output channels.

    A DCNv2 block's conv2 has a bias and a ``conv2.conv_offset_mask`` conv (27 = 2*9 offsets
    + 9 mask logits of a 3x3 kernel, upstream's DCN(deformable_groups=1)).
    """
    _conv(out, "backbone.conv1", 64, 3, 7, bias=False)
    _bn(out, "backbone.bn1", 64)
    inplanes, channels = 64, []
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), spec.layers)):
        for j in range(n):
            p = f"backbone.layers.{stage}.{j}"
            _conv(out, f"{p}.conv1", planes, inplanes, 1, bias=False)
            _bn(out, f"{p}.bn1", planes)
            dcn = spec.uses_dcn(stage, j)
            _conv(out, f"{p}.conv2", planes, planes, 3, bias=dcn)
            if dcn:
                _conv(out, f"{p}.conv2.conv_offset_mask", 27, planes, 3)
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


DARKNET_STEM = 32


def _darknet(out: dict, spec: BackboneSpec) -> list[int]:
    """DarkNet-53 (upstream's DarkNetBackbone), in its state_dict order (``layers`` before
    ``_preconv``): each stage ``layers.i`` opens with a 3x3/s2 conv to 2c (``layers.i.0``),
    then residual blocks ``layers.i.{1..n}`` of 1x1 to c (``conv1``) and 3x3 back to 2c
    (``conv2``); every conv is bias-free, ``.0`` conv and ``.1`` BatchNorm."""
    cin, channels = DARKNET_STEM, []
    for stage, n in enumerate(spec.layers):
        c = DARKNET_STEM * 2 ** stage
        _conv_bn(out, f"backbone.layers.{stage}.0", 2 * c, cin, 3)
        for b in range(1, int(n) + 1):
            _conv_bn(out, f"backbone.layers.{stage}.{b}.conv1", c, 2 * c, 1)
            _conv_bn(out, f"backbone.layers.{stage}.{b}.conv2", 2 * c, c, 3)
        cin = 2 * c
        channels.append(cin)
    _conv_bn(out, "backbone._preconv", DARKNET_STEM, 3, 3)
    return channels


def _maskiou_net(out: dict, config: Config) -> None:
    """FastMaskIoUNet: ``maskiou_net.maskiou_net.{2i}`` convs (each followed by a ReLU)."""
    cin = 1
    for i, (cout, k, _stride) in enumerate(config.maskiou.layers):
        cout = config.num_classes - 1 if cout is None else cout
        _conv(out, f"maskiou_net.maskiou_net.{2 * i}", cout, cin, k)
        cin = cout


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
        channels = _resnet(out, bb)
    elif bb.family == "mobilenetv2":
        channels = _mobilenetv2(out, bb.layers, bb.width_mult, bb.round_nearest)
    elif bb.family == "darknet":
        channels = _darknet(out, bb)
    else:
        raise ValueError(f"config {config.name}: unknown backbone family {bb.family!r}")
    f = config.fpn.num_features
    _proto_net(out, config, f)
    if config.maskiou is not None:
        _maskiou_net(out, config)
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
            what = changes_model(self.key)
            if what:
                return (f"{self.key}: not part of the config (shape {_fmt(self.found)}), "
                        f"a part of {what} it would drop")
            return f"{self.key}: not part of the config (shape {_fmt(self.found)})"
        return f"{self.key}: expected shape {_fmt(self.expected)}, found {_fmt(self.found)}"

    @property
    def blocking(self) -> bool:
        """True when the config cannot be built from this checkpoint: a key missing or
        misshapen, or an extra key the network would have to drop silently (DCN, maskiou)."""
        return self.kind != "extra" or bool(changes_model(self.key))


def changes_model(key: str) -> str:
    """What an extra checkpoint key belongs to when leaving it out changes the model's output
    ('' when it is only unused, e.g. semantic_seg_conv or flow layers of an image config).

    Upstream's own load_weights drops old ``backbone.layerN`` names; everything else under
    ``backbone.layers`` is part of the backbone, so e.g. a DCNv2 ``conv2.bias`` /
    ``conv2.conv_offset_mask`` there means the checkpoint's backbone is deformable.
    """
    if key.startswith("backbone.layers.") and (".conv_offset_mask." in key or key.endswith(".conv2.bias")):
        return "a deformable (DCNv2) backbone conv (YOLACT++)"
    if key.startswith("backbone.layers."):
        return "the backbone"
    if key.startswith("maskiou_net."):
        return "the YOLACT++ mask re-scoring net (maskiou_net)"
    return ""


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
    Best = fewest blocking differences, then fewest extras; among equals the first in
    CONFIGS order (:func:`recognise` reports such ties instead).
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


class AmbiguousConfigError(ValueError):
    """A checkpoint fits several configs equally well and nothing tells them apart."""


@dataclass(frozen=True)
class Recognition:
    """What :func:`recognise` found: the config (None if the checkpoint fits none), how it
    was chosen, every config that fits equally well, and the differences from the chosen
    (or the closest) one."""

    config: str | None
    closest: str
    diffs: list[Difference]
    fitting: tuple[str, ...]
    chosen_by: str        # 'shapes' | 'fpn naming' | 'file name' | '' (no config fits)


def config_from_filename(path: str | os.PathLike) -> str | None:
    """The config a released checkpoint's file name gives, as upstream's SavePath reads it.

    ``<config>_<epoch>_<iter>.pth`` (``_interrupt`` may follow): the name without its last two
    ``_`` pieces, the iteration an integer (e.g. yolact_plus_base_54_800000.pth ->
    yolact_plus_base). A file named exactly after a config (yolact_im700.safetensors) counts
    too. None when the name gives no known config.
    """
    stem = os.path.basename(os.fspath(path))
    for suffix in (".pth", ".pt", ".safetensors"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for candidate in (stem, stem[: -len("_config")] if stem.endswith("_config") else ""):
        if candidate in CONFIGS:
            return candidate
    parts = stem.split("_")
    if parts and parts[-1] == "interrupt":
        parts = parts[:-1]
    if len(parts) < 3 or not parts[-1].isdigit():
        return None
    name = "_".join(parts[:-2])
    return name if name in CONFIGS else None


def _scored(shapes: Mapping[str, Sequence[int]], configs: Mapping[str, Config]):
    for name, config in configs.items():
        diffs = compare(expected_shapes(config), shapes)
        n_blocking = sum(d.blocking for d in diffs)
        yield (n_blocking, len(diffs) - n_blocking), name, diffs


def _same_network(a: Config, b: Config) -> bool:
    """True when two configs build the same network (they differ only in name and origin)."""
    from dataclasses import replace

    return replace(a, name=b.name, family=b.family) == b


def recognise(shapes: Mapping[str, Sequence[int]], *, filename: str | os.PathLike | None = None,
              fpn_naming: str | None = None, configs: Mapping[str, Config] | None = None
              ) -> Recognition:
    """The config of a checkpoint from its keys and shapes, ties broken as the module says.

    ``fpn_naming``: 'yolact' when the checkpoint named its FPN ``fpn.*`` (dbolya/yolact),
    'yolact_edge' for ``fpn_phase_*``, None if unknown. ``filename``: the checkpoint's path,
    read like upstream's SavePath (:func:`config_from_filename`). Raises
    :class:`AmbiguousConfigError` naming every fitting config when nothing decides.
    """
    configs = CONFIGS if configs is None else configs
    scored = list(_scored(shapes, configs))
    if not scored:
        raise ValueError("no configs to match against")
    best = min(s for s, _, _ in scored)
    tied = [(name, diffs) for s, name, diffs in scored if s == best]
    if best[0] > 0:  # fits none: report the closest (first of equals, in CONFIGS order)
        return Recognition(None, tied[0][0], tied[0][1], (), "")
    fitting = tuple(name for name, _ in tied)
    chosen_by = "shapes"
    if len(tied) > 1 and fpn_naming is not None:
        same = [t for t in tied if configs[t[0]].family == fpn_naming]
        if same and len(same) < len(tied):
            tied, chosen_by = same, "fpn naming"
    if len(tied) > 1 and filename is not None:
        named = config_from_filename(filename)
        pick = [t for t in tied if t[0] == named]
        if pick:
            tied, chosen_by = pick, "file name"
    if len(tied) > 1 and all(_same_network(configs[t[0]], configs[tied[0][0]]) for t in tied):
        chosen_by = "equivalent configs"  # e.g. yolact_resnet50 = yolact_edge_resnet50 for images
        tied = tied[:1]
    if len(tied) > 1:
        names = [t[0] for t in tied]
        sizes = ", ".join(f"{n} ({configs[n].max_size}x{configs[n].max_size})" for n in names)
        raise AmbiguousConfigError(
            f"the checkpoint fits {len(names)} configs with the same keys and shapes: {sizes}; "
            "they differ in what the weights cannot show (input size, anchor scales). Choose one "
            f"with --config NAME (e.g. --config {names[0]}), or name the file as upstream's releases "
            f"are, <config>_<epoch>_<iteration>.pth (e.g. {names[-1]}_54_800000.pth)")
    name, diffs = tied[0]
    return Recognition(name, name, diffs, fitting, chosen_by)


def describe_blocking(diffs: Sequence[Difference], limit: int = 3) -> str:
    """The blocking differences in a few words: missing and misshapen keys (the first few),
    then the extra parts the config would drop, grouped by module (e.g. every DCN conv)."""
    parts = []
    for kind, label in (("missing", "missing"), ("shape", "misshapen")):
        group = [d for d in diffs if d.kind == kind]
        if group:
            listed = "; ".join(str(d) for d in group[:limit])
            more = f"; and {len(group) - limit} more" if len(group) > limit else ""
            parts.append(f"{len(group)} {label} keys ({listed}{more})")
    extra: dict[str, list[str]] = {}
    for d in diffs:
        if d.kind == "extra" and d.blocking:
            module = (d.key.split(".conv_offset_mask")[0] if ".conv_offset_mask." in d.key
                      else d.key.rsplit(".", 1)[0])
            extra.setdefault(changes_model(d.key), [])
            if module not in extra[changes_model(d.key)]:
                extra[changes_model(d.key)].append(module)
    for what, modules in extra.items():
        listed = ", ".join(modules[:limit]) + (f" and {len(modules) - limit} more" if len(modules) > limit else "")
        parts.append(f"extra keys of {what} in {len(modules)} modules ({listed})")
    return "; ".join(parts)


def fitting_configs(shapes: Mapping[str, Sequence[int]],
                    configs: Mapping[str, Config] | None = None) -> list[str]:
    """Every config a checkpoint can build (no blocking difference; unused extras allowed),
    in CONFIGS order."""
    configs = CONFIGS if configs is None else configs
    return [name for (n_blocking, _), name, _ in _scored(shapes, configs) if n_blocking == 0]
