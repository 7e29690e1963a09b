"""FastNMS CPU twin (trtnet._C.fast_nms): upstream Detect outputs, the NumPy reference
(trtnet.plugins.reference.fast_nms) and edge cases.

The reference stores only the candidate rows of the softmax (priors whose best
foreground score > 0.05) plus, for every prior, the background score and the best
foreground score and class. A full [1, A, C] score tensor is rebuilt from those: rows
of non-candidates hold their true best foreground score at its class (<= 0.05, so they
stay non-candidates exactly as upstream) and 0 elsewhere; candidates' rows are exact.
Boxes come from the stored raw regression and priors through reference.decode_boxes.
"""

from __future__ import annotations

import numpy as np
import pytest

import nms_boundaries
from compiled import compiled_extension
from trtnet.plugins import reference


C = compiled_extension()
# (case, pass): 41 classes (YouTube-VIS) for the video case, 81 (COCO) for MobileNetV2.
PASSES = (("vid_resnet50", "key"), ("vid_resnet50", "nonkey"), ("vid_resnet50", "fullB"),
          ("mobilenetv2", "img0"), ("mobilenetv2", "img1"))
PASS_IDS = [f"{case}-{prefix}" for case, prefix in PASSES]
FIELDS = ("count", "boxes", "scores", "classes", "coeffs")


@pytest.fixture(scope="module")
def outputs(reference_dir):
    cache = {}

    def load(case):
        if case not in cache:
            cache[case] = np.load(reference_dir / case / "outputs.npz")
        return cache[case]

    return load


def _detect_inputs(out, prefix):
    priors = out["priors"]
    boxes = reference.decode_boxes(out[f"{prefix}/head/loc"], priors)
    a = priors.shape[0]
    cand = out[f"{prefix}/head/candidate_idx"]
    rows = out[f"{prefix}/head/conf_candidates"]
    scores = np.zeros((1, a, rows.shape[1]), np.float32)
    scores[0, :, 0] = out[f"{prefix}/head/conf_bg"][0]
    scores[0, np.arange(a), out[f"{prefix}/head/conf_argmaxfg"][0].astype(np.int64) + 1] = out[f"{prefix}/head/conf_maxfg"][0]
    scores[0, cand] = rows
    coeffs = np.zeros((1, a, out[f"{prefix}/head/mask_candidates"].shape[1]), np.float32)
    coeffs[0, cand] = out[f"{prefix}/head/mask_candidates"]
    return boxes, scores, coeffs


def _assert_same(got, want):
    for name, g, w in zip(FIELDS, got, want):
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)


