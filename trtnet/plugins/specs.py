"""The one definition of trtnet's two TensorRT plugins (FastNMS, InverseWarp) and of the
TensorRT plugin library's ModulatedDeformConv2d that YOLACT++'s DCNv2 uses.

Everything that touches a plugin reads it from here: the network code that adds
the plugin layer (field names, defaults, types), the emulator's CPU twins, the
C++ creators (names/version/namespace; checked by tests), the NumPy reference in
:mod:`trtnet.plugins.reference` and the tests. The semantics follow upstream
YolactEdge exactly (see ``../shared/reference/UPSTREAM_NOTES.md`` items 8 and 14).

FastNMS (upstream ``Detect.fast_nms``, per image of the batch)
---------------------------------------------------------------
1. Candidates: priors whose best score over the non-background columns is
   ``> conf_thresh`` (strict: a score equal to conf_thresh does not enter). Only candidates are looked at, in ascending prior
   order.
2. Per foreground class: ALL candidates (also those whose score for this class is
   below the threshold) are sorted by that class's score, descending, and the
   first ``top_k`` are kept.
3. Per class, IoU between the kept boxes (no +1: ``inter / (area_a + area_b -
   inter)`` in IEEE float32, nothing special-cased); box ``j`` is kept when every box
   ranked before it in the same class has IoU ``<= nms_thresh`` (equal is kept) --
   suppressed boxes still suppress (upper triangle, column max). Two zero-area boxes
   give 0 / 0 = NaN, and upstream's column max propagates NaN, so a zero-area box is
   dropped when a zero-area box ranks before it in its class (a zero-area box after
   boxes with area has IoU 0 with them and is kept).
4. Survivors of all classes are sorted by score, descending; the first
   ``max_det`` are written. No second score threshold.

Deterministic tie rule (:data:`TIE_RULE`): wherever scores are equal, the
smaller prior index ranks first within a class (step 2), and in the global sort
(step 4) the smaller foreground class ranks first, then the smaller prior index.
That is what a stable sort of candidates in prior order gives, class-major.

InverseWarp (upstream ``warp_utils.deform_op`` then ``* scale + bias``)
-----------------------------------------------------------------------
``grid_x = x * (2 / (W - 1)) - 1 + flow[:, 0] / flow_divisor`` (same for y with
H and ``flow[:, 1]``), then a bilinear sample with ``align_corners=True``
(``ix = (grid_x + 1) / 2 * (W - 1)``) and zero padding per corner, i.e.
``grid_sample(feature, grid, 'bilinear', 'zeros', align_corners=True)``; the
result is multiplied by ``scale`` and ``bias`` is added when they are given.
A flow of ``f`` therefore moves ``f * (W - 1) / 16`` pixels for divisor 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

NAMESPACE = "trtnet"
VERSION = "1"

TIE_RULE = (
    "equal scores: within a class the smaller prior index ranks first; across "
    "classes the smaller foreground class ranks first, then the smaller prior index"
)

_NUMPY_DTYPES = {"int32": np.int32, "float32": np.float32}


@dataclass(frozen=True)
class FieldSpec:
    """One plugin field (a creator attribute): name, scalar type, default."""

    name: str
    dtype: str  # 'int32' | 'float32'
    default: int | float | tuple
    doc: str
    length: int = 1  # values per field (ModulatedDeformConv2d's stride/padding/dilation: 2)

    def coerce(self, value: Any) -> np.ndarray:
        """The field value as the ``length``-element array TensorRT's PluginField wants."""
        if self.length != 1:
            values = np.asarray(value).reshape(-1) if not np.isscalar(value) else None
            if values is None or values.size != self.length:
                raise ValueError(f"plugin field {self.name!r}: expected {self.length} values, got {value!r}")
            one = FieldSpec(self.name, self.dtype, 0, self.doc)
            return np.concatenate([one.coerce(v.item()) for v in values])
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"plugin field {self.name!r}: expected {self.dtype}, got a bool")
        if self.dtype == "int32":
            if isinstance(value, (float, np.floating)) and not float(value).is_integer():
                raise TypeError(f"plugin field {self.name!r}: expected an integer, got {value!r}")
            ivalue = int(value)
            if not -(2**31) <= ivalue < 2**31:
                raise ValueError(f"plugin field {self.name!r}: {ivalue} does not fit int32")
            return np.array([ivalue], dtype=np.int32)
        return np.array([float(value)], dtype=np.float32)


