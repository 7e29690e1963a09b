"""The CUDA kernels on a real GPU (through trtnet._C's launchers and CuPy) give the CPU
twins' results bit for bit. Needs CuPy, a GPU and a CUDA build of trtnet._C, so it is
skipped here and in CI (there the kernels run through tests/test_kernels_cuda_emulated.py);
run it on a GPU machine after `pip install .`.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import nms_boundaries
from trtnet.plugins import extension as _ext
from trtnet.plugins import reference

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (GPU-only test)")
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("no device")
except Exception as exc:  # noqa: BLE001
    pytest.skip(f"no usable CUDA device ({exc})", allow_module_level=True)
if not _ext.HAS_CUDA:
    pytest.skip("trtnet._C was built without CUDA", allow_module_level=True)

C = _ext.require_cuda()
DTYPES = (np.float32, np.float16)
# tests/test_kernels_device_emulated.py runs this file on CPU-emulated kernels: smaller sizes.
EMULATED = os.environ.get("TRTNET_EMULATED_DEVICE") == "1"


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverse_warp_kernel_matches_twin_on_reference_data(reference_dir, dtype):
    out = np.load(reference_dir / "vid_resnet50" / "outputs.npz")
    for level in ("P4", "P5"):
        args = [out[f"nonkey/warp/keyframe_{level}"], out[f"nonkey/flow/flow_{level}"],
                out[f"nonkey/flow/scale_{level}"], out[f"nonkey/flow/bias_{level}"]]
        args = [a.astype(dtype) for a in args]
        device = _ext.inverse_warp_cupy(*(cupy.asarray(a) for a in args))
        np.testing.assert_array_equal(cupy.asnumpy(device), C.inverse_warp(*args))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_inverse_warp_kernel_matches_twin_randomized(dtype, seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = 2, 37, 19, 45
    feature = rng.standard_normal((n, c, h, w)).astype(dtype)
    flow = (rng.standard_normal((n, 2, h, w)) * 4).astype(dtype)
    flow[0, 0, 0, :3] = [np.nan, np.inf, -1e4]
    scale = rng.standard_normal((1, c, h, w)).astype(dtype)
    bias = rng.standard_normal((n, 1, h, w)).astype(dtype)
    device = _ext.inverse_warp_cupy(*(cupy.asarray(a) for a in (feature, flow, scale, bias)))
    np.testing.assert_array_equal(cupy.asnumpy(device), C.inverse_warp(feature, flow, scale, bias))


def _nms_case(rng, n, a, c, k, dtype, levels=0):
    centre = rng.uniform(0, 1, (n, a, 2))
    size = rng.uniform(0.02, 0.4, (n, a, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1)
    logits = rng.standard_normal((n, a, c)) * 1.5
    scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    if levels:
        scores = np.floor(scores * levels) / levels  # many exact ties
    coeffs = rng.uniform(-1, 1, (n, a, k))
    return tuple(x.astype(dtype) for x in (boxes, scores, coeffs))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("settings", [dict(), dict(top_k=7, max_det=9, nms_thresh=0.3),
                                      dict(top_k=1024, max_det=1024, conf_thresh=0.0, background_class=-1)])
def test_fast_nms_kernels_match_twin(dtype, settings):
    rng = np.random.default_rng(len(settings))
    for levels in (0, 8):
        priors = (300 if EMULATED else 2500) if not settings else 1100
        inputs = _nms_case(rng, 2, priors, 5 if EMULATED else 41, 32, dtype, levels)
        device = _ext.fast_nms_cupy(*(cupy.asarray(x) for x in inputs), **settings)
        for got, want in zip(device, C.fast_nms(*inputs, **settings)):
            np.testing.assert_array_equal(cupy.asnumpy(got), want)


@pytest.mark.parametrize("case, dtype", [(c, d) for c in sorted(nms_boundaries.CASES) for d in DTYPES
                                         if nms_boundaries.exact_in(c, d)])  # only where the values are exact
def test_fast_nms_kernels_keep_what_upstream_keeps_at_the_boundaries(case, dtype):
    args, settings, expected = nms_boundaries.inputs(case, dtype)
    device = _ext.fast_nms_cupy(*(cupy.asarray(x) for x in args), **settings)
    assert nms_boundaries.kept_priors([cupy.asnumpy(x) for x in device]) == expected


def test_fast_nms_kernels_match_upstream(reference_dir):
    out = np.load(reference_dir / "mobilenetv2" / "outputs.npz")
    priors = out["priors"]
    boxes = reference.decode_boxes(out["img0/head/loc"], priors)
    a = priors.shape[0]
    scores = np.zeros((1, a, 81), np.float32)
    scores[0, :, 0] = out["img0/head/conf_bg"][0]
    scores[0, np.arange(a), out["img0/head/conf_argmaxfg"][0].astype(np.int64) + 1] = out["img0/head/conf_maxfg"][0]
    scores[0, out["img0/head/candidate_idx"]] = out["img0/head/conf_candidates"]
    coeffs = np.zeros((1, a, 32), np.float32)
    coeffs[0, out["img0/head/candidate_idx"]] = out["img0/head/mask_candidates"]
    count, _, det_scores, classes, _ = (cupy.asnumpy(x) for x in _ext.fast_nms_cupy(
        cupy.asarray(boxes), cupy.asarray(scores), cupy.asarray(coeffs)))
    assert count.tolist() == [100]
    np.testing.assert_array_equal(classes[0], out["img0/fastnms/det_classes"])
    np.testing.assert_array_equal(det_scores[0], out["img0/fastnms/det_scores"])


@pytest.mark.parametrize("case,pass_name", [("vid_resnet50", "key"), ("mobilenetv2", "img0")])
def test_mask_assembly_kernels_match_twin_and_upstream(reference_dir, case, pass_name):
    out = np.load(reference_dir / case / "outputs.npz")
    protos, coeffs = out[f"{pass_name}/proto"], out[f"{pass_name}/fastnms/det_mask_coefs"]
    boxes, want = out[f"{pass_name}/fastnms/det_boxes"], out[f"{pass_name}/fastnms/masks"]
    if EMULATED:  # a few detections: the emulation runs every block on CPU threads
        coeffs, boxes, want = coeffs[:6], boxes[:6], want[:6]
    hw = want.shape[1:]
    device = cupy.asnumpy(_ext.assemble_masks_cupy(*(cupy.asarray(a) for a in (protos, coeffs, boxes)), hw))
    np.testing.assert_array_equal(device, C.assemble_masks(protos, coeffs, boxes, frame_hw=hw))
    assert int((device != want).sum()) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_assembly_kernels_match_twin_randomized(dtype):
    rng = np.random.default_rng(7)
    protos = np.maximum(rng.standard_normal((1, 138, 138, 32)), 0).astype(dtype)
    coeffs = np.tanh(rng.standard_normal((9, 32))).astype(dtype)
    corner = rng.uniform(0, 1, (9, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0, 0.5, (9, 2))], 1).astype(dtype)
    count = cupy.asarray(np.array([5], np.int32))
    for hw, output in (((37, 53), "mask"), ((45, 61), "prob")):
        args = [cupy.asarray(a) for a in (protos, coeffs, boxes)]
        device = cupy.asnumpy(_ext.assemble_masks_cupy(*args, hw, count=count, output=output))
        want = C.assemble_masks(protos, coeffs, boxes, frame_hw=hw, count=5, output=output)
        np.testing.assert_array_equal(device[:5], want)
        assert not device[5:].any()  # past the device count: left as allocated (zeros)


def test_mask_assembler_on_device_arrays_uses_the_kernels(reference_dir):
    from trtnet.runtime.masks import assemble_masks

    out = np.load(reference_dir / "mobilenetv2" / "outputs.npz")
    top = 4 if EMULATED else 100
    want = out["img0/fastnms/masks"][:top]
    got = assemble_masks(cupy.asarray(out["img0/proto"]), cupy.asarray(out["img0/fastnms/det_mask_coefs"][:top]),
                         cupy.asarray(out["img0/fastnms/det_boxes"][:top]), frame_hw=want.shape[1:])
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(cupy.asnumpy(got), want.astype(bool))
