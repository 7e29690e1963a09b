"""YOLACT++'s DCNv2: TensorRT's ModulatedDeformConv2d plugin, its CPU twin, the layer helper.

The twin (trtnet.plugins.reference.modulated_deform_conv, run by the emulator's plugin registry)
is held to a slow per-pixel formulation written from upstream's CUDA kernel
(external/DCNv2/src/cuda/dcn_v2_im2col_cuda.cu) on small maps, with the sampling boundary pinned
exactly on -1 and H; the network to upstream's own outputs (../shared/reference/yolact_plus_resnet50)
within a small multiple of upstream's fp32-vs-fp64 spread.
"""

from __future__ import annotations

import numpy as np
import pytest

from runtime_fakes import fake_gpu, tiny_engine  # noqa: F401 - fake_gpu is a fixture
from trtnet import emulator, names, plugins, verify
from trtnet.emulator import plugins as emulated_plugins
from trtnet.plugins import reference, specs

CASE = "yolact_plus_resnet50"
FIRST_DCN = "backbone.layers.1.0.conv2"


# ---------------------------------------------------------------------------------------------
# The twin against a per-pixel reading of upstream's kernel
def _slow_dcn(x, offset, mask, weight, bias, stride, pad, dil, group=1, dg=1):
    """One output pixel, one tap, one channel at a time, float64, as dcn_v2_im2col_cuda.cu reads."""
    n, c, h, w = x.shape
    cout, cg, kh, kw = weight.shape
    ho, wo = offset.shape[2:]
    cols = np.zeros((n, c, kh * kw, ho, wo))
    for b in range(n):
        for ch in range(c):
            g = ch // (c // dg)
            for oy in range(ho):
                for ox in range(wo):
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            y = oy * stride - pad + i * dil + float(offset[b, g * 2 * kh * kw + 2 * k, oy, ox])
                            xx = ox * stride - pad + j * dil + float(offset[b, g * 2 * kh * kw + 2 * k + 1, oy, ox])
                            val = 0.0
                            if -1 < y < h and -1 < xx < w:
                                y0, x0 = int(np.floor(y)), int(np.floor(xx))
                                for yc, xc in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
                                    if 0 <= yc <= h - 1 and 0 <= xc <= w - 1:
                                        val += (1 - abs(y - yc)) * (1 - abs(xx - xc)) * float(x[b, ch, yc, xc])
                            cols[b, ch, k, oy, ox] = val * float(mask[b, g * kh * kw + k, oy, ox])
    og = cout // group
    out = np.zeros((n, cout, ho, wo))
    for gi in range(group):
        wk = weight[gi * og:(gi + 1) * og].reshape(og, -1).astype(np.float64)
        part = cols[:, gi * cg:(gi + 1) * cg].reshape(n, cg * kh * kw, ho * wo)
        out[:, gi * og:(gi + 1) * og] = (wk @ part).reshape(n, og, ho, wo)
    return out + bias.astype(np.float64)[None, :, None, None]


