"""Configs match the values upstream recorded in the reference manifests."""

from __future__ import annotations

import json

import pytest

from trtnet.config import CONFIGS, UnknownConfigError, get_config

CASES = {"vid_resnet50": "yolact_edge_vid_resnet50_config",
         "mobilenetv2": "yolact_edge_mobilenetv2_config"}

RELEASED = ("yolact_edge", "yolact_edge_resnet50", "yolact_edge_mobilenetv2", "yolact_edge_vid",
            "yolact_edge_vid_resnet50", "yolact_edge_vid_minimal", "yolact_edge_youtubevis",
            "yolact_edge_youtubevis_resnet50")


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
