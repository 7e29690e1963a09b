"""Priors (anchors) against upstream's make_priors output in the reference data."""

from __future__ import annotations

import numpy as np
import pytest

from trtnet.config import get_config
from trtnet.network.priors import feature_sizes, make_priors, num_priors

CASES = {"vid_resnet50": "yolact_edge_vid_resnet50", "mobilenetv2": "yolact_edge_mobilenetv2"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_priors_match_upstream(reference_dir, case):
    # Both computed in double then stored as float32: agreement to 1e-7 (in fact bit-exact).
    ref = np.load(reference_dir / case / "outputs.npz")["priors"]
    got = make_priors(get_config(CASES[case]))
    assert got.shape == ref.shape == (19248, 4)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7)


def test_feature_sizes_of_550_input():
    cfg = get_config("yolact_edge_resnet50")
    assert feature_sizes(cfg) == [(69, 69), (35, 35), (18, 18), (9, 9), (5, 5)]
    assert num_priors(cfg) == 19248


def test_yolact_plus_priors_match_upstream_p3(reference_dir):
    # The reference stores only the P3 level (69*69 cells x 9 anchors) although it says P3..P7;
    # its head/loc covers all 57,744 priors. Order: row, column, then scale, then aspect ratio.
    out = np.load(reference_dir / "yolact_plus_resnet50" / "outputs.npz")
    ref = out["priors"]
    assert ref.shape == (69 * 69 * 9, 4)
    assert out["img0/head/loc"].shape == (1, 57744, 4)
    got = make_priors(get_config("yolact_plus_resnet50"))
    assert got.shape == (57744, 4) and num_priors(get_config("yolact_plus_resnet50")) == 57744
    np.testing.assert_allclose(got[: len(ref)], ref, rtol=0, atol=1e-7)


def test_yolact_plus_anchors_are_not_square():
    # cell (0, 0) of P3: scale 24 * 2^(j/3), ar in (1, 1/2, 2) as sqrt(ar) (preapply_sqrt False)
    got = make_priors(get_config("yolact_plus_base"))[:9].astype(np.float64)
    for j in range(3):
        s = 24 * 2 ** (j / 3) / 550
        for a, ar in enumerate((1, 0.5, 2)):
            cx, cy, w, h = got[3 * j + a]
            assert (cx, cy) == pytest.approx((0.5 / 69, 0.5 / 69), abs=1e-7)
            assert (w, h) == pytest.approx((s * np.sqrt(ar), s / np.sqrt(ar)), rel=1e-6)


@pytest.mark.parametrize("name, grids, count", [
    # stride-2 steps map n to (n - 1) // 2 + 1: 400 -> 200, 100, 50; 700 -> 350, 175, 88
    ("yolact_im400", (50, 25, 13, 7, 4), 10077),
    ("yolact_im700", (88, 44, 22, 11, 6), 30963),
    ("yolact_base", (69, 35, 18, 9, 5), 19248),
    ("yolact_darknet53", (69, 35, 18, 9, 5), 19248),
])
def test_grids_follow_max_size(name, grids, count):
    cfg = get_config(name)
    assert feature_sizes(cfg) == [(g, g) for g in grids]
    assert num_priors(cfg) == count == sum(g * g for g in grids) * 3
    priors = make_priors(cfg)
    assert priors.shape == (count, 4)
    # sizes use max_size (upstream's cfg.max_size), square anchors: first prior is scale/size
    first_scale = cfg.anchors.scales[0][0]
    assert priors[0, 2] == priors[0, 3] == np.float32(first_scale / cfg.max_size)
    # last prior: centre of the last P7 cell, largest anchor (ar 2 -> sqrt 2)
    last = priors[-1].astype(np.float64)
    g = grids[-1]
    assert last[:2] == pytest.approx(((g - 0.5) / g, (g - 0.5) / g), abs=1e-7)
    assert last[2] == pytest.approx(cfg.anchors.scales[-1][0] * np.sqrt(2) / cfg.max_size, rel=1e-6)
