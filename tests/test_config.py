"""Configs match the values upstream recorded in the reference manifests and, for the
dbolya/yolact family, in reference/checkpoint_shapes/<config>.json (``meta``)."""

from __future__ import annotations

import json

import pytest

from trtnet.config import CONFIGS, UnknownConfigError, get_config

CASES = {"vid_resnet50": "yolact_edge_vid_resnet50_config",
         "mobilenetv2": "yolact_edge_mobilenetv2_config"}

RELEASED = ("yolact_edge", "yolact_edge_resnet50", "yolact_edge_mobilenetv2", "yolact_edge_vid",
            "yolact_edge_vid_resnet50", "yolact_edge_vid_minimal", "yolact_edge_youtubevis",
            "yolact_edge_youtubevis_resnet50",
            # dbolya/yolact @ 902073d (README's released checkpoints, plus yolact_im400)
            "yolact_base", "yolact_im400", "yolact_im700", "yolact_darknet53", "yolact_resnet50",
            "yolact_plus_base", "yolact_plus_resnet50")
YOLACT_FAMILY = RELEASED[8:]


def test_every_released_model_has_a_config():
    assert sorted(CONFIGS) == sorted(RELEASED)


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_matches_upstream_manifest(reference_dir, case):
    manifest = json.loads((reference_dir / case / "manifest.json").read_text())
    up = manifest["config"]
    assert manifest["config_name"] == CASES[case]
    cfg = get_config(manifest["config_name"])
    assert cfg.backbone.name == up["backbone"]
    assert list(cfg.backbone.selected_layers) == up["selected_layers"]
    assert cfg.num_classes == up["num_classes"] == len(cfg.class_names) + 1
    assert cfg.max_size == up["max_size"]
    assert [list(s) for s in cfg.anchors.scales] == up["pred_scales"]
    assert [[list(a)] for a in cfg.anchors.aspect_ratios] == up["pred_aspect_ratios"]
    assert (cfg.anchors.use_pixel_scales, cfg.anchors.preapply_sqrt,
            cfg.anchors.use_square_anchors) == (up["use_pixel_scales"], up["preapply_sqrt"],
                                                up["use_square_anchors"])
    assert list(cfg.means_bgr) == up["transform"]["MEANS_bgr"]
    assert list(cfg.std_bgr) == up["transform"]["STD_bgr"]
    assert cfg.channel_order == up["transform"]["channel_order"]
    fpn = up["fpn"]
    assert (cfg.fpn.num_features, cfg.fpn.num_downsample, cfg.fpn.use_conv_downsample) == (
        fpn["num_features"], fpn["num_downsample"], fpn["use_conv_downsample"])
    assert cfg.mask_dim == up["mask_dim"]
    assert cfg.proto.source == up["mask_proto_src"]
    proto_net = [(c, k, 1 if k == 3 else 0) for c, k in
                 [(256, 3), (256, 3), (256, 3), (None, -2), (256, 3), (32, 1)]]
    assert "'padding': 1" in up["mask_proto_net"] and list(cfg.proto.layers) == proto_net
    det = up["detection"]
    assert (cfg.detect.top_k, cfg.detect.nms_thresh, cfg.detect.conf_thresh,
            cfg.detect.max_det) == (det["top_k"], det["nms_thresh"], det["conf_thresh"],
                                    det["max_num_detections"])
    assert list(cfg.detect.variances) == det["box_variances"]
    flow = up["flow"]
    if flow["warp_mode"] == "flow":
        assert cfg.is_video and cfg.flow.model == flow["model"]
        assert cfg.flow.use_spa == flow["use_spa"]
        assert "".join(cfg.flow.warp_layers) == flow["warp_layers"]
        assert cfg.flow.encode_channels == flow["encode_channels"]
        assert list(cfg.flow.reduce_channels) == flow["reduce_channels"]
    else:
        assert not cfg.is_video


def test_config_suffix_is_optional():
    assert get_config("yolact_edge_resnet50_config") is get_config("yolact_edge_resnet50")


def test_unknown_config_names_the_known_ones():
    with pytest.raises(UnknownConfigError, match=r"unknown config 'yolact_plus'.*yolact_edge_vid"):
        get_config("yolact_plus")


