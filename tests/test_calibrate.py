"""INT8 calibration (trtnet.calibrate), precision presets, and the build CLI's cache option.

The expensive part (fp32 emulator passes over calibration images) runs once per module:
the mobilenetv2 reference image img0, calibrated through the CLI (about 5 s).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from trtnet import build, names
from trtnet import calibrate as cal
from trtnet.precision import COMPONENTS, PRESETS, PrecisionError, as_plan
from trtnet.verification.reference_data import ReferenceCase

MOBILENET = "yolact_edge_mobilenetv2"


# -- presets -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, int8, fp16", [
    ("fp32", (), ()),
    ("fp16", (), COMPONENTS),
    ("int8_backbone", ("backbone",), ("fpn", "proto", "head", "flow")),
    ("int8_backbone_fpn", ("backbone", "fpn"), ("proto", "head", "flow")),
    ("int8_all", COMPONENTS, ()),
    ("upstream", ("backbone", "proto", "flow"), ("fpn", "head")),
])
def test_presets_name_the_paper_variants(name, int8, fp16):
    plan = as_plan(name)
    for comp in COMPONENTS:
        assert plan.of(comp) == ("int8" if comp in int8 else "fp16" if comp in fp16 else "fp32"), comp
    assert plan.of("detect") == plan.of("preprocess") == "fp32"  # softmax, decode, NMS stay fp32
    assert plan.preset == name


def test_a_preset_can_start_a_custom_plan():
    plan = as_plan("int8_backbone_fpn,fpn=fp32")
    assert (plan.of("backbone"), plan.of("fpn"), plan.of("head")) == ("int8", "fp32", "fp16")
    assert plan.preset is None
    assert as_plan("fp16,backbone=int8").preset == "int8_backbone"


def test_an_unknown_plan_name_lists_the_presets():
    with pytest.raises(PrecisionError, match="unknown precision plan 'int8_backbon'; presets: "
                       + ", ".join(PRESETS)):
        as_plan("int8_backbon")


# -- threshold selection ----------------------------------------------------------------


def _hist(values) -> cal.AbsHistogram:
    h = cal.AbsHistogram()
    h.add(np.asarray(values, np.float32))
    return h


def test_entropy_clips_a_few_huge_outliers():
    # N(0,1) with 5 values at 50: the threshold must cover the Gaussian bulk (|x| < 3 holds
    # 99.7% of it) yet sit far below the outliers, which int8 cannot afford to span.
    x = np.random.default_rng(0).standard_normal(1_000_000)
    x[:5] = 50.0
    amax = _hist(x).amax("entropy")
    assert 3.0 < amax < 0.2 * 50.0


def test_entropy_keeps_the_whole_range_of_a_uniform_distribution():
    # Every value is equally informative: clipping only loses, so the threshold is the max.
    x = np.random.default_rng(1).uniform(-3.0, 3.0, 1_000_000)
    h = _hist(x)
    assert h.amax("entropy") >= 0.98 * h.max


def test_relu_zeros_do_not_pull_the_threshold_down():
    # Half exact zeros (a ReLU output) plus |N(0,1)|: the zero spike is exact in int8 and
    # must not decide the range (without bin-0 handling the threshold dropped to ~0.75).
    x = np.abs(np.random.default_rng(2).standard_normal(1_000_000))
    x[::2] = 0.0
    assert _hist(x).amax("entropy") > 3.0


def _int8_error(x: np.ndarray, amax: float) -> float:
    """Mean squared error of symmetric int8 fake quantization with range ``amax``."""
    scale = amax / 127.0
    return float(np.mean((np.clip(np.round(x / scale), -127, 127) * scale - x) ** 2))


def test_entropy_range_quantizes_a_heavy_tailed_tensor_better_than_its_max():
    # Why entropy calibration exists: a Laplace tensor with rare large values loses less to
    # clipping at the KL threshold than to the coarse steps |max| / 127 would give
    # (measured: threshold 10.2 of max 14.5, squared error 0.56x that of the max range).
    x = np.random.default_rng(4).laplace(size=1_000_000)
    h = _hist(x)
    assert _int8_error(x, h.amax("entropy")) < 0.7 * _int8_error(x, h.amax("max"))


def test_max_method_is_the_largest_magnitude():
    assert _hist([0.5, -7.25, 3.0]).amax("max") == 7.25


def test_histogram_grows_its_range_without_rebinning_error():
    # A later, larger batch doubles the range; the counts equal one histogram of all values
    # over the final range (old bin edges are edges of the merged bins).
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1.0, 10_000), rng.uniform(0, 3.5, 10_000)
    h = cal.AbsHistogram()
    h.add(a.astype(np.float32))
    top = float(np.float32(a.max()))
    h.add(b.astype(np.float32))
    assert h.top == top * 4
    expected, _ = np.histogram(np.concatenate([a, b]), bins=cal.NUM_BINS, range=(0, h.top))
    assert np.abs(h.counts - expected).sum() <= 4  # float32 vs float64 at a few bin edges


def test_unknown_method_is_an_error():
    with pytest.raises(cal.CalibrationError, match="unknown calibration method 'minmax'; expected one of entropy, max"):
        cal.Calibrator(["x"]).amax("minmax")


# -- the cache -------------------------------------------------------------------------------


def _cache(**kw) -> cal.CalibrationCache:
    args = dict(amax={"preprocessed": 2.5, "backbone/C3": 9.0}, config=MOBILENET,
                plan="int8_backbone_fpn", method="entropy", num_images=2)
    args.update(kw)
    return cal.CalibrationCache(**args)


def test_cache_round_trip_is_atomic(tmp_path):
    path = tmp_path / "sub" / "calib.json"
    path.parent.mkdir()  # outputs never create folders (trtnet.media.files)
    _cache().save(path)
    _cache(num_images=3).save(path)
    loaded = cal.CalibrationCache.load(path)
    assert loaded == _cache(num_images=3)
    assert loaded.trtnet_version and json.loads(path.read_text())["format"] == cal.CACHE_FORMAT
    assert [p.name for p in path.parent.iterdir()] == ["calib.json"]


def test_cache_keeps_observed_max_and_summarises_clipping(tmp_path):
    cache = _cache(observed_max={"preprocessed": 2.5, "backbone/C3": 18.0})
    loaded = cal.CalibrationCache.load(cache.save(tmp_path / "c.json"))
    assert loaded.observed_max == {"preprocessed": 2.5, "backbone/C3": 18.0}
    assert loaded.clipping_summary() == "2 ranges, 1 below the observed max (median 0.50x, lowest 0.50x: backbone/C3)"


def test_cache_of_another_config_is_refused():
    with pytest.raises(cal.CalibrationError, match="was made for yolact_edge_mobilenetv2, not yolact_edge_resnet50"):
        _cache().check("yolact_edge_resnet50", [])


def test_cache_missing_tensors_names_them_and_how_to_recalibrate():
    with pytest.raises(cal.CalibrationError, match=r"no range for 2 tensor\(s\) that int8 layers of plan "
                       r"int8_all read: fpn/P3, proto_net.1; recalibrate with python -m trtnet.calibrate "
                       r"--precision-plan int8_all"):
        _cache().check(MOBILENET, ["backbone/C3", "fpn/P3", "proto_net.1"], plan="int8_all")


@pytest.mark.parametrize("text, message", [
    ("{]", "is not JSON"),
    ('{"amax": {}}', "is not a trtnet calibration cache"),
    (json.dumps({**_cache().to_json(), "amax": {"x": 0.0}}), "range of 'x' must be a positive number"),
])
def test_bad_cache_files_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(cal.CalibrationError, match=message):
        cal.CalibrationCache.load(path)


# -- calibration on the emulator -------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenet(reference_dir, tmp_path_factory):
    """img0 of the mobilenetv2 reference calibrated through the CLI (entropy, int8_backbone_fpn)."""
    import cv2

    case = ReferenceCase(reference_dir / "mobilenetv2")
    images = tmp_path_factory.mktemp("calib_images")
    cv2.imwrite(str(images / "img0.png"), case.image("img0"))  # png: the same pixels
    out = images.parent / "calib.json"
    rc = cal.main(["--weights", str(case.weights_path), "--images", str(images),
                   "--precision-plan", "int8_backbone_fpn", "-o", str(out)])
    assert rc == 0
    return case, cal.CalibrationCache.load(out)


def test_cli_cache_covers_exactly_the_int8_inputs(mobilenet):
    case, cache = mobilenet
    required = cal.required_tensors(case.weights_path, case.config_name, "int8_backbone_fpn")
    assert sorted(cache.amax) == sorted(required)
    assert (cache.config, cache.plan, cache.method, cache.num_images) == (
        MOBILENET, "int8_backbone_fpn", "entropy", 1)
    # ReLU6 outputs can never exceed 6; the normalised image stays within its fp32 range.
    relu6 = [v for k, v in cache.amax.items() if k.endswith("relu6")]
    assert relu6 and max(relu6) <= 6.0
    assert cache.amax[names.PREPROCESSED] <= np.abs(case.inputs["img0/preprocessed"]).max()


@pytest.fixture(scope="module")
def int8_pass(mobilenet):
    from trtnet.network.yolact_edge import emulate_keyframe

    case, cache = mobilenet
    plan = as_plan("int8_backbone_fpn").with_amax(cache.amax)
    return case, emulate_keyframe(case.weights_path, case.config_name, case.image("img0"), plan=plan)


def test_int8_backbone_fpn_runs_from_the_cli_cache(int8_pass):
    # The reference network (random weights) is chaotic: +-1 grey level of input noise moves
    # C5 by 29% of its range in fp32 and reorders the top-5 classes, so its int8 pass is far
    # from upstream whatever the scales. Measured (entropy scales from img0), max |error| /
    # range: C3 0.59, C5 1.07, P3 0.67, proto 0.54, loc 0.66 (max scales: 0.18, 0.65, 0.32,
    # 0.27, 0.53; fp16: <= 0.03). Here: the calibrated network runs and detects.
    case, out = int8_pass
    assert out[names.DET_COUNT][0] > 0 and np.isfinite(out[names.DET_SCORES]).all()
    assert np.isfinite(out[names.PROTO]).all()


# int8 keeping the detections is judged where it can be: on a well-conditioned checkpoint,
# against an independent fake quantization (tests/test_int8_accuracy.py); this random-weight
# reference network reorders its top-5 classes under +-1 grey level of input noise alone.


def test_video_calibration_covers_the_nonkeyframe_network(reference_dir):
    # Keyframe on image A, non-keyframe on image B with A's state: one cache for both engines.
    case = ReferenceCase(reference_dir / "vid_resnet50")
    cache = cal.calibrate(case.weights_path, None, [case.image("key"), case.image("nonkey")],
                          plan="fp16,flow=int8", method="max")
    nonkey = cal.required_tensors(case.weights_path, case.config_name, "fp16,flow=int8", nonkeyframe=True)
    assert nonkey and sorted(cache.amax) == sorted(nonkey)  # the keyframe network has no flow net
    assert names.KEY_LATERAL3 in cache.amax
    assert cache.config == "yolact_edge_vid_resnet50" and cache.num_images == 2  # recognised from the weights


def test_a_plan_without_int8_needs_no_calibration():
    with pytest.raises(cal.CalibrationError, match="plan fp16 has no int8 component"):
        cal.calibrate({}, MOBILENET, [np.zeros((8, 8, 3), np.uint8)], plan="fp16")


def test_cli_reports_a_missing_image_folder(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"checked after the image folder")
    rc = cal.main(["--weights", str(weights), "--images", str(tmp_path / "nope"), "-o", str(tmp_path / "c.json")])
    assert rc == 1
    assert f"calibration images: {tmp_path / 'nope'} is not a directory" in capsys.readouterr().err


# -- the build CLI --------------------------------------------------------------------------


@pytest.fixture
def random_mobilenet(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from trtnet.network.random_weights import random_weights

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    path = tmp_path / "m.safetensors"
    save_file(random_weights(MOBILENET), str(path))
    return path


def test_build_int8_without_cache_says_how_to_make_one(random_mobilenet, tmp_path, capsys):
    rc = build.main(["--weights", str(random_mobilenet), "-o", str(tmp_path / "e"),
                     "--precision-plan", "int8_backbone_fpn"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "precision plan int8_backbone_fpn quantizes to int8 and needs calibrated activation ranges" in err
    assert "python -m trtnet.calibrate --weights" in err and "--calibration-cache calibration.json" in err


def test_build_with_a_cache_lacking_tensors_names_them(random_mobilenet, tmp_path, capsys):
    path = _cache().save(tmp_path / "c.json")
    rc = build.main(["--weights", str(random_mobilenet), "-o", str(tmp_path / "e"),
                     "--precision-plan", "int8_backbone", "--calibration-cache", str(path)])
    assert rc == 1
    assert "int8 layers of plan int8_backbone read: backbone.layers.0, " in capsys.readouterr().err


def test_build_with_a_fitting_cache_gets_to_tensorrt(random_mobilenet, tmp_path, capsys):
    required = cal.required_tensors(random_mobilenet, MOBILENET, "int8_all")
    path = _cache(amax=dict.fromkeys(required, 1.0), plan="int8").save(tmp_path / "c.json")
    rc = build.main(["--weights", str(random_mobilenet), "-o", str(tmp_path / "e"),
                     "--precision-plan", "int8_backbone", "--calibration-cache", str(path)])
    assert rc == build.EXIT_NO_TENSORRT  # the dry run of the calibrated plan, then what is missing
    assert "needs TensorRT's Python package" in capsys.readouterr().err
