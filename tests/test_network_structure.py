"""The keyframe network's structure on the emulator: names, outputs, errors, precision.

Graph-only tests (no 550x550 pass) use random weights shaped like each config's checkpoint
(trtnet.network.weight_spec), except the fp16 test, which runs one mobilenetv2 pass on real data.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from upstream_match import assert_close_to_upstream
from trtnet import emulator, names
from trtnet.config import get_config
from trtnet.network import build_keyframe
from trtnet.network.yolact_edge import emulate_keyframe
from trtnet.precision import AmaxRecorder, PrecisionError, PrecisionPlan
from trtnet.verification.reference_data import ReferenceCase
from trtnet.network.weight_spec import expected_shapes
from trtnet.network.weights import MissingWeightError, WeightShapeError

trt = emulator.trt
CONFIGS = ("yolact_edge_resnet50", "yolact_edge_mobilenetv2", "yolact_edge_vid_resnet50")


@functools.lru_cache(maxsize=None)
def _random_weights(config: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for key, shape in expected_shapes(config).items():
        if key.endswith("num_batches_tracked"):
            out[key] = np.zeros((), np.int64)
        elif key.endswith("running_var"):
            out[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            out[key] = (0.05 * rng.standard_normal(shape)).astype(np.float32)
    return out


def _build(config: str, weights=None, **kw):
    net = emulator.Network()
    tensors = build_keyframe(net, trt, weights if weights is not None else _random_weights(config), config, **kw)
    return net, tensors


def _layers(net):
    return [net.get_layer(i) for i in range(net.num_layers)]


@pytest.mark.parametrize("config", CONFIGS)
def test_conv_layers_are_named_after_checkpoint_keys(config):
    net, _ = _build(config)
    shapes = expected_shapes(config)
    convs = [layer.name for layer in _layers(net) if layer.type == trt.LayerType.CONVOLUTION]
    assert convs
    unknown = [n for n in convs if f"{n.split('@')[0]}.weight" not in shapes]
    assert not unknown, f"conv layers without a checkpoint key: {unknown[:5]}"


@pytest.mark.parametrize("config", CONFIGS)
def test_every_pipeline_tensor_is_named(config):
    net, tensors = _build(config)
    wanted = (names.INPUT, names.PREPROCESSED, *names.BACKBONE, *names.FPN1, names.FPN1_LATERAL3,
              *names.FPN, names.PROTO, names.LOC, names.CONF, names.MASK, names.PRIORS, names.BOXES,
              *names.DETECTIONS)
    assert set(wanted) <= set(tensors)
    assert all(tensors[n].name == n for n in wanted)


@pytest.mark.parametrize("plan", (None, "fp16,head=fp32"))
def test_layer_and_tensor_names_are_unique(plan):
    net, _ = _build("yolact_edge_vid_resnet50", plan=plan)
    layers = [layer.name for layer in _layers(net)]
    tensors = [layer.get_output(i).name for layer in _layers(net) for i in range(layer.num_outputs)]
    assert len(set(layers)) == len(layers)
    assert len(set(tensors)) == len(tensors)


def test_image_model_outputs_detections_and_prototypes():
    net, tensors = _build("yolact_edge_mobilenetv2")
    outputs = {net.get_output(i).name for i in range(net.num_outputs)}
    assert outputs == {*names.DETECTIONS, names.PROTO}
    assert tuple(tensors[names.PROTO].shape) == (-1, 138, 138, 32)  # -1: the batch (1..--max-batch)
    assert tuple(tensors[names.DET_BOXES].shape) == (-1, 100, 4)
    assert tuple(tensors[names.CONF].shape) == (-1, 19248, 81)


def test_video_model_also_outputs_the_keyframe_state():
    net, _ = _build("yolact_edge_vid_resnet50")
    outputs = {net.get_output(i).name for i in range(net.num_outputs)}
    assert outputs == {*names.DETECTIONS, names.PROTO, names.FPN1_LATERAL3, names.FPN1_P4, names.FPN1_P5}


def test_frame_input_is_uint8_nhwc_with_dynamic_batch_and_size():
    net, tensors = _build("yolact_edge_mobilenetv2")
    frame = tensors[names.INPUT]
    assert frame.dtype == trt.DataType.UINT8 and tuple(frame.shape) == (-1, -1, -1, 3)


def test_missing_weight_names_key_and_layer():
    weights = dict(_random_weights("yolact_edge_mobilenetv2"))
    del weights["fpn_phase_2.pred_layers.1.weight"]
    with pytest.raises(MissingWeightError, match=r"layer 'fpn_phase_2\.pred_layers\.1' needs weight "
                                                 r"'fpn_phase_2\.pred_layers\.1\.weight'"):
        _build("yolact_edge_mobilenetv2", weights)


def test_checkpoint_of_another_backbone_is_a_shape_error():
    # ResNet-50's stem (7x7, 64 channels) where MobileNetV2's config wants its own stem.
    weights = dict(_random_weights("yolact_edge_mobilenetv2"))
    weights["backbone.layers.0.0.weight"] = np.zeros((64, 3, 7, 7), np.float32)
    with pytest.raises(WeightShapeError, match=r"has shape \(64, 3, 7, 7\), expected \(32, 3, 3, 3\)"):
        _build("yolact_edge_mobilenetv2", weights)


def test_fp16_plan_computes_convolutions_in_half_and_keeps_fp32_outputs():
    net, tensors = _build("yolact_edge_mobilenetv2", plan="fp16,head=fp32")
    convs = {layer.name: layer for layer in _layers(net) if layer.type == trt.LayerType.CONVOLUTION}
    assert convs["backbone.layers.0.0"].get_output(0).dtype == trt.DataType.HALF
    assert convs["prediction_layers.0.bbox_layer@P3"].get_output(0).dtype == trt.DataType.FLOAT
    assert tensors[names.PROTO].dtype == trt.DataType.FLOAT
    assert tensors[names.CONF].dtype == trt.DataType.FLOAT


def test_int8_plan_without_calibration_names_the_first_tensor_it_needs():
    with pytest.raises(PrecisionError, match="int8 backbone: no calibrated range for tensor 'preprocessed'"):
        _build("yolact_edge_mobilenetv2", plan="int8")


def test_fp16_keyframe_stays_close_to_upstream(reference_dir):
    # fp16 activations and weights: ~1-3% of each tensor's range off (measured 0.4-2.9%);
    # the strongest detections keep their class, scores within 2e-2 (fp16 logits are off by
    # up to ~0.1, measured score errors up to 0.0094).
    case = ReferenceCase(reference_dir / "mobilenetv2")
    out = emulate_keyframe(case.weights_path, case.config_name, case.image("img0"),
                           fetch=[names.C5, names.P3, names.LOC], plan="fp16")
    for tensor in (names.C5, names.P3, names.PROTO, names.LOC):
        ref = case.get("img0", tensor)
        got = case.spec("img0", tensor).take(out[tensor]).astype(np.float32)
        assert np.abs(got - ref).max() <= 5e-2 * np.abs(ref).max(), tensor
    ref = case.detections("img0")
    for score, cls in zip(ref["det_scores"][:5], ref["det_classes"][:5]):
        hit = (out[names.DET_CLASSES][0] == cls) & (np.abs(out[names.DET_SCORES][0] - score) <= 2e-2)
        assert hit.any(), f"no fp16 detection of class {cls} with score {score:.4f}"


def test_partial_backbone_matches_upstream_non_keyframe_c3(reference_dir):
    # Non-keyframes run the stem and the first two stages only (UPSTREAM_NOTES item 12).
    from trtnet.network.backbones import build_backbone
    from trtnet.network.layers import Graph
    from trtnet.network.preprocess import add_frame_input, build_preprocess

    case = ReferenceCase(reference_dir / "vid_resnet50")
    config = get_config(case.config_name)
    net = emulator.Network()
    g = Graph(net, trt, case.weights_path)
    (c3,) = build_backbone(g, build_preprocess(g, add_frame_input(g), config), config, partial=True)
    assert c3.name == names.PARTIAL_C3
    assert not any(layer.name.startswith("backbone.layers.2.") for layer in _layers(net))
    out = emulator.run(net, {names.INPUT: case.image("nonkey")[None]}, fetch=[names.PARTIAL_C3], outputs=False)
    ref = case.get("nonkey", names.PARTIAL_C3)
    got = case.spec("nonkey", names.PARTIAL_C3).take(out[names.PARTIAL_C3])
    assert_close_to_upstream(got, ref, case, names.PARTIAL_C3)


def test_int8_plan_quantizes_every_conv_input_and_kernel_with_fetchable_scale_names():
    # Explicit quantization (strongly typed TensorRT): Q/DQ on each conv's input (per tensor,
    # scale from the calibrated |max| of that tensor) and on its kernel (per output channel).
    recorder = AmaxRecorder()
    net, _ = _build("yolact_edge_mobilenetv2", plan=PrecisionPlan(default="int8").with_amax(recorder))
    layers = _layers(net)
    dequantized = {layer.get_output(0).name for layer in layers if layer.type == trt.LayerType.DEQUANTIZE}
    convs = [layer for layer in layers if layer.type == trt.LayerType.CONVOLUTION]
    assert all(c.get_input(0).name in dequantized and c.get_input(1).name in dequantized for c in convs)
    produced = {layer.get_output(i).name for layer in layers for i in range(layer.num_outputs)}
    assert recorder.requested[0] == names.PREPROCESSED
    assert set(recorder.requested) <= produced | {names.INPUT}
    assert {names.C3, names.P5, names.P3} <= set(recorder.requested)  # final names, not provisional ones
