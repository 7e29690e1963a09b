"""The emulator's plugin registry: trtnet's plugins run through CPU twins.

``trt.get_plugin_registry().get_creator(name, version, namespace)`` returns a
creator whose ``create_plugin(name, field_collection, phase)`` gives a plugin
for ``network.add_plugin_v3``, exactly as with TensorRT and the compiled
creators. The CPU twins compute with the NumPy references of
:mod:`trtnet.plugins.reference` (the same math as the CUDA kernels); fields,
tensors and defaults come from :mod:`trtnet.plugins.specs`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import trt_types as trt  # not .trt: that module re-exports this one's names
from .usage import ApiUsage

DT = trt.DataType

# Registry and creator calls are process-wide (not per network): recorded here for the
# conformance tests under TensorRT's class names.
usage = ApiUsage()
_FLOATS = (DT.FLOAT, DT.HALF)


class EmulatedPlugin:
    """A created plugin: output types/shapes and a CPU ``execute``."""

    def __init__(self, spec, name: str, fields: dict[str, np.ndarray], impl: "_PluginImpl"):
        self.spec = spec
        self.name = name
        self.fields = fields
        self._impl = impl

    @property
    def num_outputs(self) -> int:
        return len(self.spec.outputs)

    @property
    def interface(self) -> str:
        """'IPluginV3' (network.add_plugin_v3) or 'IPluginV2DynamicExt' (add_plugin_v2)."""
        return self.spec.interface

    def field_value(self, name: str):
        return self.fields[name].reshape(-1)[0].item()

    def output_dtypes(self, in_types: Sequence[trt.DataType]) -> list[trt.DataType]:
        return self._impl.dtypes(self, list(in_types))

    def output_shapes(self, in_shapes) -> list[tuple[int, ...]]:
        return self._impl.shapes(self, [tuple(s) for s in in_shapes])

    def execute(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self._impl.run(self, arrays)

    def __repr__(self) -> str:
        vals = {k: self.fields[k].reshape(-1).tolist() for k in self.fields}
        return f"EmulatedPlugin({self.spec.name}, {vals})"


class _PluginImpl:
    def __init__(self, dtypes: Callable, shapes: Callable, run: Callable):
        self.dtypes, self.shapes, self.run = dtypes, shapes, run


def _float_inputs(plugin, types, count_range):
    lo, hi = count_range
    if not lo <= len(types) <= hi:
        raise ValueError(f"{plugin.spec.name} takes {lo}..{hi} inputs, got {len(types)}")
    if types[0] not in _FLOATS or any(t != types[0] for t in types):
        raise TypeError(f"{plugin.spec.name}: float inputs must all be FLOAT or all HALF, got {[t.name for t in types]}")
    return types[0]


# --- FastNMS --------------------------------------------------------------------------
def _nms_dtypes(plugin, types):
    f = _float_inputs(plugin, types, (3, 3))
    return [DT.INT32, f, f, DT.INT32, f]


def _nms_shapes(plugin, shapes):
    boxes, scores, coeffs = shapes
    if len(boxes) != 3 or boxes[-1] != 4 or len(scores) != 3 or len(coeffs) != 3:
        raise ValueError(f"FastNMS needs boxes [N,A,4], scores [N,A,C], coeffs [N,A,K]; got {boxes}, {scores}, {coeffs}")
    n, md, k = boxes[0], plugin.field_value("max_det"), coeffs[2]
    return [(n,), (n, md, 4), (n, md), (n, md), (n, md, k)]


def _nms_run(plugin, xs):
    from trtnet.plugins import reference

    kwargs = {name: plugin.field_value(name) for name in plugin.fields}
    det = reference.fast_nms(*xs, **kwargs)
    return [det.count, det.boxes, det.scores, det.classes, det.coeffs]


# --- InverseWarp ----------------------------------------------------------------------
def _warp_dtypes(plugin, types):
    # The C++ plugin's rule (inverse_warp_plugin.cpp accepts_input_count): feature, flow[, scale[, bias]],
    # and exactly num_inputs of them when that field is set.
    declared = plugin.field_value("num_inputs")
    if declared not in (0, 2, 3, 4):
        raise ValueError(f"InverseWarp: num_inputs must be 2, 3 or 4 (or 0: from the layer), got {declared}")
    if declared and len(types) != declared:
        raise ValueError(f"InverseWarp: the layer has {len(types)} inputs, the num_inputs field says {declared}")
    return [_float_inputs(plugin, types, (2, 4))]


def _warp_shapes(plugin, shapes):
    feature, flow = shapes[0], shapes[1]
    if len(feature) != 4 or len(flow) != 4 or flow[1] != 2:
        raise ValueError(f"InverseWarp needs feature [N,C,H,W] and flow [N,2,H,W], got {feature} and {flow}")
    return [feature]


def _warp_run(plugin, xs):
    from trtnet.plugins import reference

    scale = xs[2] if len(xs) > 2 else None
    bias = xs[3] if len(xs) > 3 else None
    return [reference.inverse_warp(xs[0], xs[1], scale, bias, flow_divisor=plugin.field_value("flow_divisor"))]


# --- ModulatedDeformConv2d (TensorRT's libnvinfer_plugin) -----------------------------------
def _dcn_dtypes(plugin, types):
    # 4 or 5 inputs (11.1 modulatedDeformConvPlugin.cpp line 117), all of x's type, FLOAT or HALF
    # (supportsFormatCombination, 10.3 lines 126-133); the output has x's type (10.3 line 223).
    return [_float_inputs(plugin, types, (4, 5))]


def _dcn_kwargs(plugin):
    values = {name: plugin.fields[name].reshape(-1) for name in plugin.fields}
    return dict(stride=tuple(values["stride"]), padding=tuple(values["padding"]),
                dilation=tuple(values["dilation"]), group=int(values["group"][0]),
                deformable_group=int(values["deformable_group"][0]))


def _dcn_shapes(plugin, shapes):
    from trtnet.plugins import reference

    bias = shapes[4] if len(shapes) > 4 else None
    return [reference.deform_conv_output_shape(*shapes[:4], bias, **_dcn_kwargs(plugin))]


def _dcn_run(plugin, xs):
    from trtnet.plugins import reference

    half = xs[0].dtype == np.float16
    bias = xs[4] if len(xs) > 4 else None
    return [reference.modulated_deform_conv(*xs[:4], bias, half=half, **_dcn_kwargs(plugin))]


_IMPLS = {
    "FastNMS": _PluginImpl(_nms_dtypes, _nms_shapes, _nms_run),
    "InverseWarp": _PluginImpl(_warp_dtypes, _warp_shapes, _warp_run),
    "ModulatedDeformConv2d": _PluginImpl(_dcn_dtypes, _dcn_shapes, _dcn_run),
}


class PluginCreator:
    """Creator of one plugin, with TensorRT's ``IPluginCreatorV3One`` attribute names."""

    def __init__(self, spec):
        self._spec = spec

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def plugin_version(self) -> str:
        return self._spec.version

    @property
    def plugin_namespace(self) -> str:
        return self._spec.namespace

    @property
    def field_names(self) -> trt.PluginFieldCollection:
        return trt.PluginFieldCollection(trt.PluginField(f.name) for f in self._spec.fields)

    def create_plugin(self, name: str, field_collection, phase: trt.TensorRTPhase) -> EmulatedPlugin:
        usage.call("IPluginCreatorV3One", "create_plugin", (name, field_collection, phase), {})
        if not isinstance(phase, trt.TensorRTPhase):
            raise TypeError(f"create_plugin: phase must be a trt.TensorRTPhase, got {phase!r}")
        return self._create(name, field_collection)

    def _create(self, name: str, field_collection) -> EmulatedPlugin:
        if not isinstance(field_collection, trt.PluginFieldCollection):  # the binding takes only that type
            raise TypeError(f"create_plugin({self.name}): field_collection must be a trt.PluginFieldCollection, "
                            f"got {type(field_collection).__name__}")
        given = {}
        for field in field_collection:
            if not isinstance(field, trt.PluginField):
                raise TypeError(f"create_plugin({self.name}): fields must be trt.PluginField, got {type(field).__name__}")
            given[field.name] = np.asarray(field.data).reshape(-1)
            length = self._spec.field(field.name).length if field.name in self._spec.field_names else 1
            if given[field.name].size != length:  # ModulatedDeformConv2d: PLUGIN_VALIDATE(field.length == 2)
                raise ValueError(f"create_plugin({self.name}): field {field.name!r} must hold {length} "
                                 f"value{'s' if length > 1 else ''}, got {given[field.name].size}")
        values = {k: (v[0].item() if v.size == 1 else tuple(v.tolist())) for k, v in given.items()}
        fields = self._spec.resolve(values)  # unknown names -> KeyError naming the fields
        for f in self._spec.fields:
            if f.name in given and given[f.name].dtype != np.dtype(f.dtype):
                raise TypeError(f"create_plugin({self.name}): field {f.name!r} must be {f.dtype}, "
                                f"got {given[f.name].dtype}")
        return EmulatedPlugin(self._spec, name, fields, _IMPLS[self._spec.name])


