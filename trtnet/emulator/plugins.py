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

    def field_value(self, name: str):
        return self.fields[name].reshape(-1)[0].item()

    def output_dtypes(self, in_types: Sequence[trt.DataType]) -> list[trt.DataType]:
        return self._impl.dtypes(self, list(in_types))

    def output_shapes(self, in_shapes) -> list[tuple[int, ...]]:
        return self._impl.shapes(self, [tuple(s) for s in in_shapes])

    def execute(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self._impl.run(self, arrays)

    def __repr__(self) -> str:
        vals = {k: self.field_value(k) for k in self.fields}
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


_IMPLS = {
    "FastNMS": _PluginImpl(_nms_dtypes, _nms_shapes, _nms_run),
    "InverseWarp": _PluginImpl(_warp_dtypes, _warp_shapes, _warp_run),
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
        if not isinstance(field_collection, trt.PluginFieldCollection):  # the binding takes only that type
            raise TypeError(f"create_plugin({self.name}): field_collection must be a trt.PluginFieldCollection, "
                            f"got {type(field_collection).__name__}")
        given = {}
        for field in field_collection:
            if not isinstance(field, trt.PluginField):
                raise TypeError(f"create_plugin({self.name}): fields must be trt.PluginField, got {type(field).__name__}")
            given[field.name] = np.asarray(field.data).reshape(-1)
            if given[field.name].size != 1:
                raise ValueError(f"create_plugin({self.name}): field {field.name!r} must hold one value")
        values = {k: v[0].item() for k, v in given.items()}
        fields = self._spec.resolve(values)  # unknown names -> KeyError naming the fields
        for f in self._spec.fields:
            if f.name in given and given[f.name].dtype != np.dtype(f.dtype):
                raise TypeError(f"create_plugin({self.name}): field {f.name!r} must be {f.dtype}, "
                                f"got {given[f.name].dtype}")
        return EmulatedPlugin(self._spec, name, fields, _IMPLS[self._spec.name])


class PluginRegistry:
    """``tensorrt.IPluginRegistry`` subset: ``get_creator`` and ``all_creators``."""

    def __init__(self) -> None:
        from trtnet.plugins import specs

        self._creators = {(s.name, s.version, s.namespace): PluginCreator(s) for s in specs.SPECS.values()}

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
