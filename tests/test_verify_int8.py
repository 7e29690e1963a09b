"""verify with an int8 plan: the ranges come from a calibration cache (trtnet.calibrate).

The numbers are not the point here (int8 on the random-weight reference network is far
from fp32; see tests/test_calibrate.py): these check that the cache reaches the network on
both backends, so verify runs and reports instead of stopping.
"""

from __future__ import annotations

import pytest

from runtime_fakes import fake_gpu  # noqa: F401 - fixture
from trtnet import calibrate, verify
from trtnet.verification.reference_data import ReferenceCase

PLAN = "int8_backbone_fpn"


@pytest.fixture(scope="module")
def cache_file(reference_dir, tmp_path_factory):
    case = ReferenceCase(reference_dir / "mobilenetv2")
    cache = calibrate.calibrate(case.weights_path, None, [case.image("img0")], plan=PLAN, method="max")
    return cache.save(tmp_path_factory.mktemp("cal") / "cache.json")


def test_an_int8_plan_without_ranges_says_how_to_calibrate(reference_dir, capsys):
    code = verify.main([str(reference_dir / "mobilenetv2"), "--frames", "img0", "--precision", PLAN])
    assert code == 1
    assert "trtnet.calibrate" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["emulator", "tensorrt"])
def test_the_calibration_cache_reaches_the_network(backend, reference_dir, cache_file, capsys, request):
    if backend == "tensorrt":
        request.getfixturevalue("fake_gpu")
    code = verify.main([str(reference_dir / "mobilenetv2"), "--backend", backend, "--frames", "img0",
                        "--precision", PLAN, "--calibration-cache", str(cache_file)])
    report = capsys.readouterr().out
    assert code == 1, report  # int8 misses the fp32 tolerances
    assert "SUMMARY" in report  # it ran (an impossible run prints only an error)
    assert f"precision {PLAN}" in report and "1 passes run" in report