@pytest.mark.parametrize("name", YOLACT_FAMILY)
def test_yolact_config_matches_its_checkpoint_shapes_meta(reference_dir, name):
    meta = json.loads((reference_dir / "checkpoint_shapes" / f"{name}_config.json").read_text())["meta"]
    cfg = get_config(meta["config"])
    assert cfg.name == name and cfg.family == "yolact"
    assert cfg.max_size == meta["max_size"]
    assert cfg.backbone.name == meta["backbone"]
    assert list(cfg.backbone.selected_layers) == meta["selected_layers"]
    # exact equality: the im400/700 truncations and the 2^(j/3) scales as upstream computed them
    assert [list(s) for s in cfg.anchors.scales] == meta["pred_scales"]
    assert [[list(a)] for a in cfg.anchors.aspect_ratios] == meta["pred_aspect_ratios"]
    assert cfg.anchors.use_square_anchors == meta["use_square_anchors"]
    assert cfg.anchors.preapply_sqrt == meta["preapply_sqrt"]
    transform = meta["transform"]
    assert cfg.channel_order == transform["channel_order"]
    assert (cfg.transform.normalize, cfg.transform.subtract_means, cfg.transform.to_float) == (
        transform["normalize"], transform["subtract_means"], transform["to_float"])
    assert (cfg.maskiou is not None) == meta["use_maskiou"]
    assert cfg.num_classes == meta["num_classes"] == len(cfg.class_names) + 1


@pytest.mark.parametrize("name, blocks", [
    # upstream's rule (backbone.py _make_layer): block 0 iff dcn_layers[s] >= blocks, block i iff
    # i + dcn_layers[s] >= blocks and i % interval == 0
    ("yolact_plus_resnet50", {1: [0, 1, 2, 3], 2: [0, 1, 2, 3, 4, 5], 3: [0, 1, 2]}),
    ("yolact_plus_base", {1: [0, 3], 2: [0, 3, 6, 9, 12, 15, 18, 21], 3: [0]}),
])
def test_dcn_blocks_are_upstreams(reference_dir, name, blocks):
    spec = get_config(name).backbone
    got = {s: [b for b in range(spec.layers[s]) if spec.uses_dcn(s, b)] for s in range(4)}
    assert got == {0: [], **blocks}
    shapes = json.loads((reference_dir / "checkpoint_shapes" / f"{name}_config.json").read_text())["shapes"]
    in_json = sorted({k.split(".conv2.conv_offset_mask")[0] for k in shapes if "conv_offset_mask" in k})
    assert in_json == sorted(f"backbone.layers.{s}.{b}" for s, bs in blocks.items() for b in bs)


def test_plain_configs_have_no_dcn_and_no_maskiou():
    for name, cfg in CONFIGS.items():
        if not name.startswith("yolact_plus"):
            assert not cfg.backbone.has_dcn and cfg.maskiou is None, name


def test_yolact_plus_resnet50_matches_its_reference_manifest(reference_dir):
    manifest = json.loads((reference_dir / "yolact_plus_resnet50" / "manifest.json").read_text())
    up = manifest["config"]
    cfg = get_config(manifest["config_name"])
    assert cfg.name == "yolact_plus_resnet50" and cfg.backbone.name == up["backbone"]
    assert [list(cfg.backbone.layers), list(cfg.backbone.dcn_layers)] == up["backbone_args"]
    assert cfg.backbone.dcn_interval == 1   # resnet50_dcnv2_backbone leaves the default
    blocks = [f"backbone.layers.{s}.{b}.conv2" for s in range(4) for b in range(cfg.backbone.layers[s])
              if cfg.backbone.uses_dcn(s, b)]
    assert blocks == up["dcn_layers"]
    assert list(cfg.backbone.selected_layers) == up["selected_layers"]
    assert (cfg.num_classes, cfg.max_size) == (up["num_classes"], up["max_size"])
    assert [list(s) for s in cfg.anchors.scales] == up["pred_scales"]
    assert [[list(a)] for a in cfg.anchors.aspect_ratios] == up["pred_aspect_ratios"]
    assert (cfg.anchors.use_pixel_scales, cfg.anchors.preapply_sqrt, cfg.anchors.use_square_anchors) == (
        up["use_pixel_scales"], up["preapply_sqrt"], up["use_square_anchors"])
    assert cfg.maskiou is not None and up["use_maskiou"] and up["rescore_mask"] and not up["rescore_bbox"]
    # maskiou_net entries as the manifest writes them (strings); upstream adds (num_classes - 1, 1, {})
    layers = [(int(c), int(k), int(kw.split(":")[1].strip(" }"))) for c, k, kw in up["maskiou_net"]]
    assert list(cfg.maskiou.layers) == [*layers, (None, 1, 1)]
    det = up["detection"]
    assert (cfg.detect.top_k, cfg.detect.conf_thresh, cfg.detect.nms_thresh, cfg.detect.max_det) == (
        det["top_k"], det["conf_thresh"], det["nms_thresh"], det["max_num_detections"])
