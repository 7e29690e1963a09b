"""The non-keyframe (video) network, run on the emulator, against upstream PyTorch's ``nonkey`` pass.

As upstream made the reference: the keyframe network runs on frame A, its exported state
(fpn_phase_1/lateral3, P4, P5) is fed to the non-keyframe network on frame B. One pass of
each, shared by the whole module. Tolerances (as for the keyframe network):
* feature maps, flow, scale/bias, head outputs: 4x upstream's own fp32 error on that tensor
  (manifest ``max_abs_fp32_vs_fp64_upstream``; upstream_match.feature_atol);
* softmax scores, boxes: 1e-4 absolute (the reference manifest's suggestion);
* detections: matched one to one (same class, score and box within 1e-4).
"""

from __future__ import annotations

import numpy as np
import pytest

from upstream_match import SCORE_ATOL, assert_close_to_upstream, assert_detections_match
from trtnet import emulator, names
from trtnet.config import get_config
from trtnet.network.layers import GraphError
from trtnet.network.yolact_edge import (
    KEYFRAME_OUTPUTS, NONKEY_REFERENCE_NAMES, NONKEYFRAME_OUTPUTS, STATE_INPUTS, build_keyframe, build_nonkeyframe,
    emulate_keyframe, emulate_nonkeyframe, keyframe_state,
)
from trtnet.verification.reference_data import ReferenceCase
from trtnet.network.weights import WeightStore

PASS = "nonkey"
# our tensor name -> the reference's name in the nonkey pass (same unless stated)
FEATURES = {
    names.PARTIAL_C3: names.PARTIAL_C3,
    names.LATERAL3: names.LATERAL3,
    names.FLOW_PRECONV_CURRENT: names.FLOW_PRECONV_CURRENT,
    names.FLOW_PRECONV_KEYFRAME: names.FLOW_PRECONV_KEYFRAME,
    names.FLOW_P4: names.FLOW_P4, names.FLOW_P5: names.FLOW_P5,
    names.FLOW_SCALE_P4: names.FLOW_SCALE_P4, names.FLOW_SCALE_P5: names.FLOW_SCALE_P5,
    names.FLOW_BIAS_P4: names.FLOW_BIAS_P4, names.FLOW_BIAS_P5: names.FLOW_BIAS_P5,
    **NONKEY_REFERENCE_NAMES,  # the keyframe state as fed in (warp/keyframe_P4, P5)
    names.WARPED_P4: names.WARPED_P4, names.WARPED_P5: names.WARPED_P5,
    names.SPA_P4: names.SPA_P4, names.SPA_P5: names.SPA_P5,
    names.FPN1_FINAL_P3: names.FPN1_FINAL_P3,
    **{p: p for p in names.FPN},
    names.PROTO: names.PROTO,
    names.LOC: names.LOC,
}
FETCH = [t for t in FEATURES if t != names.PROTO] + [names.CONF, names.MASK, names.BOXES]


@pytest.fixture(scope="module")
def case(reference_dir) -> ReferenceCase:
    return ReferenceCase(reference_dir / "vid_resnet50")


@pytest.fixture(scope="module")
def weights(case) -> WeightStore:
    return WeightStore.load(case.weights_path)


@pytest.fixture(scope="module")
def out(case, weights) -> dict[str, np.ndarray]:
    config = get_config(case.config_name)
    key = emulate_keyframe(weights, config, case.image("key"))
    return emulate_nonkeyframe(weights, config, case.image(PASS), key, fetch=FETCH)


@pytest.mark.parametrize("tensor", FEATURES)
def test_feature_maps_match_upstream(case, out, tensor):
    ref_name = FEATURES[tensor]
    assert_close_to_upstream(case.spec(PASS, ref_name).take(out[tensor]), case.get(PASS, ref_name), case, ref_name,
                             tensor)


def test_class_scores_match_upstream(case, out):
    conf = out[names.CONF][0]
    ref = lambda n: case.get(PASS, n)  # noqa: E731
    np.testing.assert_allclose(conf[:, 0], ref("head/conf_bg")[0], rtol=0, atol=SCORE_ATOL)
    np.testing.assert_allclose(conf[:, 1:].max(1), ref("head/conf_maxfg")[0], rtol=0, atol=SCORE_ATOL)
    idx = ref("head/candidate_idx").astype(np.int64)
    np.testing.assert_allclose(conf[idx], ref("head/conf_candidates"), rtol=0, atol=SCORE_ATOL)


def test_mask_coefficients_match_upstream(case, out):
    idx = case.get(PASS, "head/candidate_idx").astype(np.int64)
    assert_close_to_upstream(out[names.MASK][0][idx], case.get(PASS, "head/mask_candidates"), case,
                             "head/mask_candidates")


def test_detections_match_upstream_one_to_one(case, out):
    assert_detections_match(out, case.detections(PASS), PASS, case)


# --- structure (no execution) ----------------------------------------------------------------
def _io(net) -> tuple[list[str], set[str]]:
    inputs = [net.get_input(i).name for i in range(net.num_inputs)]
    outputs = {net.get_output(i).name for i in range(net.num_outputs)}
    return inputs, outputs