@pytest.mark.parametrize("stride, group, dg", [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_twin_equals_a_per_pixel_reading_of_upstreams_kernel(stride, group, dg):
    rng = np.random.default_rng(stride * 10 + group)
    c, h, w, cout = 4, 7, 6, 4
    ho, wo = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    offset = (rng.standard_normal((2, 18 * dg, ho, wo)) * 2.5).astype(np.float32)  # many taps off the map
    mask = rng.uniform(0, 1, (2, 9 * dg, ho, wo)).astype(np.float32)
    weight = rng.standard_normal((cout, c // group, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    got = reference.modulated_deform_conv(x, offset, mask, weight, bias, stride=(stride, stride),
                                          padding=(1, 1), group=group, deformable_group=dg)
    want = _slow_dcn(x, offset, mask, weight, bias, stride, 1, 1, group, dg)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)  # float32 vs float64 over 36 terms


@pytest.mark.parametrize("dy, expected", [
    (-1.0, 0.0),          # y = -1 exactly: outside (-1 < y is strict), the tap is 0
    (-0.5, 0.5 * 1.0),    # y = -0.5: the row -1 corner reads 0, row 0 has weight 0.5
    (3.0, 13.0),          # y = 3 = H - 1 exactly: inside, the row H corner has weight 0
    (3.5, 0.5 * 13.0),    # y = 3.5: half of row 3
    (4.0, 0.0),           # y = 4 = H exactly: outside (y < H is strict)
])
def test_sampling_boundary_is_upstreams(dy, expected):
    # x[0, 0] = 1..16 row-major (4x4); only the centre tap of (0, 0)'s kernel is weighted, so the
    # output at (0, 0) is the bilinear sample at (0 + dy, 0) times the mask (1).
    x = (np.arange(16, dtype=np.float32) + 1).reshape(1, 1, 4, 4)
    weight = np.zeros((1, 1, 3, 3), np.float32)
    weight[0, 0, 1, 1] = 1
    offset = np.zeros((1, 18, 4, 4), np.float32)
    offset[0, 2 * 4] = dy
    out = reference.modulated_deform_conv(x, offset, np.ones((1, 9, 4, 4), np.float32), weight,
                                          np.zeros(1, np.float32), padding=(1, 1))
    assert out[0, 0, 0, 0] == pytest.approx(expected, abs=1e-6)


def test_mask_multiplies_each_tap_and_offsets_are_dy_then_dx():
    x = (np.arange(16, dtype=np.float32) + 1).reshape(1, 1, 4, 4)
    weight = np.zeros((1, 1, 3, 3), np.float32)
    weight[0, 0, 1, 1] = 1
    offset = np.zeros((1, 18, 4, 4), np.float32)
    offset[0, 9] = 1.0             # channel 2k+1 (k = 4): dx = +1 -> x[0, 1] = 2 at output (0, 0)
    mask = np.ones((1, 9, 4, 4), np.float32)
    mask[0, 4] = 0.25
    out = reference.modulated_deform_conv(x, offset, mask, weight, np.full(1, 3, np.float32), padding=(1, 1))
    assert out[0, 0, 0, 0] == pytest.approx(0.25 * 2 + 3)


# ---------------------------------------------------------------------------------------------
# The plugin spec and the emulator's creators
def test_spec_is_libnvinfer_plugins_modulated_deform_conv_on_both_branches():
    v2, v1 = specs.TENSORRT_PLUGINS
    for spec, version, interface in ((v1, "1", "IPluginV2DynamicExt"), (v2, "2", "IPluginV3")):
        assert (spec.name, spec.version, spec.namespace, spec.interface) == \
            ("ModulatedDeformConv2d", version, "", interface)
        assert spec.field_names == ("stride", "padding", "dilation", "group", "deformable_group")
        assert [f.length for f in spec.fields] == [2, 2, 2, 1, 1]
        assert {f.dtype for f in spec.fields} == {"int32"}
        assert [t.name for t in spec.inputs] == ["x", "offset", "mask", "weight", "bias"]
    fields = v2.resolve(stride=(2, 2), padding=(1, 1))
    assert fields["stride"].tolist() == [2, 2] and fields["stride"].dtype == np.int32
    with pytest.raises(ValueError, match="'padding': expected 2 values"):
        v2.resolve(padding=1)


def _dcn_network(x_shape, offset_shape, mask_shape, weight_shape, version="2"):
    net = emulator.Network()
    trt = emulator.trt
    x, off, m = (net.add_input(n, trt.DataType.FLOAT, s) for n, s in
                 (("x", x_shape), ("offset", offset_shape), ("mask", mask_shape)))
    keep = np.ones(weight_shape, np.float32), np.zeros(weight_shape[0], np.float32)
    w = net.add_constant(keep[0].shape, trt.Weights(keep[0])).get_output(0)
    b = net.add_constant(keep[1].shape, trt.Weights(keep[1])).get_output(0)
    trt.init_libnvinfer_plugins(None, "")
    spec = next(s for s in specs.TENSORRT_PLUGINS if s.version == version)
    creator = trt.get_plugin_registry().get_creator(spec.name, spec.version, "")
    plugin = spec.create_plugin(trt, creator, "dcn", stride=(1, 1), padding=(1, 1))
    layer = (net.add_plugin_v3([x, off, m, w, b], [], plugin) if version == "2"
             else net.add_plugin_v2([x, off, m, w, b], plugin))
    net.mark_output(layer.get_output(0))
    return net, layer, keep


@pytest.mark.parametrize("offset, mask, weight, message", [
    ((1, 16, 10, 10), (1, 9, 10, 10), (4, 8, 3, 3), "offset has 16 channels, a 3x3 kernel with deformable_group 1 needs"),
    ((1, 18, 10, 10), (1, 8, 10, 10), (4, 8, 3, 3), "mask has 8 channels, needs 1\\*9 = 9"),
    ((1, 18, 10, 10), (1, 9, 9, 10), (4, 8, 3, 3), "mask grid \\(9, 10\\) differs from the offset grid"),
    ((1, 18, 10, 10), (1, 9, 10, 10), (4, 6, 3, 3), "weight \\(4, 6, 3, 3\\) expects 6 x group 1 = 6 input channels, x has 8"),
    ((1, 18, 5, 5), (1, 9, 5, 5), (4, 8, 3, 3), "offset grid \\(5, 5\\) is not the convolution's output grid \\(10, 10\\)"),
])
def test_emulator_refuses_a_dcn_whose_offset_mask_and_weight_disagree(offset, mask, weight, message):
    net, layer, _ = _dcn_network((1, 8, 10, 10), offset, mask, weight)
    with pytest.raises(ValueError, match=message):
        layer.get_output(0).shape  # noqa: B018 (the shape query is the check)


def test_emulator_refuses_disagreeing_shapes_at_run_time_too():
    net, _, _keep = _dcn_network((1, 8, -1, -1), (1, 18, -1, -1), (1, 9, -1, -1), (4, 8, 3, 3))
    x = np.zeros((1, 8, 10, 10), np.float32)
    with pytest.raises(ValueError, match="offset grid \\(6, 6\\) is not the convolution's output grid"):
        emulator.run(net, {"x": x, "offset": np.zeros((1, 18, 6, 6), np.float32),
                           "mask": np.zeros((1, 9, 6, 6), np.float32)})


def test_versions_1_and_2_compute_the_same():
    rng = np.random.default_rng(3)
    feeds = {"x": rng.standard_normal((1, 8, 6, 6)).astype(np.float32),
             "offset": rng.standard_normal((1, 18, 6, 6)).astype(np.float32),
             "mask": rng.uniform(0, 1, (1, 9, 6, 6)).astype(np.float32)}
    outs = []
    for version in ("1", "2"):
        net, layer, _keep = _dcn_network((1, 8, 6, 6), (1, 18, 6, 6), (1, 9, 6, 6), (4, 8, 3, 3), version)
        assert str(layer.type).endswith("PLUGIN_V2" if version == "1" else "PLUGIN_V3")
        outs.append(emulator.run(net, feeds)[layer.get_output(0).name])
    np.testing.assert_array_equal(outs[0], outs[1])


# ---------------------------------------------------------------------------------------------
# libnvinfer_plugin must be there
class _TrtWithout:
    """A ``tensorrt`` whose registry has no ModulatedDeformConv2d (a lean runtime or a failed init)."""

    __version__ = "10.3.0"

    def __init__(self, init_result=None):
        if init_result is not None:
            self.init_libnvinfer_plugins = lambda logger, namespace: init_result

    @staticmethod
    def get_plugin_registry():
        return type("Registry", (), {"get_creator": staticmethod(lambda name, version, ns: None)})()


@pytest.mark.parametrize("trt, message", [
    (_TrtWithout(), "has no init_libnvinfer_plugins: .* libnvinfer_plugin.so.10 \\(ModulatedDeformConv2d\\)"),
    (_TrtWithout(False), "init_libnvinfer_plugins failed: TensorRT's plugin library libnvinfer_plugin.so.10"),
    (_TrtWithout(True), "no ModulatedDeformConv2d \\(versions 2, 1, namespace ''\\) after loading libnvinfer_plugin"),
])
def test_a_missing_libnvinfer_plugin_is_a_clear_error(trt, message):
    with pytest.raises(plugins.LibNvInferPluginError, match=message):
        plugins.tensorrt_plugin_creator(trt)


def test_the_network_initialises_libnvinfer_plugin_and_prefers_version_2(monkeypatch):
    monkeypatch.setattr(emulated_plugins, "_registry", None)  # a fresh process: nothing registered
    registry = emulator.trt.get_plugin_registry()
    assert registry.get_creator("ModulatedDeformConv2d", "2", "") is None
    spec, creator = plugins.tensorrt_plugin_creator(emulator.trt)
    assert (spec.version, creator.plugin_version) == ("2", "2")
    monkeypatch.setattr(emulated_plugins, "_registry", None)
    monkeypatch.setattr(emulated_plugins, "libnvinfer_plugin_available", False)
    with pytest.raises(plugins.LibNvInferPluginError, match="libnvinfer_plugin"):
        plugins.tensorrt_plugin_creator(emulator.trt)


# ---------------------------------------------------------------------------------------------
# The network against upstream
def test_dcn_blocks_follow_upstreams_rule_and_key_names(reference_dir):
    import json

    from trtnet.config import get_config
    from trtnet.network.random_weights import random_weights
    from trtnet.network.yolact_edge import build_keyframe

    shapes = json.loads((reference_dir / "checkpoint_shapes" / "yolact_plus_resnet50_config.json").read_text())
    upstream = sorted(k[: -len(".conv_offset_mask.weight")] for k in shapes["shapes"]
                      if k.endswith(".conv_offset_mask.weight"))
    manifest = json.loads((reference_dir / CASE / "manifest.json").read_text())
    assert upstream == sorted(manifest["config"]["dcn_layers"])
    net = emulator.Network()
    tensors = build_keyframe(net, emulator.trt, random_weights(CASE), get_config(CASE))
    plugin_layers = sorted(net.get_layer(i).name for i in range(net.num_layers)
                           if str(net.get_layer(i).type).endswith(("PLUGIN_V2", "PLUGIN_V3"))
                           and "conv2" in net.get_layer(i).name)
    assert plugin_layers == upstream
    assert tuple(tensors[names.dcn_tensor(FIRST_DCN, "offset")].shape) == (-1, 18, 69, 69)
    assert tuple(tensors[names.dcn_tensor(FIRST_DCN, "mask")].shape) == (-1, 9, 69, 69)


def test_verify_passes_on_both_images_within_the_upstream_spread(reference_dir):
    from upstream_match import SPREAD_FACTOR, feature_atol

    results, ref = verify.verify_case(reference_dir / CASE, "emulator")
    report = verify.format_report(ref, "emulator", results)
    assert [r.pass_name for r in results] == ["img0", "img1"]
    assert all(r.passed for r in results), report
    spreads = ref.manifest["tolerances"]["max_abs_fp32_vs_fp64_upstream"]
    for r in results:
        checked = {t.name: t for t in r.tensors}
        for part in ("offset", "mask", "out"):  # the first DCN layer itself
            assert names.dcn_tensor(FIRST_DCN, part) in checked, (r.pass_name, part)
        for name, t in checked.items():  # every feature map upstream measured: a small multiple of its spread
            if name in spreads or name.startswith("dcn/") or name == names.PROTO:
                tol = feature_atol(ref, name)
                assert t.max_abs <= tol, f"{r.pass_name} {name}: {t.max_abs:.2e} > {SPREAD_FACTOR:g} x spread {tol:.2e}"
        d = r.detections
        assert d.matched == d.ref_count == 100 and d.max_mask_score_err <= 1e-4 and d.min_mask_iou >= 0.99


def test_fp16_keeps_nine_tenths_of_the_detections_on_this_well_conditioned_network(reference_dir):
    from trtnet.network.yolact_edge import emulate_keyframe
    from trtnet.precision.int8_accuracy import detection_agreement
    from trtnet.verification.reference_data import ReferenceCase

    ref = ReferenceCase(reference_dir / CASE)
    d = ref.detections("img0")
    upstream = {names.DET_COUNT: np.array([len(d["det_scores"])]), names.DET_BOXES: d["det_boxes"][None],
                names.DET_SCORES: d["det_scores"][None], names.DET_CLASSES: d["det_classes"][None]}
    out = emulate_keyframe(ref.weights_path, CASE, ref.image("img0"), plan="fp16")
    matched, total = detection_agreement(out, upstream)  # same class, IoU >= 0.5, scores above 0.3
    assert total == 100 and matched >= 90, f"fp16: {matched}/{total} detections above 0.3 matched"


@pytest.mark.parametrize("version", ["1", "2"])
def test_both_plugin_versions_use_only_the_real_tensorrt_api(trt, version):
    from test_trt_conformance import usage_problems

    from trtnet.emulator.usage import ApiUsage

    net, _, _keep = _dcn_network((1, 8, 6, 6), (1, 18, 6, 6), (1, 9, 6, 6), (4, 8, 3, 3), version)
    usage = ApiUsage()
    usage.merge(net.usage)
    usage.merge(emulated_plugins.usage)
    called = {c[:2] for c in usage.calls}
    method = "add_plugin_v2" if version == "1" else "add_plugin_v3"
    creator = "IPluginCreator" if version == "1" else "IPluginCreatorV3One"
    assert {("INetworkDefinition", method), (creator, "create_plugin")} <= called
    assert usage_problems(usage, trt) == []
    assert hasattr(trt, "init_libnvinfer_plugins")


# ---------------------------------------------------------------------------------------------
# The Python runtime registers libnvinfer_plugin before deserializing a YOLACT++ engine
def _dcn_engine_bytes(trt) -> bytes:
    from runtime_fakes import HEADER

    data = bytearray(tiny_engine(trt))
    tag = b"ModulatedDeformConv2d"  # a plan names its plugin layers' creators (here in the fake's padding)
    data[HEADER + 8:HEADER + 8 + len(tag)] = tag
    return bytes(data)


def test_runtime_initialises_libnvinfer_plugin_before_deserializing_a_dcn_engine(fake_gpu, monkeypatch):
    from trtnet.runtime import Engine

    events = fake_gpu.trt.events
    monkeypatch.setattr(fake_gpu.trt, "init_libnvinfer_plugins",
                        lambda logger, namespace: events.append(f"init_libnvinfer_plugins({namespace!r})") or True,
                        raising=False)
    Engine(_dcn_engine_bytes(fake_gpu.trt))
    assert events.index("init_libnvinfer_plugins('')") < events.index("deserialize")


def test_runtime_without_libnvinfer_plugin_names_it(fake_gpu, monkeypatch):
    from trtnet.runtime import Engine, EngineError

    monkeypatch.delattr(fake_gpu.trt, "init_libnvinfer_plugins", raising=False)
    with pytest.raises(EngineError, match="uses TensorRT's ModulatedDeformConv2d plugin: .*libnvinfer_plugin"):
        Engine(_dcn_engine_bytes(fake_gpu.trt))
    Engine(tiny_engine(fake_gpu.trt))  # a plain engine needs none


def test_int8_backbone_keeps_the_dcn_convs_fp16_and_the_dry_run_says_so():
    from trtnet.builder.plan_summary import summarize
    from trtnet.network.random_weights import random_weights
    from trtnet.network.yolact_edge import build_keyframe
    from trtnet.precision import AmaxRecorder, as_plan, int8_audit

    plan = as_plan("int8_backbone").with_amax(AmaxRecorder())
    net = emulator.Network()
    build_keyframe(net, emulator.trt, random_weights(CASE), CASE, plan=plan)
    layers = {net.get_layer(i).name: net.get_layer(i) for i in range(net.num_layers)}
    dcn = layers[FIRST_DCN]
    assert [dcn.get_input(i).dtype for i in range(5)] == [emulator.trt.DataType.HALF] * 5
    # no Q/DQ inside the DCN; conv3 quantizes the DCN's relu output (its pair is named after that tensor)
    assert [n for n in layers if n.startswith(f"{FIRST_DCN}.") and "quantize" in n] == \
        [f"{FIRST_DCN}.relu.quantize", f"{FIRST_DCN}.relu.dequantize"]
    rows = int8_audit.audit(net, plan)
    assert [r.component for r in rows] == ["backbone"] and rows[0].ok, int8_audit.format_audit(rows)
    assert "13 DCNv2 convs" in int8_audit.dcn_note(net, plan) and "stay fp16" in int8_audit.dcn_note(net, plan)
    summary = {r.component: r for r in summarize(net, emulator.trt, plan)}
    # 13 offset convs + 13 plugins; the deformable convs proper alone are ~9.4 GMAC at 550
    assert (summary["dcn"].precision, summary["dcn"].convolutions) == ("fp16", 26)
    assert 9.4e9 < summary["dcn"].macs < 12e9
