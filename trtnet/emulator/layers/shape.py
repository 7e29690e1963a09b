"""Constant, resize, shuffle, identity, concatenation, slice, gather and shape: the layers that
move values (and make them) rather than compute them."""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from .. import trt_types as trt  # the types; ..trt (the recording module) re-exports them
from .base import DT, EmulatorTypeError, FLOATS, ILayer, _Attr, _dims, _enum, _f32, _float


class IConstantLayer(ILayer):
    _kind = "Constant"
    _layer_type = trt.LayerType.CONSTANT
    shape = _Attr(None, _dims)
    weights = _Attr(None)

    def __init__(self, network, inputs, shape, weights):
        super().__init__(network, inputs)
        self._attrs.update(shape=shape, weights=weights)

    def _output_dtypes(self):
        w = self._get("weights")
        if w.dtype == DT.INT8:
            raise EmulatorTypeError(self._err("INT8 constants are not emulated; quantize a float constant with add_quantize"))
        return [w.dtype]

    def _output_shapes(self):
        return [self._get("shape")]

    def _execute(self, xs):
        if not hasattr(self, "_value"):
            self._value = self._get("weights").numpy().reshape(tuple(self._get("shape")))
        return [self._value]


class IResizeLayer(ILayer):
    _kind = "Resize"
    _layer_type = trt.LayerType.RESIZE
    resize_mode = _Attr(trt.InterpolationMode.NEAREST, _enum(trt.InterpolationMode))
    coordinate_transformation = _Attr(trt.ResizeCoordinateTransformation.ASYMMETRIC,
                                      _enum(trt.ResizeCoordinateTransformation))
    selector_for_single_pixel = _Attr(trt.ResizeSelector.FORMULA, _enum(trt.ResizeSelector))
    nearest_rounding = _Attr(trt.ResizeRoundMode.FLOOR, _enum(trt.ResizeRoundMode))
    cubic_coeff = _Attr(-0.75, _float)
    exclude_outside = _Attr(False, bool)

    @property
    def shape(self) -> trt.Dims:
        """Output dimensions (setting them clears ``scales``)."""
        self._record("shape", "get")
        return self._attrs.get("shape")

    @shape.setter
    def shape(self, value) -> None:
        self._record("shape", "set")
        dims = trt.Dims(value)
        if any(d < 0 for d in dims):
            raise ValueError(self._err(f"shape {tuple(dims)} has unknown dims; a dynamic output size "
                                       "needs a shape tensor as input 1 (set_input)"))
        if len(dims) != len(self._in(0)._shape()):
            raise ValueError(self._err(f"shape {tuple(dims)} must have the input's rank {len(self._in(0)._shape())}"))
        self._pop("scales")
        self._set("shape", dims)

    @property
    def scales(self) -> list[float]:
        """Per-dimension scales: output = floor(input * scale) (setting them clears ``shape``)."""
        self._record("scales", "get")
        return self._attrs.get("scales")

    @scales.setter
    def scales(self, value) -> None:
        self._record("scales", "set")
        scales = [float(s) for s in value]
        if len(scales) != len(self._in(0)._shape()):
            raise ValueError(self._err(f"{len(scales)} scales for a rank-{len(self._in(0)._shape())} input"))
        if any(s <= 0 for s in scales):
            raise ValueError(self._err(f"scales must be positive, got {scales}"))
        self._pop("shape")
        self._set("scales", scales)

    def _max_inputs(self) -> int:
        return 2  # 1: output shape tensor (dynamic resize)

    def _on_set_input(self, index):
        if index == 1:
            self._pop("shape")
            self._pop("scales")

    def _output_dtypes(self):
        dtype = self._in(0)._dtype()
        self._require(dtype, FLOATS)
        return [dtype]

    def _out_dims(self, in_shape, shape_value=None):
        if shape_value is not None:
            return [int(v) for v in shape_value]
        if "shape" in self._attrs:
            return list(self._attrs["shape"])
        if "scales" in self._attrs:
            return [int(np.floor(d * s)) if d >= 0 else -1 for d, s in zip(in_shape, self._attrs["scales"])]
        raise ValueError(self._err("set shape or scales (or a shape tensor as input 1) before using the output"))

    def _output_shapes(self):
        if len(self._inputs) > 1 and self._inputs[1] is not None:
            return [trt.Dims([-1] * len(self._in(0)._shape()))]
        shape = self._in(0)._shape()
        if "shape" not in self._attrs and "scales" not in self._attrs:
            return [trt.Dims([-1] * len(shape))]  # not configured yet (TensorRT also defers)
        return [trt.Dims(self._out_dims(shape))]

    def _execute(self, xs):
        x = xs[0]
        out_dims = self._out_dims(x.shape, xs[1] if len(xs) > 1 and xs[1] is not None else None)
        mode = self._get("resize_mode")
        changed = [ax for ax in range(x.ndim) if out_dims[ax] != x.shape[ax]]
        limit = 3 if mode == trt.InterpolationMode.LINEAR else 8
        if changed and changed[0] < x.ndim - limit:
            raise ValueError(self._err(f"{mode.name} resizes at most the last {limit} dims, dims {changed} change"))
        y = _f32(x)
        for ax in changed:
            y = K.resize_axis(y, ax, out_dims[ax], mode, self._get("coordinate_transformation"),
                              self._get("selector_for_single_pixel"), self._get("nearest_rounding"))
        return [self._to(y, self._output_dtypes()[0])]


