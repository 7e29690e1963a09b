"""YOLACT++ fast mask re-scoring (trtnet.network.maskiou) against upstream's own numbers.

The subnetwork is fed the reference's Fast NMS detections, prototypes and coefficients
(yolact_plus_resnet50, two images) and run on the emulator; maskiou/pred and mask_scores must
match upstream within a small multiple of the manifest's fp32-vs-fp64 spread.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trtnet import emulator, names
from trtnet.config import MaskIoUSpec, UnknownConfigError, get_config
from trtnet.network.layers import Graph, GraphError
from trtnet.network.maskiou import build_maskiou
from trtnet.network.weights import WeightStore
from trtnet.precision import as_plan

CASE = "yolact_plus_resnet50"
IMAGES = ("img0", "img1")
MAX_DET, MASK_DIM, GRID, FG_CLASSES = 100, 32, 138, 80
SPREAD_MULTIPLE = 4.0  # allowed error = 4 x upstream's own fp32-vs-fp64 difference


def _config():
    try:
        config = get_config(CASE)
    except UnknownConfigError:  # YOLACT++ configs not registered yet: an existing one plus maskiou
        config = replace(get_config("yolact_edge_resnet50"), name=CASE, maskiou=MaskIoUSpec())
    assert config.maskiou is not None and config.num_classes == FG_CLASSES + 1
    return config


@pytest.fixture(scope="module")
def case(reference_dir: Path):
    root = reference_dir / CASE
    manifest = json.loads((root / "manifest.json").read_text())
    outputs = np.load(root / "outputs.npz")
    store = WeightStore.load(root / "weights.pth")
    keys = [k for k in store.shapes() if k.startswith("maskiou_net.")]
    weights = {k: store.get(k, layer="test") for k in keys}
    return manifest, outputs, weights


def _build(weights, config, plan=None):
    net, trt = emulator.Network(), emulator.trt
    g = Graph(net, trt, weights, plan)
    f = trt.DataType.FLOAT
    proto = net.add_input(names.PROTO, f, (-1, GRID, GRID, MASK_DIM))
    det = {
        names.DET_COUNT: net.add_input(names.DET_COUNT, trt.DataType.INT32, (-1,)),
        names.DET_BOXES: net.add_input(names.DET_BOXES, f, (-1, MAX_DET, 4)),
        names.DET_SCORES: net.add_input(names.DET_SCORES, f, (-1, MAX_DET)),
        names.DET_CLASSES: net.add_input(names.DET_CLASSES, trt.DataType.INT32, (-1, MAX_DET)),
        names.DET_COEFFS: net.add_input(names.DET_COEFFS, f, (-1, MAX_DET, MASK_DIM)),
    }
    out = build_maskiou(g, proto, det, config)
    net.mark_output(out[names.MASK_SCORES])
    return net, g, out


def _inputs(outputs, orders, counts):
    """img0's detections (the one image whose full prototypes the reference stores), one frame
    per ``orders`` entry with its detections in that order, as one batch with ``counts``."""
    def stack(key, dtype):
        return np.stack([outputs[f"img0/fastnms/{key}"][list(o)] for o in orders]).astype(dtype)

    return {
        names.PROTO: np.concatenate([outputs["img0/proto"]] * len(orders)).astype(np.float32),
        names.DET_COUNT: np.asarray(counts, np.int32),
        names.DET_BOXES: stack("det_boxes", np.float32),
        names.DET_SCORES: stack("det_scores", np.float32),
        names.DET_CLASSES: stack("det_classes", np.int32),
        names.DET_COEFFS: stack("det_mask_coefs", np.float32),
    }


FORWARD, REVERSED = range(MAX_DET), range(MAX_DET - 1, -1, -1)
COUNT_1 = 37  # frame 1 of the batch: img0's detections reversed, only the first 37 counted


def _tolerances(manifest, outputs, tag):
    """(mask score, maskiou) tolerances from upstream's fp32-vs-fp64 mask score spread."""
    spread = manifest["tolerances"]["detections_fp32_vs_fp64"][tag]["max_mask_score_diff"]
    score_tol = SPREAD_MULTIPLE * spread
    # mask_score = score x maskiou: the maskiou spread is the score spread over the smallest score
    return score_tol, score_tol / float(outputs[f"{tag}/fastnms/det_scores"].min())