@dataclass(frozen=True)
class TensorSpec:
    """One plugin input or output: name, dtype, symbolic shape."""

    name: str
    dtype: str  # 'float32' | 'int32'; float inputs may also be float16 (same dtype for all)
    shape: tuple[str, ...]
    doc: str
    optional: bool = False


@dataclass(frozen=True)
class PluginSpec:
    """A plugin as its creator registers it, plus the meaning of its tensors."""

    name: str
    fields: tuple[FieldSpec, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    version: str = VERSION
    namespace: str = NAMESPACE
    doc: str = ""
    # TensorRT's plugin interface: 'IPluginV3' (network.add_plugin_v3, creator.create_plugin(name,
    # fields, phase)) or 'IPluginV2DynamicExt' (network.add_plugin_v2, create_plugin(name, fields)).
    interface: str = "IPluginV3"

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"plugin {self.name} has no field {name!r}; fields: {self.field_names}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def defaults(self) -> dict[str, int | float]:
        return {f.name: f.default for f in self.fields}

    def resolve(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """Full field values (defaults filled in) as typed 1-element arrays.

        Unknown names are an error, so a typo never silently falls back to a default.
        """
        given = dict(values or {}, **kwargs)
        unknown = sorted(set(given) - set(self.field_names))
        if unknown:
            raise KeyError(
                f"plugin {self.name}: unknown field(s) {unknown}; fields: {list(self.field_names)}"
            )
        return {f.name: f.coerce(given.get(f.name, f.default)) for f in self.fields}

    def create_plugin(self, trt: Any, creator: Any, name: str, values: Mapping[str, Any] | None = None,
                      **kwargs: Any) -> Any:
        """``creator.create_plugin`` (BUILD phase) with this plugin's fields (defaults filled in).

        The field arrays stay referenced here until ``create_plugin`` returns: TensorRT's
        ``PluginFieldCollection`` copies raw pointers and keeps no array alive (its Python
        binding is a ``std::vector<PluginField>``; PluginField "does not own any of it's
        members"), so a collection built from temporaries would hand the creator freed memory.
        Works for tensorrt and the emulator.
        """
        types = {"int32": trt.PluginFieldType.INT32, "float32": trt.PluginFieldType.FLOAT32}
        arrays = self.resolve(values, **kwargs)
        fields = [trt.PluginField(f.name, arrays[f.name], types[f.dtype]) for f in self.fields]
        collection = trt.PluginFieldCollection(fields)
        if self.interface == "IPluginV3":
            plugin = creator.create_plugin(name, collection, trt.TensorRTPhase.BUILD)
        else:  # IPluginCreator.create_plugin(name, field_collection) -> IPluginV2
            plugin = creator.create_plugin(name, collection)
        del collection, fields, arrays  # only now: the creator has copied the values
        return plugin


FAST_NMS = PluginSpec(
    name="FastNMS",
    fields=(
        FieldSpec("top_k", "int32", 200, "candidates kept per class before NMS"),
        FieldSpec("conf_thresh", "float32", 0.05, "a prior enters when its best foreground score is > this"),
        FieldSpec("nms_thresh", "float32", 0.5, "a box is suppressed when an earlier one has IoU > this"),
        FieldSpec("max_det", "int32", 100, "output capacity (detections per image)"),
        FieldSpec("background_class", "int32", 0, "score column skipped as background; -1 = none"),
    ),
    inputs=(
        TensorSpec("boxes", "float32", ("N", "A", "4"), "decoded boxes x1, y1, x2, y2, relative"),
        TensorSpec("scores", "float32", ("N", "A", "C"), "softmax scores incl. the background column"),
        TensorSpec("coeffs", "float32", ("N", "A", "K"), "mask coefficients (tanh), carried along"),
    ),
    outputs=(
        TensorSpec("count", "int32", ("N",), "number of valid detections per image"),
        TensorSpec("boxes", "float32", ("N", "max_det", "4"), "x1, y1, x2, y2 relative; 0 past count"),
        TensorSpec("scores", "float32", ("N", "max_det"), "descending; 0 past count"),
        TensorSpec("classes", "int32", ("N", "max_det"), "0-based foreground class; -1 past count"),
        TensorSpec("coeffs", "float32", ("N", "max_det", "K"), "mask coefficients; 0 past count"),
    ),
    doc="Fast NMS of YolactEdge (per-class top_k, upper-triangle IoU suppression, global top max_det).",
)

INVERSE_WARP = PluginSpec(
    name="InverseWarp",
    fields=(
        FieldSpec("flow_divisor", "float32", 8.0, "grid += flow / flow_divisor (upstream: 8)"),
        FieldSpec("num_inputs", "int32", 0, "2 (feature, flow), 3 (+ scale) or 4 (+ scale, bias); 0 = the "
                  "layer's count. Serialized, so enqueue knows it without configurePlugin/onShapeChange"),
    ),
    inputs=(
        TensorSpec("feature", "float32", ("N", "C", "H", "W"), "keyframe feature to warp"),
        TensorSpec("flow", "float32", ("N", "2", "H", "W"), "channel 0 = x, 1 = y, normalised units"),
        TensorSpec("scale", "float32", ("N", "C", "H", "W"), "multiplied onto the sample", optional=True),
        TensorSpec("bias", "float32", ("N", "C", "H", "W"), "added after scaling", optional=True),
    ),
    outputs=(
        TensorSpec("warped", "float32", ("N", "C", "H", "W"), "bilinear sample (0 outside) * scale + bias"),
    ),
    doc="Feature warp of YolactEdge: grid_sample(align_corners=True, zeros) by flow/8, then scale and bias.",
)

SPECS: dict[str, PluginSpec] = {s.name: s for s in (FAST_NMS, INVERSE_WARP)}


# --- TensorRT's own plugin library (libnvinfer_plugin) ----------------------------------------
# ModulatedDeformConv2d, read from plugin/modulatedDeformConvPlugin/ of NVIDIA/TensorRT:
# * release/10.3 modulatedDeformConvPlugin.cpp: PLUGIN_VERSION "1" (line 50), an IPluginV2DynamicExt
#   (line 86); the creator lists stride, padding, dilation, group, deformable_group (lines 308-312)
#   and requires all five (line 342); stride/padding/dilation are read as two int32 values
#   (lines 366-394), group/deformable_group as one int32 (352-364).
# * release/11.1 (and 10.13+) modulatedDeformConvPlugin.cpp: PLUGIN_VERSION "2" (line 52), an IPluginV3;
#   the creator's fields are INT32 with length 2 / 1 (lines 381-385), at BUILD phase
#   "PLUGIN_VALIDATE(field.type == expectedFieldType)" with kINT32 and "field.length == 2" (456-458).
#   The 11.1 library also registers the version "1" creator (modulatedDeformConvPluginLegacy.cpp line 53;
#   plugin/api/inferPlugin.cpp lines 178, 190).
# * Inputs x, offset, mask, weight[, bias] in that order (10.3 enqueue lines 186-190; 11.1 lines 224-228);
#   bias is present when there are 5 inputs (10.3 line 142, 11.1 line 174). Every input has x's type,
#   FLOAT or HALF, linear (10.3 supportsFormatCombination lines 126-133, 11.1 lines 143-151); the output
#   has x's type (10.3 line 223, 11.1 line 307) and shape [N, weight.d[0], offset.d[2], offset.d[3]]
#   (10.3 lines 109-113, 11.1 lines 125-128).
# * Offset layout (modulatedDeformConvPluginKernel.cu, 10.3 lines 166-175): channel 2*(i*kW + j) is the
#   y (h) offset and 2*(i*kW + j) + 1 the x (w) offset of tap (i, j), per deformable group; mask channel
#   i*kW + j. That is upstream DCNv2's layout (dcn_v2_im2col_cuda.cu lines 170-172).
# * Field order: the launcher takes (kernelW, kernelH, strideW, strideH, padW, padH, dilationW,
#   dilationH) (Kernel.cu 10.3 lines 224-225) and enqueue passes stride.d[0], stride.d[1], ... in that
#   order (10.3 line 200, 11.1 line 242), so the first value of each pair is the W value. trtnet only
#   uses equal pairs (trtnet.network.deform_conv refuses others).
TRT_PLUGIN_NAMESPACE = ""  # libnvinfer_plugin registers under initLibNvInferPlugins(logger, "")
_DCN_FIELDS = (
    FieldSpec("stride", "int32", (1, 1), "sampling stride (W, H as the kernel launch reads it)", length=2),
    FieldSpec("padding", "int32", (0, 0), "zero padding (W, H)", length=2),
    FieldSpec("dilation", "int32", (1, 1), "kernel dilation (W, H)", length=2),
    FieldSpec("group", "int32", 1, "convolution groups (upstream DCN: 1)"),
    FieldSpec("deformable_group", "int32", 1, "offset groups along the input channels (upstream DCN: 1)"),
)
_DCN_INPUTS = (
    TensorSpec("x", "float32", ("N", "C", "H", "W"), "input feature map"),
    TensorSpec("offset", "float32", ("N", "2*dg*kH*kW", "Ho", "Wo"), "channel 2k = dy, 2k+1 = dx of tap k=i*kW+j"),
    TensorSpec("mask", "float32", ("N", "dg*kH*kW", "Ho", "Wo"), "modulation (after sigmoid), channel k = tap k"),
    TensorSpec("weight", "float32", ("Cout", "C/group", "kH", "kW"), "kernel (a constant layer)"),
    TensorSpec("bias", "float32", ("Cout",), "added after the convolution (a constant layer)", optional=True),
)
_DCN_OUTPUTS = (TensorSpec("out", "float32", ("N", "Cout", "Ho", "Wo"), "modulated deformable convolution"),)
_DCN_DOC = ("DCNv2 (modulated deformable convolution): bilinear samples at kernel tap + offset, "
            "0 outside the map, times the mask, then the convolution plus bias. fp32/fp16 only.")
MODULATED_DEFORM_CONV_V1 = PluginSpec(
    "ModulatedDeformConv2d", _DCN_FIELDS, _DCN_INPUTS, _DCN_OUTPUTS, version="1",
    namespace=TRT_PLUGIN_NAMESPACE, doc=_DCN_DOC, interface="IPluginV2DynamicExt")
MODULATED_DEFORM_CONV_V2 = PluginSpec(
    "ModulatedDeformConv2d", _DCN_FIELDS, _DCN_INPUTS, _DCN_OUTPUTS, version="2",
    namespace=TRT_PLUGIN_NAMESPACE, doc=_DCN_DOC, interface="IPluginV3")
# Plugins of TensorRT's own library, newest interface first (the one trtnet prefers when registered).
TENSORRT_PLUGINS: tuple[PluginSpec, ...] = (MODULATED_DEFORM_CONV_V2, MODULATED_DEFORM_CONV_V1)


def get_spec(name: str) -> PluginSpec:
    """The spec of plugin ``name`` with a clear error for unknown names."""
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown trtnet plugin {name!r}; known: {sorted(SPECS)}") from None