class IShuffleLayer(ILayer):
    _kind = "Shuffle"
    _layer_type = trt.LayerType.SHUFFLE
    first_transpose = _Attr(lambda l: trt.Permutation(range(len(l._in(0)._shape()))), trt.Permutation)
    second_transpose = _Attr(None, trt.Permutation)
    zero_is_placeholder = _Attr(True, bool)

    @property
    def reshape_dims(self) -> trt.Dims:
        """Reshape after first_transpose: 0 copies the input dim (zero_is_placeholder), -1 is inferred."""
        self._record("reshape_dims", "get")
        return self._attrs.get("reshape_dims")

    @reshape_dims.setter
    def reshape_dims(self, value) -> None:
        self._record("reshape_dims", "set")
        dims = trt.Dims(value)
        if sum(d == -1 for d in dims) > 1 or any(d < -1 for d in dims):
            raise ValueError(self._err(f"reshape_dims {tuple(dims)}: at most one -1, no other negative value"))
        self._set("reshape_dims", dims)

    def _max_inputs(self) -> int:
        return 2  # 1: reshape dims as a shape tensor

    def _on_set_input(self, index):
        if index == 1:
            self._pop("reshape_dims")

    def _perm(self, name, rank):
        p = self._get(name)
        if p is None:
            return tuple(range(rank))
        if sorted(p) != list(range(rank)):
            raise ValueError(self._err(f"{name} {tuple(p)} is not a permutation of {rank} axes"))
        return tuple(p)

    def _reshape(self, shape, dims, known: bool):
        dims = list(dims)
        out = []
        for i, d in enumerate(dims):
            if d == 0 and self._get("zero_is_placeholder"):
                if i >= len(shape):
                    raise ValueError(self._err(f"reshape_dims {tuple(dims)}: placeholder 0 at {i} past the input rank"))
                out.append(shape[i])
            else:
                out.append(d)
        if -1 in out:
            i = out.index(-1)
            rest = [d for j, d in enumerate(out) if j != i]
            if any(d < 0 for d in shape) or any(d < 0 for d in rest):
                if known:
                    raise ValueError(self._err("cannot infer -1 in reshape_dims"))
                return out
            vol, rvol = int(np.prod(shape, dtype=np.int64)), int(np.prod(rest, dtype=np.int64))
            if rvol == 0 or vol % rvol:
                raise ValueError(self._err(f"cannot reshape {tuple(shape)} to {tuple(dims)}"))
            out[i] = vol // rvol
        if all(d >= 0 for d in shape) and all(d >= 0 for d in out):
            if int(np.prod(shape, dtype=np.int64)) != int(np.prod(out, dtype=np.int64)):
                raise ValueError(self._err(f"cannot reshape {tuple(shape)} ({int(np.prod(shape))} values) "
                                           f"to {tuple(out)}"))
        return out

    def _output_dtypes(self):
        return [self._in(0)._dtype()]

    def _output_shapes(self):
        shape = list(self._in(0)._shape())
        p1 = self._perm("first_transpose", len(shape))
        shape = [shape[i] for i in p1]
        if len(self._inputs) > 1 and self._inputs[1] is not None:
            n = self._inputs[1]._shape()
            shape = [-1] * (n[0] if len(n) == 1 and n[0] >= 0 else 0)
        elif self._attrs.get("reshape_dims") is not None:
            shape = self._reshape(shape, self._attrs["reshape_dims"], known=False)
        p2 = self._perm("second_transpose", len(shape))
        return [trt.Dims([shape[i] for i in p2])]

    def _execute(self, xs):
        x = xs[0]
        x = np.transpose(x, self._perm("first_transpose", x.ndim))
        if len(xs) > 1 and xs[1] is not None:
            x = x.reshape(self._reshape(x.shape, [int(v) for v in xs[1]], known=True))
        elif self._attrs.get("reshape_dims") is not None:
            x = x.reshape(self._reshape(x.shape, self._attrs["reshape_dims"], known=True))
        x = np.transpose(x, self._perm("second_transpose", x.ndim))
        return [x]


class IIdentityLayer(ILayer):
    _kind = "Identity"
    _layer_type = trt.LayerType.IDENTITY

    def _execute(self, xs):
        return [xs[0]]


