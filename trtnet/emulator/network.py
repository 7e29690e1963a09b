"""Emulated ``INetworkDefinition`` and ``ITensor`` (strongly typed, like TensorRT 11).

Method names, parameter names and defaults are those of the real Python
bindings (checked against TensorRT 11.4 and 10.3 by tests/test_trt_conformance.py).
Type errors that strongly typed TensorRT reports are raised at ``add_*`` time as
``TypeError`` naming the method, the tensors and their types.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from . import layers as L
from . import trt
from .tensor import ITensor, NoNewAttributes
from .usage import ApiUsage


def _recorded(method):
    """Record a network method call (name and parameter names used) in ``network.usage``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        self.usage.call("INetworkDefinition", method.__name__, args, kwargs)
        return method(self, *args, **kwargs)

    return wrapper


def _dims(shape, what: str) -> trt.Dims:
    try:
        return trt.Dims(shape)
    except TypeError:
        raise TypeError(f"{what}: expected a sequence of ints, got {shape!r}") from None


class Network(NoNewAttributes):
    """NumPy emulator of ``tensorrt.INetworkDefinition`` (strongly typed)."""

    def __init__(self, name: str = "trtnet") -> None:
        self._name = name
        self._layers: list[L.ILayer] = []
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._version = 0  # bumped by every attribute change; keys the shape/dtype caches
        self._read_tensors: set[int] = set()  # ids of tensors some layer reads (ILayer._changed)
        object.__setattr__(self, "usage", ApiUsage())  # emulator-only record, not a TensorRT attribute

    # --- network-level properties -------------------------------------------------
    @property
    def name(self) -> str:
        self.usage.attribute("INetworkDefinition", "name", "get")
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self.usage.attribute("INetworkDefinition", "name", "set")
        self._name = value

    @property
    def num_layers(self) -> int:
        self.usage.attribute("INetworkDefinition", "num_layers", "get")
        return len(self._layers)

    @property
    def num_inputs(self) -> int:
        self.usage.attribute("INetworkDefinition", "num_inputs", "get")
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        self.usage.attribute("INetworkDefinition", "num_outputs", "get")
        return len(self._outputs)

    @_recorded
    def get_layer(self, index: int) -> L.ILayer:
        return self._layers[index]

    @_recorded
    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    @_recorded
    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    # --- inputs, outputs, constants -----------------------------------------------
    @_recorded
    def add_input(self, name: str, dtype: trt.DataType, shape) -> ITensor:
        if not isinstance(dtype, trt.DataType):
            raise TypeError(f"add_input({name!r}): dtype must be a trt.DataType, got {dtype!r}")
        dims = _dims(shape, f"add_input({name!r}) shape")
        if any(d < -1 for d in dims):
            raise ValueError(f"add_input({name!r}): dims must be >= 0 or -1 (dynamic), got {tuple(dims)}")
        if any(t._name == name for t in self._inputs):
            raise ValueError(f"add_input: an input named {name!r} already exists")
        t = ITensor(self, None, 0, name)
        t._input_dtype = dtype
        t._input_shape = dims
        self._inputs.append(t)
        return t

    @_recorded
    def mark_output(self, tensor: ITensor) -> None:
        self._check_tensor(tensor, "mark_output", "tensor")
        if not any(t is tensor for t in self._outputs):
            self._outputs.append(tensor)

    @_recorded
    def add_constant(self, shape, weights: trt.Weights) -> L.IConstantLayer:
        dims = _dims(shape, "add_constant shape")
        weights = _as_weights(weights, "add_constant weights")
        volume = int(np.prod(dims, dtype=np.int64)) if len(dims) else 1
        if any(d < 0 for d in dims) or volume != weights.size:
            raise ValueError(
                f"add_constant: shape {tuple(dims)} holds {volume} values but the weights have {weights.size}")
        return self._add(L.IConstantLayer(self, [], dims, weights))

    # --- layers ------------------------------------------------------------------
    @_recorded
    def add_convolution_nd(self, input: ITensor, num_output_maps: int, kernel_shape,  # noqa: A002
                           kernel: trt.Weights, bias: trt.Weights | None = None) -> L.IConvolutionLayer:
        self._check_tensor(input, "add_convolution_nd", "input")
        k = _dims(kernel_shape, "add_convolution_nd kernel_shape")
        return self._add(L.IConvolutionLayer(self, [input], int(num_output_maps), k,
                                             _as_weights(kernel, "kernel"),
                                             _as_weights(bias, "bias") if bias is not None else None))

    @_recorded
    def add_pooling_nd(self, input: ITensor, type: trt.PoolingType, window_size) -> L.IPoolingLayer:  # noqa: A002
        self._check_tensor(input, "add_pooling_nd", "input")
        return self._add(L.IPoolingLayer(self, [input], type, _dims(window_size, "add_pooling_nd window_size")))

    @_recorded
    def add_activation(self, input: ITensor, type: trt.ActivationType) -> L.IActivationLayer:  # noqa: A002
        self._check_tensor(input, "add_activation", "input")
        return self._add(L.IActivationLayer(self, [input], type))

    @_recorded
    def add_elementwise(self, input1: ITensor, input2: ITensor, op: trt.ElementWiseOperation) -> L.IElementWiseLayer:
        self._check_tensor(input1, "add_elementwise", "input1")
        self._check_tensor(input2, "add_elementwise", "input2")
        return self._add(L.IElementWiseLayer(self, [input1, input2], op))

    @_recorded
    def add_unary(self, input: ITensor, op: trt.UnaryOperation) -> L.IUnaryLayer:  # noqa: A002
        self._check_tensor(input, "add_unary", "input")
        return self._add(L.IUnaryLayer(self, [input], op))

    @_recorded
    def add_resize(self, input: ITensor) -> L.IResizeLayer:  # noqa: A002
        self._check_tensor(input, "add_resize", "input")
        return self._add(L.IResizeLayer(self, [input]))

    @_recorded
    def add_shuffle(self, input: ITensor) -> L.IShuffleLayer:  # noqa: A002
        self._check_tensor(input, "add_shuffle", "input")
        return self._add(L.IShuffleLayer(self, [input]))

    @_recorded
    def add_identity(self, input: ITensor) -> L.IIdentityLayer:  # noqa: A002
        self._check_tensor(input, "add_identity", "input")
        return self._add(L.IIdentityLayer(self, [input]))

    @_recorded
    def add_concatenation(self, inputs: Sequence[ITensor]) -> L.IConcatenationLayer:
        inputs = list(inputs)
        if not inputs:
            raise ValueError("add_concatenation: needs at least one input")
        for i, t in enumerate(inputs):
            self._check_tensor(t, "add_concatenation", f"inputs[{i}]")
        return self._add(L.IConcatenationLayer(self, inputs))

    @_recorded
    def add_slice(self, input: ITensor, start, shape, stride) -> L.ISliceLayer:  # noqa: A002
        self._check_tensor(input, "add_slice", "input")
        return self._add(L.ISliceLayer(self, [input], _dims(start, "add_slice start"),
                                       _dims(shape, "add_slice shape"), _dims(stride, "add_slice stride")))

    @_recorded
    def add_softmax(self, input: ITensor) -> L.ISoftMaxLayer:  # noqa: A002
        self._check_tensor(input, "add_softmax", "input")
        return self._add(L.ISoftMaxLayer(self, [input]))

    @_recorded
    def add_reduce(self, input: ITensor, op: trt.ReduceOperation, axes: int, keep_dims: bool) -> L.IReduceLayer:  # noqa: A002
        self._check_tensor(input, "add_reduce", "input")
        return self._add(L.IReduceLayer(self, [input], op, int(axes), bool(keep_dims)))

    @_recorded
    def add_matrix_multiply(self, input0: ITensor, op0: trt.MatrixOperation, input1: ITensor,
                            op1: trt.MatrixOperation) -> L.IMatrixMultiplyLayer:
        self._check_tensor(input0, "add_matrix_multiply", "input0")
        self._check_tensor(input1, "add_matrix_multiply", "input1")
        return self._add(L.IMatrixMultiplyLayer(self, [input0, input1], op0, op1))

    @_recorded
    def add_cast(self, input: ITensor, to_type: trt.DataType) -> L.ICastLayer:  # noqa: A002
        self._check_tensor(input, "add_cast", "input")
        return self._add(L.ICastLayer(self, [input], to_type))

    @_recorded
    def add_quantize(self, input: ITensor, scale: ITensor, output_type: trt.DataType) -> L.IQuantizeLayer:  # noqa: A002
        self._check_tensor(input, "add_quantize", "input")
        self._check_tensor(scale, "add_quantize", "scale")
        return self._add(L.IQuantizeLayer(self, [input, scale], output_type))

    @_recorded
    def add_dequantize(self, input: ITensor, scale: ITensor, output_type: trt.DataType) -> L.IDequantizeLayer:  # noqa: A002
        self._check_tensor(input, "add_dequantize", "input")
        self._check_tensor(scale, "add_dequantize", "scale")
        return self._add(L.IDequantizeLayer(self, [input, scale], output_type))

    @_recorded
    def add_gather(self, input: ITensor, indices: ITensor, axis: int) -> L.IGatherLayer:  # noqa: A002
        self._check_tensor(input, "add_gather", "input")
        self._check_tensor(indices, "add_gather", "indices")
        return self._add(L.IGatherLayer(self, [input, indices], int(axis)))

    @_recorded
    def add_shape(self, input: ITensor) -> L.IShapeLayer:  # noqa: A002
        self._check_tensor(input, "add_shape", "input")
        return self._add(L.IShapeLayer(self, [input]))

    @_recorded
    def add_plugin_v3(self, inputs: Sequence[ITensor], shape_inputs: Sequence[ITensor], plugin) -> L.IPluginV3Layer:
        inputs = list(inputs)
        for i, t in enumerate(inputs):
            self._check_tensor(t, "add_plugin_v3", f"inputs[{i}]")
        if list(shape_inputs):
            raise NotImplementedError("add_plugin_v3: shape_inputs are not emulated (trtnet's plugins use none)")
        from .plugins import EmulatedPlugin

        if not isinstance(plugin, EmulatedPlugin):
            raise TypeError(
                f"add_plugin_v3: plugin must come from emulator.trt.get_plugin_registry(), got {type(plugin).__name__}")
        if plugin.interface != "IPluginV3":  # the binding takes an IPluginV3 only
            raise TypeError(f"add_plugin_v3: {plugin.spec.name} version {plugin.spec.version} is an "
                            f"{plugin.interface}; add it with add_plugin_v2")
        return self._add(L.IPluginV3Layer(self, inputs, plugin))

    @_recorded
    def add_plugin_v2(self, inputs: Sequence[ITensor], plugin) -> L.IPluginV2Layer:
        """NvInfer.h 10.3 line 6878 ``addPluginV2(inputs, nbInputs, IPluginV2&)`` (11.1 line 8859: deprecated)."""
        inputs = list(inputs)
        for i, t in enumerate(inputs):
            self._check_tensor(t, "add_plugin_v2", f"inputs[{i}]")
        from .plugins import EmulatedPlugin

        if not isinstance(plugin, EmulatedPlugin) or plugin.interface != "IPluginV2DynamicExt":
            raise TypeError("add_plugin_v2: plugin must be an IPluginV2 from emulator.trt.get_plugin_registry(), "
                            f"got {plugin!r}")
        return self._add(L.IPluginV2Layer(self, inputs, plugin))

    # --- helpers -----------------------------------------------------------------
    def _add(self, layer: L.ILayer) -> L.ILayer:
        layer._index = len(self._layers)
        layer._name = f"(Unnamed Layer* {layer._index}) [{layer._kind}]"
        for i, t in enumerate(layer._outputs):
            t._name = f"{layer._name}_output" + (f"_{i}" if len(layer._outputs) > 1 else "")
        self._layers.append(layer)
        layer._output_dtypes()  # type errors surface where the layer is added (shapes may depend
        # on attributes set later, e.g. num_groups, so they are checked when queried or run)
        return layer

    def _check_tensor(self, t, method: str, param: str) -> None:
        if not isinstance(t, ITensor):
            raise TypeError(f"{method}: {param} must be an ITensor, got {type(t).__name__}")
        if t._network is not self:
            raise ValueError(f"{method}: {param} {t._name!r} belongs to another network")

    def __repr__(self) -> str:
        return f"Network({self._name!r}, {len(self._layers)} layers, inputs={[t._name for t in self._inputs]})"


def _as_weights(w, what: str) -> trt.Weights:
    if isinstance(w, trt.Weights):
        return w
    if isinstance(w, np.ndarray):
        return trt.Weights(w)  # the real bindings convert numpy arrays implicitly too
    raise TypeError(f"{what}: expected trt.Weights or a numpy array, got {type(w).__name__}")
