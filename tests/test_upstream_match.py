"""The per-tensor upstream tolerances of the network tests (tests/upstream_match.py)."""

from __future__ import annotations

import numpy as np
import pytest

import upstream_match as um
from trtnet import names
from trtnet.verification.reference_data import ReferenceCase


@pytest.fixture(scope="module")
def cases(reference_dir):
    return {n: ReferenceCase(reference_dir / n) for n in ("mobilenetv2", "vid_resnet50")}


def test_tolerance_is_four_times_the_manifests_fp32_spread(cases):
    case = cases["mobilenetv2"]
    spread = case.manifest["tolerances"]["max_abs_fp32_vs_fp64_upstream"]["backbone/C3"]
    assert um.feature_atol(case, names.C3) == 4 * spread
    assert um.fp32_spread(case, names.PROTO) == case.manifest["tolerances"]["max_abs_fp32_vs_fp64_upstream"]["head/proto"]


def test_every_stand_in_is_measured_in_some_manifest(cases):
    measured = set()
    for case in cases.values():
        measured |= set(case.manifest["tolerances"]["max_abs_fp32_vs_fp64_upstream"])
    assert sorted(set(um._SPREAD_KEY.values()) - measured) == []


def test_unmeasured_tensor_is_an_error_not_a_pass(cases):
    with pytest.raises(KeyError, match="no fp32 spread"):
        um.feature_atol(cases["mobilenetv2"], "flow/flow_P4")  # a keyframe-only case has no flow


def test_error_exactly_at_the_tolerance_passes_and_one_ulp_above_fails(cases):
    case = cases["mobilenetv2"]
    tol = um.feature_atol(case, names.C3)
    want = np.zeros(3)
    um.assert_close_to_upstream(np.array([0.0, tol, -tol]), want, case, names.C3)
    with pytest.raises(AssertionError, match="backbone/C3: max error"):
        um.assert_close_to_upstream(np.array([0.0, np.nextafter(tol, 1.0), 0.0]), want, case, names.C3)


def test_an_error_the_old_relative_bound_passed_now_fails(cases):
    # 1e-3 x max|ref| on backbone/C3 of img0 is 9.9e-3; the emulator's measured error is 1.7e-5.
    # A defect moving C3 by 1e-3 (60x the measured error) passed the old bound and fails now.
    case = cases["mobilenetv2"]
    ref = case.get("img0", names.C3).astype(np.float64)
    got = ref.copy()
    got.flat[0] += 1e-3
    assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()  # the old bound
    with pytest.raises(AssertionError):
        um.assert_close_to_upstream(got, ref, case, names.C3)
