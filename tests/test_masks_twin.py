"""The CUDA mask assembler's CPU twin (trtnet._C.assemble_masks, csrc/masks) reproduces
upstream postprocess bit for bit: the cropped 138x138 sigmoid masks, the upsampled masks
before the threshold and the binary masks (0 differing pixels) on the passes whose full
prototypes are stored (key, img0; later passes store prototype channels [0:4] only).
On every pass of every case the crop / resize geometry is checked exactly: where the
reference's pre-threshold masks are non-zero is where a mask of ones is non-zero, and
every reference mask pixel lies there.

No tolerance: the twin does upstream's float operations (sequential FMA dot product,
SLEEF's exp, PyTorch's FMA-contracted bilinear blend) with one rounding each, so any
difference is a bug. The kernels equal the twin (tests/test_masks_kernels.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from compiled import compiled_extension
from trtnet.runtime.masks import assemble_masks as numpy_assemble_masks
from trtnet.verification.reference_data import ReferenceCase


C = compiled_extension()

FIRST_PASSES = [("vid_resnet50", "key"), ("mobilenetv2", "img0")]
ALL_PASSES = FIRST_PASSES + [("vid_resnet50", "nonkey"), ("vid_resnet50", "fullB"), ("mobilenetv2", "img1")]


@pytest.fixture(scope="module")
def cases(reference_dir):
    return {name: ReferenceCase(reference_dir / name) for name in ("vid_resnet50", "mobilenetv2")}


def _inputs(cases, case, pass_name, top=None):
    ref = cases[case]
    det = ref.detections(pass_name)
    coeffs, boxes = det["det_mask_coefs"][:top], det["det_boxes"][:top]
    return ref.get(pass_name, "proto"), coeffs, boxes, det


@pytest.mark.parametrize("case,pass_name", FIRST_PASSES)
def test_lowres_cropped_masks_are_upstreams_bit_for_bit(cases, case, pass_name):
    protos, coeffs, boxes, det = _inputs(cases, case, pass_name, top=5)
    got = C.lowres_masks(protos, coeffs, boxes)
    np.testing.assert_array_equal(got, det["masks_lowres_cropped_top5"])


@pytest.mark.parametrize("case,pass_name", FIRST_PASSES)
def test_masks_before_threshold_are_upstreams_bit_for_bit(cases, case, pass_name):
    protos, coeffs, boxes, det = _inputs(cases, case, pass_name, top=5)
    want = det["masks_prebin_top5"]
    got = C.assemble_masks(protos, coeffs, boxes, frame_hw=want.shape[1:], output="prob")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case,pass_name", FIRST_PASSES)
def test_binary_masks_have_no_differing_pixel(cases, case, pass_name):
    protos, coeffs, boxes, det = _inputs(cases, case, pass_name)
    want = det["masks"]
    got = C.assemble_masks(protos, coeffs, boxes, frame_hw=want.shape[1:])
    assert got.dtype == np.uint8 and got.shape == want.shape == (100,) + want.shape[1:]
    assert int((got != want).sum()) == 0


@pytest.mark.parametrize("case,pass_name", ALL_PASSES)
def test_crop_and_resize_geometry_on_every_pass(cases, case, pass_name):
    _, _, boxes, det = _inputs(cases, case, pass_name)
    hw = det["masks"].shape[1:]
    # Prototypes and coefficients of ones: sigmoid(32) is exactly 1.0f inside every crop.
    support = C.assemble_masks(np.ones((138, 138, 32), np.float32), np.ones((len(boxes), 32), np.float32),
                               boxes, frame_hw=hw, output="prob") > 0
    np.testing.assert_array_equal(det["masks_prebin_top5"] > 0, support[:5])
    assert not (det["masks"].astype(bool) & ~support).any()


def test_crop_bounds_pinned_on_integer_edges():
    # 0.5 * 138 = 69: lower bound 68 is kept (>=), upper bound 70 is not (<); y: [0.25 * 138 - 1,
    # 0.75 * 138 + 1) = [33.5, 104.5) -> rows 34..104.
    boxes = np.array([[0.5, 0.25, 0.5, 0.75]], np.float32)
    low = C.lowres_masks(np.ones((138, 138, 32), np.float32), np.ones((1, 32), np.float32), boxes)[0]
    cols, rows = np.flatnonzero(low.any(0)), np.flatnonzero(low.any(1))
    assert (cols[0], cols[-1], rows[0], rows[-1]) == (68, 69, 34, 104)


def test_threshold_is_strict():
    # Equal logits from a constant grid: every pixel inside the crop has the same value v.
    protos = np.full((4, 4, 1), 0.25, np.float32)
    full_box = np.array([[0, 0, 1, 1]], np.float32)
    v = float(C.assemble_masks(protos, np.ones((1, 1), np.float32), full_box, frame_hw=(3, 5), output="prob")[0, 1, 2])
    at = C.assemble_masks(protos, np.ones((1, 1), np.float32), full_box, frame_hw=(3, 5), threshold=v)
    below = C.assemble_masks(protos, np.ones((1, 1), np.float32), full_box, frame_hw=(3, 5),
                             threshold=float(np.nextafter(np.float32(v), np.float32(0))))
    assert not at.any() and below.all()


@pytest.mark.parametrize("frame_hw", [(1, 1), (138, 138), (69, 300), (301, 17), (720, 1280)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_any_frame_size_matches_the_numpy_assembler(cases, frame_hw, dtype):
    protos, coeffs, boxes, _ = _inputs(cases, "mobilenetv2", "img0", top=3)
    protos, coeffs, boxes = (a.astype(dtype) for a in (protos, coeffs, boxes))
    got = C.assemble_masks(protos, coeffs, boxes, frame_hw=frame_hw, output="prob")
    want = numpy_assemble_masks(protos, coeffs, boxes, frame_hw=frame_hw, threshold=None, compiled=False)
    # trtnet.runtime.masks array path: NumPy's exp and matmul, the blend without FMA: float32 ulps apart.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_count_limits_and_clamps_detections(cases):
    protos, coeffs, boxes, det = _inputs(cases, "vid_resnet50", "key", top=6)
    hw = det["masks"].shape[1:]
    assert C.assemble_masks(protos, coeffs, boxes, frame_hw=hw, count=np.int32(4)).shape == (4,) + hw
    assert C.assemble_masks(protos, coeffs, boxes, frame_hw=hw, count=np.array([9])).shape == (6,) + hw
    assert C.assemble_masks(protos, coeffs, boxes, frame_hw=hw, count=-3).shape == (0,) + hw
    np.testing.assert_array_equal(C.assemble_masks(protos, coeffs, boxes, frame_hw=hw, count=2),
                                  det["masks"][:2])


def test_crop_off_keeps_the_whole_grid(cases):
    protos, coeffs, boxes, _ = _inputs(cases, "mobilenetv2", "img0", top=2)
    low = C.lowres_masks(protos, coeffs, boxes, crop=False)
    assert (low > 0).all()
    cropped = C.lowres_masks(protos, coeffs, boxes)
    np.testing.assert_array_equal(cropped[cropped > 0], low[cropped > 0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(protos=np.zeros((2, 138, 138, 32), np.float32)), "protos must be"),
    (dict(coeffs=np.zeros((3, 31), np.float32)), "coeffs must be"),
    (dict(boxes=np.zeros((3, 5), np.float32)), "boxes must be"),
    (dict(boxes=np.zeros((3, 4), np.float16)), "dtype of coeffs"),
    (dict(protos=np.zeros((138, 138, 32), np.float64)), "float32 or float16"),
    (dict(frame_hw=(0, 10)), "frameH and frameW"),
    (dict(frame_hw=(10,)), "frame_hw"),
    (dict(output="probabilities"), "output"),
    (dict(count=[1, 2]), "count"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = dict(protos=np.zeros((138, 138, 32), np.float32), coeffs=np.zeros((3, 32), np.float32),
                boxes=np.zeros((3, 4), np.float32), frame_hw=(10, 12))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        C.assemble_masks(args.pop("protos"), args.pop("coeffs"), args.pop("boxes"), **args)


def test_workspace_size_covers_the_lowres_masks():
    assert C.mask_workspace_size(100) == -(-100 * 138 * 138 * 4 // 256) * 256
    assert C.mask_workspace_size(0) == 0


def test_mixed_detection_dtypes_widen_instead_of_rounding_boxes(cases):
    from trtnet.runtime.masks import assemble_masks

    protos, coeffs, boxes, det = _inputs(cases, "vid_resnet50", "key")
    got = assemble_masks(protos, coeffs.astype(np.float16).astype(np.float32).astype(np.float16), boxes,
                         frame_hw=det["masks"].shape[1:])
    want = C.assemble_masks(protos, coeffs.astype(np.float16).astype(np.float32), boxes, frame_hw=det["masks"].shape[1:])
    np.testing.assert_array_equal(got, want.astype(bool))
