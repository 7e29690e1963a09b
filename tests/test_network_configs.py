"""Every released config builds, and its shapes are upstream's (without running a pass).

The reference data covers ResNet-50, MobileNetV2 and YOLACT++ ResNet-50 numerically; this
covers the structure of every config (ResNet-101, DarkNet-53, im400/im700, the video
variants): the weights of trtnet.network.weight_spec fit the network the builder asks for,
the tensors the backbone, FPN, head and ProtoNet produce have upstream's shapes for the
config's max_size input (grids worked out by hand from upstream's layer arithmetic, see
tests/test_priors.py), ``python -m trtnet.build --dry-run`` accepts every config, and the
FastNMS twin handles YOLACT++'s prior counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from compiled import compiled_extension
from safetensors.numpy import save_file

from trtnet import emulator, names
from trtnet.config import CONFIGS, get_config
from trtnet.network.random_weights import random_weights
from trtnet.network.yolact_edge import build_keyframe
from trtnet.plugins import reference

# Upstream's backbone output channels (C3, C4, C5) per backbone family.
BACKBONE_CHANNELS = {"resnet": (512, 1024, 2048), "mobilenetv2": (32, 64, 160), "darknet": (256, 512, 1024)}
# P3..P7 and the prototype grid (P3 x 2) per max_size.
GRIDS = {550: (69, 35, 18, 9, 5), 400: (50, 25, 13, 7, 4), 700: (88, 44, 22, 11, 6)}
PROTO = {550: 138, 400: 100, 700: 176}
BATCH = -1  # the batch dimension is dynamic (trtnet.build --max-batch sets its range)

PLUS = ("yolact_plus_base", "yolact_plus_resnet50")


def _params(names_):
    return sorted(names_)


def _layer_names(net) -> list[str]:
    return [net.get_layer(i).name for i in range(net.num_layers)]


@pytest.mark.parametrize("name", _params(CONFIGS))
def test_keyframe_network_of_every_config_has_upstream_shapes(name):
    config = get_config(name)
    net = emulator.Network()
    t = build_keyframe(net, emulator.trt, random_weights(name), config)
    grids, anchors = GRIDS[config.max_size], 9 if name in PLUS else 3
    priors = sum(g * g for g in grids) * anchors
    channels = BACKBONE_CHANNELS[config.backbone.family]
    for label, c, g in zip(names.BACKBONE, channels, grids):
        assert tuple(t[label].shape) == (BATCH, c, g, g), label
    for label, g in zip(names.FPN, grids):
        assert tuple(t[label].shape) == (BATCH, 256, g, g), label
    p = PROTO[config.max_size]
    assert tuple(t[names.PROTO].shape) == (BATCH, p, p, config.mask_dim)
    assert tuple(t[names.PREPROCESSED].shape) == (BATCH, 3, config.max_size, config.max_size)
    assert tuple(t[names.LOC].shape) == (BATCH, priors, 4)
    assert tuple(t[names.CONF].shape) == (BATCH, priors, config.num_classes)
    assert tuple(t[names.MASK].shape) == (BATCH, priors, config.mask_dim)
    assert tuple(t[names.PRIORS].shape) == (priors, 4)
    max_det = config.detect.max_det
    assert tuple(t[names.DET_BOXES].shape) == (BATCH, max_det, 4)
    assert tuple(t[names.DET_COEFFS].shape) == (BATCH, max_det, config.mask_dim)
    layers = _layer_names(net)
    if name in PLUS:  # the deformable convs and the re-scoring net are really built
        dcn_blocks = {n.split(".conv2.conv_offset_mask")[0] for n in layers if ".conv2.conv_offset_mask" in n}
        assert len(dcn_blocks) == (13 if name == "yolact_plus_resnet50" else 11)
        assert any(n.startswith("maskiou_net.") for n in layers)
    else:
        assert not any("conv_offset_mask" in n or n.startswith("maskiou_net.") for n in layers)


@pytest.mark.parametrize("name", ["yolact_plus_resnet50", "yolact_plus_base"])
def test_yolact_plus_head_has_nine_anchors_per_cell(name):
    # conv channels A*4 / A*81 / A*32 with A = 3 scales x 3 ratios (checked on the graph alone)
    config = get_config(name)
    assert config.anchors.per_cell == 9
    w = random_weights(name)
    assert w["prediction_layers.0.bbox_layer.weight"].shape == (36, 256, 3, 3)
    assert w["prediction_layers.0.conf_layer.weight"].shape == (729, 256, 3, 3)
    assert w["prediction_layers.0.mask_layer.weight"].shape == (288, 256, 3, 3)


def test_darknet_preprocess_is_x_over_255_without_mean_or_std():
    # yolact_darknet53: to_float, i.e. RGB = BGR[..., ::-1] / 255 (upstream's darknet_transform);
    # a 550x550 frame is not resized, so the check is exact up to float32 division.
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1, 550, 550, 3), dtype=np.uint8)
    net = emulator.Network()
    build_keyframe(net, emulator.trt, random_weights("yolact_darknet53"), "yolact_darknet53")
    got = emulator.run(net, {names.INPUT: frame}, fetch=[names.PREPROCESSED], outputs=False)
    want = frame[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(got[names.PREPROCESSED], want)


@pytest.mark.parametrize("name", _params(CONFIGS))
def test_build_dry_run_of_every_config(name, tmp_path, capsys):
    from trtnet.build import main

    weights = tmp_path / f"{name}.safetensors"
    save_file(random_weights(name), str(weights))
    assert main(["--config", name, "--weights", str(weights), "--dry-run"]) == 0
    out = capsys.readouterr().out
    size = get_config(name).max_size
    assert f"dry run: {name} keyframe network" in out
    assert f"resizes every frame to {size}x{size}" in out
    p = PROTO[size]
    assert "output proto" in out and f"?x{p}x{p}x32" in out


@pytest.mark.parametrize("priors", [
    57744,                                   # YOLACT++ at 550: 6416 cells x 9
    sum(g * g for g in GRIDS[700]) * 9,      # 92889: im700's grids with 9 anchors, beyond any release
])
def test_fast_nms_twin_at_yolact_plus_prior_counts(priors):
    # No capacity depends on the prior count (plugins/fast_nms sizes its workspace from A):
    # the CPU twin equals the NumPy reference exactly at these sizes, with many candidates.
    twin = compiled_extension()
    rng = np.random.default_rng(priors)
    centre = rng.uniform(0, 1, (1, priors, 2)).astype(np.float32)
    size = rng.uniform(0.01, 0.3, (1, priors, 2)).astype(np.float32)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
    logits = rng.standard_normal((1, priors, 81)).astype(np.float32) * 2
    scores = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    coeffs = rng.uniform(-1, 1, (1, priors, 32)).astype(np.float32)
    got = twin.fast_nms(boxes, scores, coeffs)
    want = reference.fast_nms(boxes, scores, coeffs)
    assert int(want.count[0]) == 100   # a full output: the capacity is max_det, not the priors
    assert (scores[0, :, 1:].max(-1) > 0.05).sum() > 20000
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    # the last prior can be selected: give it the top score of class 1 with a unique box
    scores[0, -1, :] = 0
    scores[0, -1, 1] = 1.0
    boxes[0, -1] = (0.9, 0.9, 0.95, 0.95)
    _, out_boxes, out_scores, out_classes, _ = twin.fast_nms(boxes, scores, coeffs)
    assert out_scores[0, 0] == 1.0 and out_classes[0, 0] == 0
    np.testing.assert_array_equal(out_boxes[0, 0], boxes[0, -1])