class LegacyPluginCreator(PluginCreator):
    """Creator of an IPluginV2DynamicExt plugin: ``IPluginCreator.create_plugin(name, field_collection)``."""

    def create_plugin(self, name: str, field_collection) -> EmulatedPlugin:  # type: ignore[override]
        usage.call("IPluginCreator", "create_plugin", (name, field_collection), {})
        return self._create(name, field_collection)


def _creator(spec) -> PluginCreator:
    return PluginCreator(spec) if spec.interface == "IPluginV3" else LegacyPluginCreator(spec)


def libnvinfer_plugin_creators() -> list[PluginCreator]:
    """The creators initLibNvInferPlugins registers that the emulator has twins for."""
    from trtnet.plugins import specs

    return [_creator(s) for s in specs.TENSORRT_PLUGINS]


class PluginRegistry:
    """``tensorrt.IPluginRegistry`` subset: ``get_creator`` and ``all_creators``.

    trtnet's own creators are there from the start (the emulator stands in for a loaded
    libtrtnet_plugins.so); TensorRT's libnvinfer_plugin creators (ModulatedDeformConv2d) only
    after ``trt.init_libnvinfer_plugins(logger, "")``, as in TensorRT.
    """

    def __init__(self) -> None:
        from trtnet.plugins import specs

        self._creators = {(s.name, s.version, s.namespace): _creator(s) for s in specs.SPECS.values()}

    def _register_libnvinfer_plugin(self, namespace: str) -> None:
        for creator in libnvinfer_plugin_creators():
            self._creators.setdefault((creator.name, creator.plugin_version, namespace), creator)

    def get_creator(self, type: str, version: str, plugin_namespace: str = "") -> PluginCreator | None:  # noqa: A002
        """The creator, or None when nothing is registered under that key (like TensorRT)."""
        usage.call("IPluginRegistry", "get_creator", (type, version, plugin_namespace), {})
        return self._creators.get((type, version, plugin_namespace))

    @property
    def all_creators(self) -> list[PluginCreator]:
        return list(self._creators.values())


_registry: PluginRegistry | None = None


def get_plugin_registry() -> PluginRegistry:
    """The emulator's registry of trtnet's plugins (CPU twins)."""
    global _registry
    if _registry is None:
        _registry = PluginRegistry()
    return _registry


# Tests turn this off to model a TensorRT without libnvinfer_plugin (a lean/dispatch runtime).
libnvinfer_plugin_available = True


def init_libnvinfer_plugins(logger, namespace: str) -> bool:
    """``tensorrt.init_libnvinfer_plugins(logger, namespace)``: register libnvinfer_plugin's creators.

    NvInferPlugin.h (10.3 and 11.1 line 38) ``initLibNvInferPlugins(void* logger, char const*
    libNamespace)``: "Initialize and register all the existing TensorRT plugins to the Plugin
    Registry with an optional namespace". The emulator registers the creators it has twins for.
    """
    if not isinstance(namespace, str):
        raise TypeError(f"init_libnvinfer_plugins: namespace must be a str, got {type(namespace).__name__}")
    if not libnvinfer_plugin_available:
        return False
    get_plugin_registry()._register_libnvinfer_plugin(namespace)
    return True