@pytest.fixture(scope="module")
def batch_run(case):
    """A batch N=2: img0's detections, and the same reversed with only 37 counted."""
    _, outputs, weights = case
    net, _, _ = _build(weights, _config())
    inputs = _inputs(outputs, (FORWARD, REVERSED), counts=[MAX_DET, COUNT_1])
    return inputs, emulator.run(net, inputs, fetch=[names.MASKIOU_PRED, names.MASKIOU_INPUT])


def test_upstream_facts_the_subnetwork_relies_on(case):
    manifest, outputs, weights = case
    cfg = manifest["config"]
    assert cfg["use_maskiou"] and cfg["rescore_mask"] and not cfg["rescore_bbox"]
    assert [(int(c), int(k)) for c, k, _ in cfg["maskiou_net"]] == [(8, 3), (16, 3), (32, 3), (64, 3), (128, 3)]
    assert all(extra == "{'stride': 2}" for _, _, extra in cfg["maskiou_net"])  # stride only: padding 0
    assert _config().maskiou.layers == ((8, 3, 2), (16, 3, 2), (32, 3, 2), (64, 3, 2), (128, 3, 2), (None, 1, 1))
    assert weights["maskiou_net.maskiou_net.10.weight"].shape == (FG_CLASSES, 128, 1, 1)
    assert outputs["img0/proto"].shape == (1, GRID, GRID, MASK_DIM)


def test_matches_upstream_img0(case, batch_run):
    """Frame 0: all 100 of img0's detections -> upstream's maskiou/pred, mask_scores, crop."""
    manifest, outputs, _ = case
    _, got = batch_run
    score_tol, iou_tol = _tolerances(manifest, outputs, "img0")
    np.testing.assert_allclose(got[names.MASKIOU_PRED][0], outputs["img0/maskiou/pred"], rtol=0, atol=iou_tol)
    np.testing.assert_allclose(got[names.MASK_SCORES][0], outputs["img0/fastnms/mask_scores"], rtol=0, atol=score_tol)
    # the maskiou input is upstream's crop of the un-thresholded sigmoid masks
    np.testing.assert_allclose(got[names.MASKIOU_INPUT][0, :5], outputs["img0/maskiou/input_top5"], rtol=0, atol=1e-6)


def _masks_net(weights, config, d):
    """maskiou_net + class pick alone, from upstream's own maskiou input [N, d, 138, 138]."""
    from trtnet.network.maskiou import class_value, maskiou_net

    net, trt = emulator.Network(), emulator.trt
    g = Graph(net, trt, weights)
    masks = net.add_input(names.MASKIOU_INPUT, trt.DataType.FLOAT, (-1, d, GRID, GRID))
    classes = net.add_input(names.DET_CLASSES, trt.DataType.INT32, (-1, d))
    pred = maskiou_net(g, masks, config)
    net.mark_output(pred)
    net.mark_output(g.named(g.network.add_identity(class_value(g, pred, classes)), "test.at_class"))
    return net


@pytest.mark.parametrize("tag", IMAGES)
def test_maskiou_net_on_upstream_input(case, tag):
    """Both images: maskiou_net on upstream's stored input (top 5) -> its pred and mask_scores
    (img1's prototypes are stored only in part, so this is img1's check)."""
    manifest, outputs, weights = case
    score_tol, iou_tol = _tolerances(manifest, outputs, tag)
    net = _masks_net(weights, _config(), 5)
    got = emulator.run(net, {names.MASKIOU_INPUT: outputs[f"{tag}/maskiou/input_top5"][None].astype(np.float32),
                             names.DET_CLASSES: outputs[f"{tag}/fastnms/det_classes"][None, :5].astype(np.int32)})
    np.testing.assert_allclose(got[names.MASKIOU_PRED][0], outputs[f"{tag}/maskiou/pred"][:5], rtol=0, atol=iou_tol)
    rescored = outputs[f"{tag}/fastnms/det_scores"][:5] * got["test.at_class"][0]
    np.testing.assert_allclose(rescored, outputs[f"{tag}/fastnms/mask_scores"][:5], rtol=0, atol=score_tol)