def test_keyframe_exports_what_the_nonkeyframe_network_takes(case, weights):
    config = get_config(case.config_name)
    key_net, nonkey_net = emulator.Network(), emulator.Network()
    build_keyframe(key_net, emulator.trt, weights, config)
    build_nonkeyframe(nonkey_net, emulator.trt, weights, config)
    _, key_outputs = _io(key_net)
    inputs, outputs = _io(nonkey_net)
    assert key_outputs == {*KEYFRAME_OUTPUTS, *STATE_INPUTS}
    assert inputs == [names.INPUT, names.KEY_LATERAL3, names.KEY_FPN1_P4, names.KEY_FPN1_P5]
    assert set(STATE_INPUTS.values()) == {names.KEY_LATERAL3, names.KEY_FPN1_P4, names.KEY_FPN1_P5}
    assert outputs == set(NONKEYFRAME_OUTPUTS)  # the same detections/proto as a keyframe + motion
    assert set(NONKEYFRAME_OUTPUTS) - set(KEYFRAME_OUTPUTS) == {names.FLOW_MOTION}


def test_nonkeyframe_runs_the_partial_backbone_and_the_trt_flow_net_only(case, weights):
    # Upstream's eval flow net (FlowNetMiniTRT) never computes level 1: pred1/upfeat2/upflow2
    # are in the checkpoint but unused; non-keyframes run the stem + first two stages.
    net = emulator.Network()
    build_nonkeyframe(net, emulator.trt, weights, get_config(case.config_name))
    layer_names = [net.get_layer(i).name for i in range(net.num_layers)]
    for unused in ("flow_net.pred1", "flow_net.upfeat2", "flow_net.upflow2", "backbone.layers.2.",
                   "fpn_phase_1.lat_layers.0", "fpn_phase_1.lat_layers.1"):
        assert not any(n.startswith(unused) for n in layer_names), unused
    assert sum(n.startswith("inverse_warp@") for n in layer_names) == 2


@pytest.mark.parametrize("plan", [None, "fp16"])
def test_layer_and_tensor_names_are_unique(case, weights, plan):
    # TensorRT binds and the emulator fetches by name; the pre-convs run twice (@current, @keyframe).
    net = emulator.Network()
    build_nonkeyframe(net, emulator.trt, weights, get_config(case.config_name), plan=plan)
    layers = [net.get_layer(i) for i in range(net.num_layers)]
    layer_names = [layer.name for layer in layers]
    tensor_names = [layer.get_output(j).name for layer in layers for j in range(layer.num_outputs)]
    assert len(set(layer_names)) == len(layer_names)
    assert len(set(tensor_names)) == len(tensor_names)


def test_image_only_config_has_no_nonkeyframe_network():
    with pytest.raises(GraphError, match="yolact_edge_mobilenetv2 has no flow net"):
        build_nonkeyframe(emulator.Network(), emulator.trt, {}, "yolact_edge_mobilenetv2")


def test_keyframe_state_names_a_missing_tensor():
    state = {names.FPN1_LATERAL3: np.zeros(1), names.KEY_FPN1_P4: np.zeros(1)}
    with pytest.raises(KeyError, match="fpn_phase_1/P5"):
        keyframe_state(state)


def _consumers_of(net, layer_name: str) -> list[str]:
    layer = next(net.get_layer(i) for i in range(net.num_layers) if net.get_layer(i).name == layer_name)
    return [layer.get_input(i).name for i in range(layer.num_inputs)]


def test_without_spa_the_warped_features_feed_fpn_phase_2():
    # yolact_edge_vid_minimal (use_spa=False): phase 2 reads warped P4/P5 directly.
    from trtnet.network.random_weights import random_weights

    net = emulator.Network()
    build_nonkeyframe(net, emulator.trt, random_weights("yolact_edge_vid_minimal"), "yolact_edge_vid_minimal")
    assert not any(net.get_layer(i).name.startswith("spa.") for i in range(net.num_layers))
    assert _consumers_of(net, "fpn_phase_2.pred_layers.1")[0] == names.WARPED_P4  # makes P4
    assert _consumers_of(net, "fpn_phase_2.pred_layers.0")[0] == names.WARPED_P5  # makes P5


@pytest.mark.parametrize("use_scale,use_bias", [(True, True), (True, False), (False, True), (False, False)])
def test_warp_applies_scale_and_bias_as_the_config_says(use_scale, use_bias):
    # Upstream: pred = deform_op(feat, flow); `*= scale` if use_scale_factor; `+= bias` if
    # use_scale_bias. Compared with the NumPy reference warp (exact vs upstream's grid_sample);
    # the unfused product/sum round like upstream's in-place ops: bit-for-bit up to 1 ulp.
    import dataclasses

    from trtnet.network import flow as flow_net
    from trtnet.network.layers import Graph
    from trtnet.plugins import reference

    base = get_config("yolact_edge_vid_resnet50")
    config = dataclasses.replace(base, flow=dataclasses.replace(
        base.flow, use_scale_factor=use_scale, use_scale_bias=use_bias))
    rng = np.random.default_rng(0)
    arrays = {"feature": rng.standard_normal((1, 4, 5, 6), dtype=np.float32),
              "flow": rng.standard_normal((1, 2, 5, 6), dtype=np.float32),
              "scale": rng.standard_normal((1, 4, 5, 6), dtype=np.float32),
              "bias": rng.standard_normal((1, 4, 5, 6), dtype=np.float32)}
    net = emulator.Network()
    g = Graph(net, emulator.trt, {})
    t = {k: net.add_input(k, emulator.trt.DataType.FLOAT, v.shape) for k, v in arrays.items()}
    warped = flow_net.inverse_warp(g, t["feature"], t["flow"], t["scale"], t["bias"], "P4", config)
    assert warped.name == names.WARPED_P4
    net.mark_output(warped)
    got = emulator.run(net, arrays)[names.WARPED_P4]
    want = reference.inverse_warp(arrays["feature"], arrays["flow"])
    if use_scale:
        want = want * arrays["scale"]
    if use_bias:
        want = want + arrays["bias"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
