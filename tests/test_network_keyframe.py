"""The keyframe network (run on the emulator) against upstream PyTorch's outputs.

One emulator pass per reference pass (vid_resnet50 ``key`` and ``fullB``, mobilenetv2
``img0`` and ``img1``), shared by all tests of this module. Tolerances:
* feature maps and head outputs: 4x upstream's own fp32 error on that tensor (manifest
  ``max_abs_fp32_vs_fp64_upstream``; see upstream_match.SPREAD_FACTOR for why 4);
* softmax scores, boxes: 1e-4 absolute (as suggested by the reference manifest);
* detections: matched one to one (same class, score and box within 1e-4).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from upstream_match import BOX_ATOL, SCORE_ATOL, assert_close_to_upstream, assert_detections_match
from trtnet import names
from trtnet.config import get_config
from trtnet.network import emulate_keyframe
from trtnet.verification.reference_data import ReferenceCase
from trtnet.network.weights import WeightStore

PASSES = [("vid_resnet50", "key"), ("vid_resnet50", "fullB"), ("mobilenetv2", "img0"), ("mobilenetv2", "img1")]
FEATURES = (
    *names.BACKBONE, *names.FPN1, names.FPN1_LATERAL3, *names.FPN, names.PROTO, names.LOC,
)
FETCH = (names.PREPROCESSED, *FEATURES, names.CONF, names.MASK, names.PRIORS, names.BOXES)


@functools.lru_cache(maxsize=None)
def _weights(case_dir: str) -> WeightStore:
    return WeightStore.load(ReferenceCase(case_dir).weights_path)


@functools.lru_cache(maxsize=None)
def _run(case_dir: str, pass_name: str) -> dict[str, np.ndarray]:
    case = ReferenceCase(case_dir)
    return emulate_keyframe(_weights(case_dir), get_config(case.config_name), case.image(pass_name), fetch=FETCH)


@pytest.fixture(scope="module", params=PASSES, ids=lambda p: f"{p[0]}-{p[1]}")
def run(request, reference_dir):
    case_name, pass_name = request.param
    case = ReferenceCase(reference_dir / case_name)
    return case, pass_name, _run(str(case.path), pass_name)


def test_preprocessing_matches_upstream(run):
    case, pass_name, out = run
    frame = case.frame_of(pass_name)
    if f"{frame}/preprocessed" not in case.inputs.files:
        pytest.skip(f"the reference stores the preprocessed image for one frame per case, not {frame}")
    ref = case.inputs[f"{frame}/preprocessed"]
    # Bilinear resize and normalisation in float32 in both: within a few float32 ulps of ~2.6.
    np.testing.assert_allclose(out[names.PREPROCESSED], ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tensor", FEATURES)
def test_feature_maps_match_upstream(run, tensor):
    case, pass_name, out = run
    spec = case.spec(pass_name, tensor)
    assert_close_to_upstream(spec.take(out[tensor]), case.get(pass_name, tensor), case, tensor,
                             f"{pass_name}/{tensor}")


def test_class_scores_match_upstream(run):
    case, pass_name, out = run
    conf = out[names.CONF][0]
    ref = lambda n: case.get(pass_name, n)  # noqa: E731
    np.testing.assert_allclose(conf[:, 0], ref("head/conf_bg")[0], rtol=0, atol=SCORE_ATOL)
    np.testing.assert_allclose(conf[:, 1:].max(1), ref("head/conf_maxfg")[0], rtol=0, atol=SCORE_ATOL)
    idx = ref("head/candidate_idx").astype(np.int64)
    np.testing.assert_allclose(conf[idx], ref("head/conf_candidates"), rtol=0, atol=SCORE_ATOL)


def test_mask_coefficients_match_upstream(run):
    case, pass_name, out = run
    mask = out[names.MASK][0]
    idx = case.get(pass_name, "head/candidate_idx").astype(np.int64)
    assert_close_to_upstream(mask[idx], case.get(pass_name, "head/mask_candidates"), case, "head/mask_candidates")
    if case.has(pass_name, "head/mask_P5P6P7"):
        ref = case.get(pass_name, "head/mask_P5P6P7")
        assert_close_to_upstream(mask[-len(ref):], ref, case, "head/mask_P5P6P7")


def test_decoded_boxes_of_candidates_match_upstream_detections(run):
    # Every reference detection's box is the decoded box of some prior of ours.
    case, pass_name, out = run
    boxes = out[names.BOXES][0]
    for box in case.get(pass_name, "fastnms/det_boxes"):
        assert np.abs(boxes - box).max(1).min() <= BOX_ATOL


def test_detections_match_upstream_one_to_one(run):
    case, pass_name, out = run
    assert_detections_match(out, case.detections(pass_name), pass_name, case)