def test_box_scores_unchanged_and_mask_scores_differ(case, batch_run):
    _, outputs, _ = case
    _, got = batch_run
    assert names.DET_SCORES not in got  # the subnetwork never rewrites det/scores
    ms = got[names.MASK_SCORES][0]
    assert np.abs(ms - outputs["img0/fastnms/scores"]).max() > 0.1  # rescored, not the box score


def test_padded_slots_are_zero_from_count_on(case, batch_run):
    """Frame 1 counts 37 detections; slots 37.. hold real (finite) detections, which must not
    leak: slot 36 (count - 1) is upstream's value, slot 37 (== count) on are 0."""
    manifest, outputs, _ = case
    _, got = batch_run
    ms, ref = got[names.MASK_SCORES][1], outputs["img0/fastnms/mask_scores"][list(REVERSED)]
    score_tol, _ = _tolerances(manifest, outputs, "img0")
    np.testing.assert_allclose(ms[:COUNT_1], ref[:COUNT_1], rtol=0, atol=score_tol)
    assert ms[COUNT_1 - 1] > 0 and ref[COUNT_1] > 0  # upstream's value at slot 37 is not 0 ...
    assert np.all(ms[COUNT_1:] == 0.0)               # ... ours is
    assert np.all(got[names.MASK_SCORES][0] > 0)     # frame 0 counts all 100


def test_plugin_padding_gives_zero(case):
    """Padded slots as the FastNMS plugin writes them (zeros, class -1) and count 0."""
    _, outputs, weights = case
    net, _, _ = _build(weights, _config())
    inputs = _inputs(outputs, (FORWARD,), counts=[0])
    for key in (names.DET_BOXES, names.DET_SCORES, names.DET_COEFFS):
        inputs[key][:] = 0
    inputs[names.DET_CLASSES][:] = -1
    got = emulator.run(net, inputs, fetch=[names.MASKIOU_PRED])
    assert np.isfinite(got[names.MASKIOU_PRED]).all()
    assert np.all(got[names.MASK_SCORES] == 0.0)


def test_batch_shapes_and_frames_independent(case, batch_run):
    """N=2: per-frame shapes; frame 1 alone gives exactly what it gives inside the batch, and
    its per-detection maskiou is frame 0's in reverse (nothing mixes across frames or slots)."""
    _, outputs, weights = case
    _, got = batch_run
    assert got[names.MASK_SCORES].shape == (2, MAX_DET) and got[names.MASK_SCORES].dtype == np.float32
    assert got[names.MASKIOU_PRED].shape == (2, MAX_DET, FG_CLASSES)
    assert got[names.MASKIOU_INPUT].shape == (2, MAX_DET, GRID, GRID)
    np.testing.assert_array_equal(got[names.MASKIOU_PRED][1], got[names.MASKIOU_PRED][0][list(REVERSED)])
    net, _, _ = _build(weights, _config())
    alone = emulator.run(net, _inputs(outputs, (REVERSED,), counts=[COUNT_1]))
    np.testing.assert_array_equal(alone[names.MASK_SCORES][0], got[names.MASK_SCORES][1])


