"""``python -m trtnet.verify``: the comparison catches errors and names them.

The comparison is exercised with the reference backend (the case's own tensors,
detections recomputed by trtnet's NumPy Fast NMS) and with deliberate
perturbations of it, so these tests do not depend on the network.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtnet import names, verify


def _run(case_dir, produce, frames=None):
    results, ref = verify.verify_case(case_dir, "reference", frames=frames, runner=produce)
    return results, verify.format_report(ref, "test", results)


@pytest.mark.parametrize("case", ["vid_resnet50", "mobilenetv2"])
def test_reference_backend_passes_every_pass(reference_dir, case, capsys):
    assert verify.main([str(reference_dir / case), "--backend", "reference"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.rstrip().endswith("-> PASS")
    assert "detections: 100 vs reference 100, matched 100" in out


def test_reference_backend_on_a_case_storing_some_candidates_is_a_clear_error(reference_dir, capsys):
    # yolact_plus_resnet50 stores 2000 of ~54,000 candidate rows: Fast NMS's input cannot be rebuilt
    # from it (the emulator backend verifies it: tests/test_deform_conv.py)
    assert verify.main([str(reference_dir / "yolact_plus_resnet50"), "--backend", "reference"]) == 1
    err = capsys.readouterr().err
    assert "stores the softmax rows and coefficients of only the first 2000 of its 54499 candidates" in err
    assert "Traceback" not in err


def test_feature_error_above_1e3_of_scale_fails_and_is_named(reference_dir):
    def produce(ref, p):
        out = verify.reference_outputs(ref, p)
        p5 = out["fpn/P5"]
        out["fpn/P5"] = p5 + 2e-3 * np.abs(p5).max()  # twice the tolerance
        return out

    results, report = _run(reference_dir / "mobilenetv2", produce, frames="img1")
    assert results[0].failed_names == ["fpn/P5"]
    assert "failed in img1: fpn/P5" in report and "1 failed -> FAIL" in report


def test_feature_error_within_tolerance_passes(reference_dir):
    def produce(ref, p):
        out = verify.reference_outputs(ref, p)
        out["fpn/P6"] = out["fpn/P6"] + 5e-4 * np.abs(out["fpn/P6"]).max()  # half the tolerance
        return out

    results, _ = _run(reference_dir / "mobilenetv2", produce, frames="img1")
    assert results[0].passed


def test_wrong_class_breaks_the_one_to_one_match(reference_dir):
    def produce(ref, p):
        out = verify.reference_outputs(ref, p)
        out[names.DET_CLASSES] = out[names.DET_CLASSES].copy()
        out[names.DET_CLASSES][0, 0] += 1
        return out

    results, report = _run(reference_dir / "mobilenetv2", produce, frames="img1")
    assert results[0].failed_names == ["detections"]
    assert "reference detection #0" in report and "has no match" in report


def test_swapped_detections_are_out_of_order(reference_dir):
    def produce(ref, p):
        out = verify.reference_outputs(ref, p)
        for key in (names.DET_BOXES, names.DET_SCORES, names.DET_CLASSES, names.DET_COEFFS):
            out[key] = out[key].copy()
            out[key][0, [0, 1]] = out[key][0, [1, 0]]  # reference top-2 scores differ by ~0.05
        return out

    results, report = _run(reference_dir / "mobilenetv2", produce, frames="img1")
    assert "out of order" in report and not results[0].passed


def test_wrong_prototypes_fail_the_mask_iou(reference_dir):
    def produce(ref, p):
        out = verify.reference_outputs(ref, p)
        out[names.PROTO] = np.roll(out[names.PROTO], 9, axis=2)  # masks shifted by 9 cells
        return out

    results, report = _run(reference_dir / "vid_resnet50", produce, frames="key")
    assert "mask IoU" in report and "proto" in results[0].failed_names


def test_sliced_reference_compares_the_stored_channels_of_a_full_tensor(reference_dir):
    def produce(ref, p):
        out = verify.reference_outputs(ref, p)
        full = np.zeros(ref.spec(p, "fpn/P3").full_shape, np.float32)
        full[:, :8] = out["fpn/P3"]
        full[:, 8:] = 1e6  # channels the reference does not store are not compared
        out["fpn/P3"] = full
        return out

    results, report = _run(reference_dir / "mobilenetv2", produce, frames="img1")
    assert results[0].passed
    assert "reference stores channels [0:8]" in report


def test_every_pass_is_checked_and_a_nonkey_pass_follows_its_keyframe(reference_dir):
    ref = verify.ReferenceCase(reference_dir / "vid_resnet50")
    assert verify.select_passes(ref, None) == ["key", "nonkey", "fullB"]
    assert verify.select_passes(ref, "nonkey") == ["nonkey"]
    assert verify.keyframe_pass_of(ref, "nonkey") == "key"


def test_an_unknown_pass_is_a_clear_usage_error(reference_dir, capsys):
    assert verify.main([str(reference_dir / "vid_resnet50"), "--frames", "nonkey,B"]) == 2  # a bad command line
    assert "unknown pass(es) ['B']" in capsys.readouterr().err


def test_tensorrt_backend_without_tensorrt_is_a_clear_error(reference_dir, capsys):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    assert verify.main([str(reference_dir / "mobilenetv2"), "--backend", "tensorrt"]) == 1
    assert "needs the TensorRT Python package" in capsys.readouterr().err


def test_not_a_case_folder_is_a_clear_error(tmp_path, capsys):
    assert verify.main([str(tmp_path)]) == 1
    assert "not a reference case folder" in capsys.readouterr().err


@pytest.mark.parametrize("case,passes", [("vid_resnet50", ["key", "nonkey", "fullB"]),
                                         ("mobilenetv2", ["img0", "img1"])])
def test_emulator_network_matches_upstream_on_every_pass(reference_dir, case, passes, capsys):
    code = verify.main([str(reference_dir / case), "--backend", "emulator"])
    out = capsys.readouterr().out
    assert code == 0, out
    for p in passes:
        assert f"pass {p} (frame" in out
    assert out.count("detections: 100 vs reference 100, matched 100") == len(passes)
    assert "0 failed -> PASS" in out and "NOT RUN" not in out


def test_tolerance_factor_loosens_every_bound(reference_dir):
    def produce(ref, p):
        out = verify.reference_outputs(ref, p)
        out["fpn/P5"] = out["fpn/P5"] + 2e-3 * np.abs(out["fpn/P5"]).max()  # 2x the fp32 bound
        return out

    results, _ = verify.verify_case(reference_dir / "mobilenetv2", "reference", frames="img1", runner=produce,
                                    tol=verify.FP32.scaled(3))
    assert results[0].passed
    assert verify.FP32.scaled(20).mask_min_iou == pytest.approx(0.8)


def test_a_minimal_user_made_case_folder_is_verified(reference_dir, tmp_path, capsys):
    """Own outputs saved in the format: no array descriptions, a few full tensors, detections."""
    import json

    src = verify.ReferenceCase(reference_dir / "mobilenetv2")
    keep = ["fpn/P5", "fpn/P7", "head/loc", "fastnms/det_boxes", "fastnms/det_scores", "fastnms/det_classes",
            "fastnms/det_mask_coefs", "fastnms/boxes", "fastnms/masks"]
    np.savez(tmp_path / "outputs.npz", priors=src.priors, **{f"mine/{k}": src.get("img1", k) for k in keep})
    np.savez(tmp_path / "inputs.npz", **{"mine/image_bgr": src.image("img1")})
    (tmp_path / "manifest.json").write_text(json.dumps({"config_name": src.config_name}))
    (tmp_path / "weights.pth").symlink_to(src.weights_path)
    assert verify.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pass mine (frame mine)" in out and "fpn/P7" in out
    assert "matched 100" in out and "min mask IoU 1.0000" in out