class IConcatenationLayer(ILayer):
    _kind = "Concatenation"
    _layer_type = trt.LayerType.CONCATENATION
    axis = _Attr(lambda l: max(0, len(l._in(0)._shape()) - 3), int)

    def _output_dtypes(self):
        types = self._in_types()
        if len(set(types)) != 1:
            listing = ", ".join(f"{t._name!r}: {t._dtype().name}" for t in self._inputs)
            raise EmulatorTypeError(self._err(f"all inputs must have the same type ({listing})"))
        return [types[0]]

    def _output_shapes(self):
        shapes = self._in_shapes()
        rank = len(shapes[0])
        axis = self._get("axis")
        if not 0 <= axis < rank:  # TensorRT takes no negative axis
            raise ValueError(self._err(f"axis {axis} out of range [0, {rank}) for rank {rank}"))
        out = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != rank or any(a != b and a >= 0 and b >= 0 for i, (a, b) in enumerate(zip(s, shapes[0])) if i != axis):
                raise ValueError(self._err(f"shapes {[tuple(x) for x in shapes]} differ outside axis {axis}"))
        sizes = [s[axis] for s in shapes]
        out[axis] = -1 if any(d < 0 for d in sizes) else sum(sizes)
        return [trt.Dims(out)]

    def _execute(self, xs):
        return [np.concatenate(xs, axis=self._get("axis"))]


class ISliceLayer(ILayer):
    _kind = "Slice"
    _layer_type = trt.LayerType.SLICE
    start = _Attr(None, _dims)
    shape = _Attr(None, _dims)
    stride = _Attr(None, _dims)

    def __init__(self, network, inputs, start, shape, stride):
        super().__init__(network, inputs)
        self._attrs.update(start=start, shape=shape, stride=stride)

    def _max_inputs(self) -> int:
        return 4  # 1 start, 2 size, 3 stride as shape tensors

    def _dyn(self, i):
        return len(self._inputs) > i and self._inputs[i] is not None

    def _output_shapes(self):
        rank = len(self._in(0)._shape())
        if self._dyn(2):
            return [trt.Dims([-1] * rank)]
        shape = self._get("shape")
        if not (len(shape) == len(self._get("start")) == len(self._get("stride")) == rank):
            raise ValueError(self._err(f"start/shape/stride must have the input's rank {rank}"))
        return [shape]

    def _execute(self, xs):
        x = xs[0]
        start = [int(v) for v in xs[1]] if self._dyn(1) else list(self._get("start"))
        size = [int(v) for v in xs[2]] if self._dyn(2) else list(self._get("shape"))
        stride = [int(v) for v in xs[3]] if self._dyn(3) else list(self._get("stride"))
        index = []
        for ax, (s, n, st) in enumerate(zip(start, size, stride)):
            last = s + (n - 1) * st
            if n > 0 and not (0 <= s < x.shape[ax] and 0 <= last < x.shape[ax]):
                raise IndexError(self._err(
                    f"axis {ax}: slice start {s}, size {n}, stride {st} leaves the input dim {x.shape[ax]} "
                    "(STRICT_BOUNDS)"))
            index.append(np.arange(n) * st + s if st < 0 else slice(s, s + (n - 1) * st + 1 if n else s, st))
        out = x
        for ax, ix in enumerate(index):
            out = out[(slice(None),) * ax + (ix,)]
        return [out]


class IGatherLayer(ILayer):
    """GatherMode.DEFAULT: ``output = take(input, indices, axis)``."""

    _kind = "Gather"
    _layer_type = trt.LayerType.GATHER
    axis = _Attr(0, int)
    num_elementwise_dims = _Attr(0, int)
    mode = _Attr(trt.GatherMode.DEFAULT, _enum(trt.GatherMode))

    def __init__(self, network, inputs, axis):
        super().__init__(network, inputs)
        self._attrs["axis"] = axis

    def _output_dtypes(self):
        self._require(self._in(1)._dtype(), (DT.INT32, DT.INT64), "indices")
        if self._get("mode") != trt.GatherMode.DEFAULT or self._get("num_elementwise_dims"):
            raise NotImplementedError(self._err("only GatherMode.DEFAULT with num_elementwise_dims 0 is emulated"))
        return [self._in(0)._dtype()]

    def _output_shapes(self):
        s, i = list(self._in(0)._shape()), list(self._in(1)._shape())
        ax = self._get("axis")
        if not 0 <= ax < len(s):
            raise ValueError(self._err(f"axis {ax} out of range for rank {len(s)}"))
        return [trt.Dims(s[:ax] + i + s[ax + 1:])]

    def _execute(self, xs):
        x, idx = xs
        ax = self._get("axis")
        if idx.size and (idx.min() < -x.shape[ax] or idx.max() >= x.shape[ax]):
            raise IndexError(self._err(f"indices outside [{-x.shape[ax]}, {x.shape[ax]}) on axis {ax}"))
        return [np.take(x, idx.astype(np.int64), axis=ax)]


class IShapeLayer(ILayer):
    """The input's dimensions as a 1-D INT64 tensor (TensorRT 10+)."""

    _kind = "Shape"
    _layer_type = trt.LayerType.SHAPE

    def _output_dtypes(self):
        return [DT.INT64]

    def _output_shapes(self):
        return [trt.Dims([len(self._in(0)._shape())])]

    def _execute(self, xs):
        return [np.array(xs[0].shape, dtype=np.int64)]