def test_crop_boundaries(case):
    """Upstream crop, padding 1, on exact pixel boundaries: x1 = 0.5 -> 69 - 1 = 68 kept (c >= lo),
    67 dropped; y2 = 0.5 -> 69 + 1 = 70 dropped (c < hi), 69 kept; y1 = 0.25 -> 33.5: 34 kept,
    33 dropped; x2 = 0.75 -> 104.5: 104 kept, 105 dropped. Swapped corners crop the same."""
    _, outputs, weights = case
    net, _, _ = _build(weights, _config())
    inputs = _inputs(outputs, (FORWARD,), counts=[MAX_DET])
    inputs[names.DET_BOXES][0, 0] = (0.5, 0.25, 0.75, 0.5)
    inputs[names.DET_BOXES][0, 1] = (0.75, 0.5, 0.5, 0.25)
    inputs[names.DET_BOXES][0, 2] = (-0.5, -0.5, 2.0, 2.0)  # clamped to the grid: nothing cropped
    got = emulator.run(net, inputs, fetch=[names.MASKIOU_INPUT], outputs=False)[names.MASKIOU_INPUT][0]
    expect = np.zeros((GRID, GRID), bool)
    expect[34:70, 68:105] = True
    for slot in (0, 1):
        assert np.array_equal(got[slot] > 0, expect), slot  # sigmoid > 0 everywhere inside
    assert (got[2] > 0).all()


def test_int8_plans_keep_maskiou_net_off_int8(case):
    """maskiou follows the head's precision but never int8 (no calibration sees its input)."""
    _, _, weights = case
    assert as_plan("int8_all").of("maskiou") == "fp16"
    assert as_plan("fp32").of("maskiou") == "fp32"
    assert as_plan("fp16,head=fp32").of("maskiou") == "fp32"
    net, _, out = _build(weights, _config(), plan="int8_all")  # would fail without calibration if int8
    kinds = {net.get_layer(i).type.name for i in range(net.num_layers)}
    assert "QUANTIZE" not in kinds and "DEQUANTIZE" not in kinds
    assert out[names.MASK_SCORES].dtype == emulator.trt.DataType.FLOAT


def test_config_without_maskiou_is_refused(case):
    _, _, weights = case
    with pytest.raises(GraphError, match="no maskiou_net"):
        _build(weights, replace(_config(), maskiou=None))


@pytest.mark.parametrize("plan", ["fp32", "fp16"])
def test_keyframe_network_exports_mask_scores(case, plan):
    """build_predictions wires the subnetwork in when config.maskiou is set (and only then)."""
    from trtnet.network.random_weights import random_weights
    from trtnet.network.yolact_edge import build_keyframe

    _, _, maskiou_weights = case
    weights = {**random_weights("yolact_edge_mobilenetv2"), **maskiou_weights}
    base = get_config("yolact_edge_mobilenetv2")
    for config, expected in ((replace(base, maskiou=MaskIoUSpec()), True), (base, False)):
        net = emulator.Network()
        tensors = build_keyframe(net, emulator.trt, weights, config, plan=plan)
        marked = [net.get_output(i).name for i in range(net.num_outputs)]
        assert (names.MASK_SCORES in marked) is expected
        if expected:
            out = tensors[names.MASK_SCORES]
            assert out.dtype == emulator.trt.DataType.FLOAT and tuple(out.shape) == (-1, MAX_DET)
            convs = [net.get_layer(i) for i in range(net.num_layers)
                     if net.get_layer(i).name.startswith("maskiou_net.maskiou_net.")
                     and net.get_layer(i).type.name == "CONVOLUTION"]
            assert len(convs) == 6
            want = emulator.trt.DataType.FLOAT if plan == "fp32" else emulator.trt.DataType.HALF
            assert all(c.get_output(0).dtype == want for c in convs)


@pytest.mark.parametrize("plan", ["fp32", "fp16"])
def test_subnetwork_uses_only_tensorrt_api(case, trt, plan):
    """Every call, attribute and enum member the subnetwork uses exists in the real bindings."""
    from test_trt_conformance import usage_problems

    from trtnet.emulator.usage import ApiUsage

    _, _, weights = case
    net, _, _ = _build(weights, _config(), plan=plan)
    emulator.validate(net)
    usage = ApiUsage()
    usage.merge(net.usage)
    assert ("INetworkDefinition", "add_matrix_multiply") in {c[:2] for c in usage.calls}
    assert usage_problems(usage, trt) == []