@pytest.mark.parametrize("case, prefix", PASSES, ids=PASS_IDS)
def test_matches_upstream_detect(outputs, case, prefix):
    vid = outputs(case)
    count, boxes, scores, classes, coeffs = C.fast_nms(*_detect_inputs(vid, prefix))
    assert count.tolist() == [100]
    np.testing.assert_array_equal(classes[0], vid[f"{prefix}/fastnms/det_classes"])
    np.testing.assert_array_equal(scores[0], vid[f"{prefix}/fastnms/det_scores"])  # copied inputs: exact
    np.testing.assert_array_equal(coeffs[0], vid[f"{prefix}/fastnms/det_mask_coefs"])
    # Boxes come from our decode of the same regression: float32 rounding of exp/mul (measured 6e-8).
    np.testing.assert_allclose(boxes[0], vid[f"{prefix}/fastnms/det_boxes"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case, prefix", PASSES, ids=PASS_IDS)
def test_matches_numpy_reference_on_upstream_inputs(outputs, case, prefix):
    inputs = _detect_inputs(outputs(case), prefix)
    _assert_same(C.fast_nms(*inputs), reference.fast_nms(*inputs))


def _random_case(rng, n, a, c, k, box_scale=0.3):
    centre = rng.uniform(0, 1, (n, a, 2)).astype(np.float32)
    size = rng.uniform(0.01, box_scale, (n, a, 2)).astype(np.float32)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
    logits = rng.standard_normal((n, a, c)).astype(np.float32) * 2
    scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    coeffs = rng.uniform(-1, 1, (n, a, k)).astype(np.float32)
    return boxes, scores.astype(np.float32), coeffs


@pytest.mark.parametrize("seed", range(6))
def test_matches_numpy_reference_randomized(seed):
    rng = np.random.default_rng(seed)
    n, a, c, k = int(rng.integers(1, 4)), int(rng.integers(1, 700)), int(rng.integers(2, 12)), int(rng.integers(0, 9))
    settings = dict(top_k=int(rng.integers(1, 60)), conf_thresh=float(rng.uniform(0, 0.4)),
                    nms_thresh=float(rng.uniform(0.1, 0.9)), max_det=int(rng.integers(1, 120)),
                    background_class=int(rng.integers(-1, c)))
    inputs = _random_case(rng, n, a, c, k)
    _assert_same(C.fast_nms(*inputs, **settings), reference.fast_nms(*inputs, **settings))


@pytest.mark.parametrize("a", [1, 255, 256, 257, 1023, 1025])
def test_prior_counts_around_block_sizes(a):
    inputs = _random_case(np.random.default_rng(a), 2, a, 6, 4)
    _assert_same(C.fast_nms(*inputs, top_k=50, max_det=40), reference.fast_nms(*inputs, top_k=50, max_det=40))


def test_all_scores_equal_follow_the_tie_rule():
    # Every prior scores 0.25 in every class and boxes are far apart: nothing is suppressed,
    # so the order is purely the tie rule: class asc, then prior asc.
    a, c = 7, 5
    x = np.arange(a, dtype=np.float32)[:, None] * 0.1
    boxes = np.concatenate([x, x * 0, x + 0.05, x * 0 + 0.05], 1)[None].astype(np.float32)
    scores = np.full((1, a, c), 0.25, np.float32)
    coeffs = np.arange(a, dtype=np.float32).reshape(1, a, 1)
    count, _, out_scores, classes, out_coeffs = C.fast_nms(boxes, scores, coeffs, top_k=3, max_det=10)
    assert count.tolist() == [10]
    assert classes[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert out_coeffs[0, :, 0].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]  # smallest priors first
    assert np.all(out_scores == np.float32(0.25))


def test_negative_zero_ties_with_zero():
    boxes = np.array([[[0, 0, 0.1, 0.1], [0.5, 0.5, 0.6, 0.6]]], np.float32)
    scores = np.array([[[0.0, 0.9, 0.0], [0.0, 0.9, -0.0]]], np.float32)
    coeffs = np.arange(2, dtype=np.float32).reshape(1, 2, 1)
    got = C.fast_nms(boxes, scores, coeffs, max_det=4)
    _assert_same(got, reference.fast_nms(boxes, scores, coeffs, max_det=4))
    assert got[3][0].tolist() == [0, 0, 1, 1]
    assert got[4][0, 2:, 0].tolist() == [0, 1]


def test_no_candidate_gives_zero_count_and_empty_slots():
    boxes, scores, coeffs = _random_case(np.random.default_rng(7), 2, 50, 4, 3)
    scores[:] = 0.01
    count, out_boxes, out_scores, classes, out_coeffs = C.fast_nms(boxes, scores, coeffs, max_det=5)
    assert count.tolist() == [0, 0]
    assert np.all(classes == -1) and not out_boxes.any() and not out_scores.any() and not out_coeffs.any()


def test_one_image_empty_the_other_not():
    boxes, scores, coeffs = _random_case(np.random.default_rng(8), 2, 40, 4, 2)
    scores[0, :, 1:] = 0.0
    _assert_same(C.fast_nms(boxes, scores, coeffs, max_det=30), reference.fast_nms(boxes, scores, coeffs, max_det=30))


def test_nan_score_row_is_never_a_candidate():
    boxes, scores, coeffs = _random_case(np.random.default_rng(9), 1, 30, 5, 2)
    scores[0, 3, 2] = np.nan
    scores[0, 3, 1] = 0.99
    got = C.fast_nms(boxes, scores, coeffs, max_det=200)
    _assert_same(got, reference.fast_nms(boxes, scores, coeffs, max_det=200))
    assert not np.any(np.all(got[1][0] == boxes[0, 3], axis=1))


@pytest.mark.parametrize("case", sorted(nms_boundaries.CASES))
def test_boundaries_keep_what_upstream_keeps(case):
    # Exactly on nms_thresh / conf_thresh and zero-area boxes: the NumPy reference and the
    # host twin both give upstream's detections (worked out by hand in nms_boundaries.py).
    args, settings, expected = nms_boundaries.inputs(case)
    assert nms_boundaries.kept_priors(reference.fast_nms(*args, **settings)) == expected
    assert nms_boundaries.kept_priors(C.fast_nms(*args, **settings)) == expected


def test_tiny_identical_and_degenerate_boxes():
    boxes = np.array([[[0.2, 0.2, 0.2, 0.2],       # zero area
                       [0.2, 0.2, 0.2, 0.2],       # the same zero-area box: 0 / 0 = NaN -> dropped
                       [0.1, 0.1, 0.1 + 1e-7, 0.1 + 1e-7],  # tiny
                       [0.1, 0.1, 0.1 + 1e-7, 0.1 + 1e-7],  # identical tiny: IoU 1 -> suppressed
                       [0.6, 0.6, 0.5, 0.5],       # inverted (negative width and height)
                       [0.3, 0.3, 0.4, 0.4]]], np.float32)
    scores = np.array([[[0.0, 0.9], [0.0, 0.8], [0.0, 0.7], [0.0, 0.6], [0.0, 0.5], [0.0, 0.4]]], np.float32)
    coeffs = np.arange(6, dtype=np.float32).reshape(1, 6, 1)
    got = C.fast_nms(boxes, scores, coeffs)
    _assert_same(got, reference.fast_nms(boxes, scores, coeffs))
    assert got[4][0, : got[0][0], 0].tolist() == [0, 2, 4, 5]


def test_suppressed_boxes_still_suppress():
    # b overlaps a (suppressed), c overlaps b only: upstream Fast NMS drops c too.
    boxes = np.array([[[0.0, 0, 1, 1], [0.3, 0, 1.3, 1], [0.6, 0, 1.6, 1]]], np.float32)
    scores = np.array([[[0, 0.9], [0, 0.8], [0, 0.7]]], np.float32)
    got = C.fast_nms(boxes, scores, np.zeros((1, 3, 0), np.float32), nms_thresh=0.5)
    assert got[0].tolist() == [1]


@pytest.mark.parametrize("background_class", [-1, 0, 2])
def test_background_column_choice(background_class):
    inputs = _random_case(np.random.default_rng(10), 1, 80, 4, 2)
    kw = dict(background_class=background_class, max_det=300)
    _assert_same(C.fast_nms(*inputs, **kw), reference.fast_nms(*inputs, **kw))


def test_float16_outputs_are_the_selected_inputs():
    inputs16 = tuple(a.astype(np.float16) for a in _random_case(np.random.default_rng(11), 2, 300, 6, 5))
    got = C.fast_nms(*inputs16, top_k=30, max_det=50)
    assert got[1].dtype == np.float16 and got[3].dtype == np.int32
    want = reference.fast_nms(*(a.astype(np.float32) for a in inputs16), top_k=30, max_det=50)
    for name, g, w in zip(FIELDS, got, want):
        np.testing.assert_array_equal(g.astype(w.dtype), w, err_msg=name)


@pytest.mark.parametrize(
    "kw, message",
    [(dict(top_k=0), "top_k must be in"), (dict(max_det=2000), "max_det must be in"),
     (dict(background_class=9), "background_class")],
)
def test_bad_settings_are_named(kw, message):
    inputs = _random_case(np.random.default_rng(0), 1, 4, 3, 2)
    with pytest.raises(ValueError, match=message):
        C.fast_nms(*inputs, **kw)


def test_bad_shapes_are_named():
    boxes, scores, coeffs = _random_case(np.random.default_rng(0), 1, 4, 3, 2)
    with pytest.raises(ValueError, match=r"boxes must be \[N, A, 4\]"):
        C.fast_nms(boxes[..., :3], scores, coeffs)
    with pytest.raises(ValueError, match=r"scores must be \[N, A, C\]"):
        C.fast_nms(boxes, scores[:, :3], coeffs)
    with pytest.raises(TypeError, match="one dtype"):
        C.fast_nms(boxes, scores.astype(np.float16), coeffs)


def test_workspace_size_grows_with_every_dimension():
    base = C.fast_nms_workspace_size(1, 19248, 81)
    assert base > 19248 * 5 + 80 * 200 * 8
    assert C.fast_nms_workspace_size(2, 19248, 81) > base
    assert C.fast_nms_workspace_size(1, 19248, 81, top_k=400) > base
