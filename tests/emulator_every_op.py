"""A small network that calls every INetworkDefinition method and layer attribute the
emulator offers, written like model code (``build(network, trt)``), for the
conformance tests (tests/test_trt_conformance.py) and as an emulator smoke test.
"""

from __future__ import annotations

import numpy as np


def build(network, trt, rng: np.random.Generator | None = None) -> dict[str, object]:
    """Add every supported layer kind; returns the layers by a short key."""
    rng = rng or np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    L = {}

    frame = network.add_input(name="frame", dtype=trt.DataType.UINT8, shape=(1, -1, -1, 3))
    cast = network.add_cast(frame, trt.DataType.FLOAT)
    L["cast"] = cast
    nchw = network.add_shuffle(cast.get_output(0))
    nchw.first_transpose = trt.Permutation([0, 3, 1, 2])
    nchw.zero_is_placeholder = True
    L["shuffle"] = nchw
    resize = network.add_resize(nchw.get_output(0))
    resize.shape = (1, 3, 32, 32)
    resize.resize_mode = trt.InterpolationMode.LINEAR
    resize.coordinate_transformation = trt.ResizeCoordinateTransformation.HALF_PIXEL
    resize.selector_for_single_pixel = trt.ResizeSelector.UPPER
    resize.nearest_rounding = trt.ResizeRoundMode.FLOOR
    resize.exclude_outside = False
    resize.cubic_coeff = -0.75
    L["resize"] = resize
    x = resize.get_output(0)

    conv = network.add_convolution_nd(x, 8, (3, 3), trt.Weights(f32(8, 3, 3, 3)), trt.Weights(f32(8)))
    conv.stride_nd = (2, 2)
    conv.padding_nd = (1, 1)
    conv.dilation_nd = (1, 1)
    conv.num_groups = 1
    conv.pre_padding = (1, 1)
    conv.post_padding = (1, 1)
    conv.name = "backbone.conv1"
    L["conv"] = conv
    act = network.add_activation(conv.get_output(0), trt.ActivationType.CLIP)
    act.alpha, act.beta = 0.0, 6.0
    L["act"] = act
    for kind in ("RELU", "SIGMOID", "TANH", "LEAKY_RELU"):
        a = network.add_activation(act.get_output(0), getattr(trt.ActivationType, kind))
        if kind == "LEAKY_RELU":
            a.alpha = 0.1
    pool = network.add_pooling_nd(act.get_output(0), trt.PoolingType.MAX, (3, 3))
    pool.stride_nd = (2, 2)
    pool.padding_nd = (1, 1)
    pool.average_count_excludes_padding = True
    L["pool"] = pool
    dw = network.add_convolution_nd(input=pool.get_output(0), num_output_maps=8, kernel_shape=(3, 3),
                                    kernel=trt.Weights(f32(8, 1, 3, 3)), bias=trt.Weights(f32(8)))
    dw.num_groups = 8
    dw.padding_nd = (1, 1)
    y = dw.get_output(0)

    half = network.add_cast(y, trt.DataType.HALF)
    back = network.add_cast(half.get_output(0), trt.DataType.FLOAT)
    const = network.add_constant((1, 8, 1, 1), trt.Weights(f32(1, 8, 1, 1)))
    L["constant"] = const
    s = network.add_elementwise(back.get_output(0), const.get_output(0), trt.ElementWiseOperation.SUM)
    L["elementwise"] = s
    for op in ("PROD", "SUB", "DIV", "MAX", "MIN"):
        network.add_elementwise(s.get_output(0), const.get_output(0), getattr(trt.ElementWiseOperation, op))
    u = network.add_unary(s.get_output(0), trt.UnaryOperation.ABS)
    L["unary"] = u
    e = network.add_unary(u.get_output(0), trt.UnaryOperation.EXP)
    up = network.add_resize(e.get_output(0))
    up.scales = [1.0, 1.0, 2.0, 2.0]
    up.resize_mode = trt.InterpolationMode.NEAREST
    up.coordinate_transformation = trt.ResizeCoordinateTransformation.ASYMMETRIC
    cat = network.add_concatenation([up.get_output(0), up.get_output(0)])
    cat.axis = 1
    L["concatenation"] = cat
    sl = network.add_slice(cat.get_output(0), (0, 0, 0, 0), (1, 4, 8, 8), (1, 1, 1, 1))
    sl.start, sl.shape, sl.stride = (0, 1, 0, 0), (1, 4, 8, 8), (1, 2, 1, 1)
    L["slice"] = sl
    flat = network.add_shuffle(sl.get_output(0))
    flat.reshape_dims = (0, 4, -1)
    flat.second_transpose = (0, 2, 1)
    sm = network.add_softmax(flat.get_output(0))
    sm.axes = 1 << 2
    L["softmax"] = sm
    red = network.add_reduce(sm.get_output(0), trt.ReduceOperation.MAX, 1 << 2, keep_dims=False)
    red.op, red.axes, red.keep_dims = trt.ReduceOperation.MAX, 1 << 2, False
    L["reduce"] = red
    w = network.add_constant((1, 4, 3), trt.Weights(f32(1, 4, 3)))
    mm = network.add_matrix_multiply(sm.get_output(0), trt.MatrixOperation.NONE, w.get_output(0),
                                     trt.MatrixOperation.NONE)
    mm.op0, mm.op1 = trt.MatrixOperation.NONE, trt.MatrixOperation.NONE
    L["matrix_multiply"] = mm
    idx = network.add_constant((2,), trt.Weights(np.array([0, 2], np.int32)))
    g = network.add_gather(mm.get_output(0), idx.get_output(0), axis=2)
    g.axis = 2
    L["gather"] = g
    scale = network.add_constant((), trt.Weights(np.array(0.05, np.float32)))
    q = network.add_quantize(g.get_output(0), scale.get_output(0), trt.DataType.INT8)
    q.axis = 0
    L["quantize"] = q
    dq = network.add_dequantize(q.get_output(0), scale.get_output(0), trt.DataType.FLOAT)
    dq.axis = 0
    L["dequantize"] = dq
    shape = network.add_shape(dq.get_output(0))
    L["shape"] = shape
    ident = network.add_identity(dq.get_output(0))
    L["identity"] = ident

    registry = trt.get_plugin_registry()
    creator = registry.get_creator("InverseWarp", "1", "trtnet")
    divisor = np.array([8.0], np.float32)  # alive until create_plugin returns (the collection only points at it)
    fields = trt.PluginFieldCollection([trt.PluginField("flow_divisor", divisor, trt.PluginFieldType.FLOAT32)])
    warp = creator.create_plugin("warp", fields, trt.TensorRTPhase.BUILD)
    flow = network.add_constant((1, 2, 8, 8), trt.Weights(f32(1, 2, 8, 8) * 0.1))
    pl = network.add_plugin_v3([y, flow.get_output(0)], [], warp)
    L["plugin_v3"] = pl

    for key, layer in L.items():
        if key != "conv":
            layer.name = key
        assert layer.num_outputs >= 1 and layer.num_inputs >= 0 and layer.type is not None
        out = layer.get_output(0)
        out.name = f"t/{key}"
    for key in ("reduce", "shape", "identity", "plugin_v3"):
        network.mark_output(L[key].get_output(0))
    tensor = L["plugin_v3"].get_output(0)
    assert tensor.shape is not None and tensor.dtype is not None
    assert not tensor.is_network_input and tensor.is_network_output
    return L
