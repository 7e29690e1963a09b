"""Loader of trtnet's compiled extension ``trtnet._C`` and the plugin library.

trtnet works without them (the emulator runs the NumPy reference of each plugin), so
importing this module never fails. Code that needs them calls :func:`require` /
:func:`require_cuda`, which raise an ImportError that says what is missing and how to
build it.

``_C`` holds the plugins' CPU twins (``inverse_warp``, ``fast_nms`` on NumPy arrays)
and, when built with nvcc, the kernel launchers (``inverse_warp_device``,
``fast_nms_device``, ``assemble_masks_device`` on device pointers);
:func:`inverse_warp_cupy`, :func:`fast_nms_cupy` and :func:`assemble_masks_cupy` wrap
those for CuPy arrays.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

_HERE = Path(__file__).resolve().parents[1]  # the trtnet package folder, where _C is built
_PACKAGE = "trtnet"
PLUGIN_LIBRARY_NAME = "libtrtnet_plugins.so"


def _installed_twin() -> Any:
    """trtnet._C of the installed package, for when the source tree (the current directory, first
    on sys.path under ``python -m``) shadows an installation that has the built extension."""
    import importlib.machinery
    import importlib.util
    import sys

    if f"{_PACKAGE}._C" in sys.modules and sys.modules[f"{_PACKAGE}._C"] is None:
        return None  # imports of it are blocked on purpose (Python's convention; tests use it)
    for entry in sys.path:
        folder = Path(entry or ".").resolve() / "trtnet"
        if folder == _HERE or not folder.is_dir():
            continue
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = folder / f"_C{suffix}"
            if candidate.is_file():
                spec = importlib.util.spec_from_file_location(f"{_PACKAGE}._C", candidate)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[spec.name] = module
                return module
    return None


try:
    from trtnet import _C  # type: ignore[attr-defined]
    IMPORT_ERROR: str | None = None
except ImportError as exc:  # not built (e.g. run from the source tree), or built for another Python
    IMPORT_ERROR = str(exc)
    try:
        _C = _installed_twin()
    except ImportError:
        _C = None
    if _C is not None:
        IMPORT_ERROR = None

AVAILABLE: bool = _C is not None
BUILD_INFO: dict[str, Any] = dict(_C.BUILD_INFO) if _C is not None else {"cuda": False}
HAS_CUDA: bool = bool(BUILD_INFO.get("cuda"))

# Path of libtrtnet_plugins.so installed next to _C (None when it was not built: it needs
# nvcc and TensorRT's headers at build time). trtnet.plugins.library_path() reads this.
_BUILT = Path(_C.__file__).resolve().parent if _C is not None and getattr(_C, "__file__", None) else _HERE
PLUGIN_LIBRARY: str | None = str(_BUILT / PLUGIN_LIBRARY_NAME) if (_BUILT / PLUGIN_LIBRARY_NAME).is_file() else None

_HOW_TO_BUILD = (
    "Build it with `pip install .` (or `pip install -e .`) from the trtnet source tree on a machine "
    "with a C++17 compiler (and cmake >= 3.18; nvcc for the CUDA launchers; TensorRT headers via "
    "TensorRT_ROOT for the plugin library). Set TRTNET_BUILD_EXT=1 to see the build error."
)


def require() -> ModuleType:
    """``trtnet._C``, or an ImportError explaining that it was not built and how to build it."""
    if _C is None:
        raise ImportError(f"trtnet._C (the compiled plugin CPU twins) is not available: {IMPORT_ERROR}. {_HOW_TO_BUILD}")
    return _C


def require_cuda() -> ModuleType:
    """``trtnet._C`` built with the CUDA launchers, or an ImportError saying why not."""
    module = require()
    if not HAS_CUDA:
        raise ImportError(f"trtnet._C was built without CUDA (no nvcc at build time), so the kernel "
                          f"launchers are missing. {_HOW_TO_BUILD}")
    return module


def _stream_handle(stream: Any) -> int:
    if stream is None:
        import cupy

        stream = cupy.cuda.get_current_stream()
    return int(getattr(stream, "ptr", stream))


def _dtype_name(array: Any) -> str:
    name = str(array.dtype)
    if name not in ("float32", "float16"):
        raise TypeError(f"expected float32 or float16 device arrays, got {name}")
    return name


def inverse_warp_cupy(feature: Any, flow: Any, scale: Any = None, bias: Any = None, *,
                      flow_divisor: float = 8.0, out: Any = None, stream: Any = None) -> Any:
    """Run the InverseWarp CUDA kernel on CuPy arrays (NCHW, contiguous, one float dtype)."""
    module = require_cuda()
    import cupy

    dtype = _dtype_name(feature)
    arrays = [cupy.ascontiguousarray(a) if a is not None else None for a in (feature, flow, scale, bias)]
    feature, flow, scale, bias = arrays
    for name, a in (("flow", flow), ("scale", scale), ("bias", bias)):
        if a is not None and str(a.dtype) != dtype:
            raise TypeError(f"{name} must have the dtype of feature ({dtype}), got {a.dtype}")
    if out is None:
        out = cupy.empty_like(feature)
    module.inverse_warp_device(
        dtype, list(feature.shape), list(scale.shape) if scale is not None else [],
        list(bias.shape) if bias is not None else [], float(flow_divisor),
        feature.data.ptr, flow.data.ptr, scale.data.ptr if scale is not None else 0,
        bias.data.ptr if bias is not None else 0, out.data.ptr, _stream_handle(stream))
    return out


def fast_nms_cupy(boxes: Any, scores: Any, coeffs: Any, *, top_k: int = 200, conf_thresh: float = 0.05,
                  nms_thresh: float = 0.5, max_det: int = 100, background_class: int = 0,
                  stream: Any = None) -> tuple:
    """Run the FastNMS CUDA kernels on CuPy arrays; returns (count, boxes, scores, classes, coeffs)."""
    module = require_cuda()
    import cupy

    dtype = _dtype_name(boxes)
    boxes, scores, coeffs = (cupy.ascontiguousarray(a) for a in (boxes, scores, coeffs))
    n, a, c = scores.shape
    k = coeffs.shape[2]
    count = cupy.zeros((n,), cupy.int32)
    out_boxes = cupy.empty((n, max_det, 4), boxes.dtype)
    out_scores = cupy.empty((n, max_det), boxes.dtype)
    out_classes = cupy.empty((n, max_det), cupy.int32)
    out_coeffs = cupy.empty((n, max_det, k), boxes.dtype)
    size = module.fast_nms_workspace_size(n, a, c, top_k, max_det, background_class)
    workspace = cupy.empty((max(size, 1),), cupy.uint8)
    module.fast_nms_device(
        dtype, n, a, c, k, top_k, conf_thresh, nms_thresh, max_det, background_class,
        boxes.data.ptr, scores.data.ptr, coeffs.data.ptr, count.data.ptr, out_boxes.data.ptr,
        out_scores.data.ptr, out_classes.data.ptr, out_coeffs.data.ptr, workspace.data.ptr,
        _stream_handle(stream))
    return count, out_boxes, out_scores, out_classes, out_coeffs


def assemble_masks_cupy(protos: Any, coeffs: Any, boxes: Any, frame_hw: tuple[int, int], *, count: Any = None,
                        threshold: float = 0.5, crop: bool = True, output: str = "mask", out: Any = None,
                        stream: Any = None) -> Any:
    """Run the mask assembly kernels (csrc/masks) on CuPy arrays.

    protos [Hp, Wp, K] or [1, Hp, Wp, K]; coeffs [D, K]; boxes [D, 4] relative (coeffs'
    dtype); count: None or a device int32 array of one element (detections past it are
    left untouched in ``out``). Returns ``out``: uint8 [D, H, W] 0/1 ('mask') or float32
    ('prob', before the threshold).
    """
    module = require_cuda()
    import cupy

    proto_dtype, det_dtype = _dtype_name(protos), _dtype_name(coeffs)
    protos, coeffs, boxes = (cupy.ascontiguousarray(a) for a in (protos, coeffs, boxes))
    if str(boxes.dtype) != det_dtype:
        raise TypeError(f"boxes must have the dtype of coeffs ({det_dtype}), got {boxes.dtype}")
    proto_shape = list(protos.shape[1:] if protos.ndim == 4 else protos.shape)
    if output not in ("mask", "prob"):
        raise ValueError(f"output must be 'mask' or 'prob', got {output!r}")
    h, w = int(frame_hw[0]), int(frame_hw[1])
    n = int(coeffs.shape[0])
    out_dtype = cupy.uint8 if output == "mask" else cupy.float32
    if out is None:
        out = cupy.zeros((n, h, w), out_dtype)
    elif tuple(out.shape) != (n, h, w) or out.dtype != out_dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous {cupy.dtype(out_dtype).name} array of shape {(n, h, w)}, "
                         f"got {out.dtype} {tuple(out.shape)}")
    if count is not None and (str(count.dtype) != "int32" or count.size != 1):
        raise TypeError(f"count must be a device int32 array of one element, got {count.dtype} of size {count.size}")
    item = out.dtype.itemsize
    workspace = cupy.empty((max(module.mask_workspace_size(n, *proto_shape[:2]), 1),), cupy.uint8)
    module.assemble_masks_device(
        proto_dtype, det_dtype, proto_shape, n, [h, w], float(threshold), bool(crop), output,
        protos.data.ptr, coeffs.data.ptr, boxes.data.ptr, count.data.ptr if count is not None else 0,
        out.data.ptr, w * item, h * w * item, workspace.data.ptr, _stream_handle(stream))
    return out
