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
