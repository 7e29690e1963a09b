"""The TensorRT backend end to end without a GPU: trtnet.build -> Engine -> Segmenter /
verify / infer, over the fake TensorRT runtime whose engine runs the emulator network
(tests/runtime_fakes.py), compared with the upstream reference outputs of mobilenetv2.
Three emulator passes in all."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime_fakes import fake_gpu  # noqa: F401 - fixture
from trtnet import verify
from trtnet.build import build_engine
from trtnet.media.files import write_atomically
from trtnet.config import get_config
from trtnet.verification.reference_data import ReferenceCase
from trtnet.runtime import EngineError, Segmenter
from trtnet.network.weights import WeightStore

MIN_MASK_IOU = 0.99  # verify's bound: masks of matched detections (a few pixels flip at 0.5)


@pytest.fixture
def case(reference_dir):
    return ReferenceCase(reference_dir / "mobilenetv2")


def _engine_file(trt, case, tmp_path):
    store = WeightStore.load(case.weights_path)
    path = tmp_path / "mobilenetv2.engine"
    write_atomically(path, build_engine(trt, store, get_config(case.config_name)))
    return path


def test_verify_tensorrt_backend_builds_an_engine_and_passes_img0(fake_gpu, case, capsys):
    code = verify.main([str(case.path), "--backend", "tensorrt", "--frames", "img0"])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "backend tensorrt" in report and "1 passes run" in report and "-> PASS" in report
    assert fake_gpu.trt.events == ["plugins.load", "plugins.load", "deserialize"]  # build, then Engine


def test_segmenter_instances_match_the_reference_postprocess(fake_gpu, case, tmp_path):
    segmenter = Segmenter(_engine_file(fake_gpu.trt, case, tmp_path))
    inst = segmenter(case.image("img0"))
    want = case.detections("img0")
    assert all(isinstance(a, np.ndarray) and type(a) is np.ndarray for a in inst)  # on the host
    n = len(want["scores"])
    assert len(inst.scores) == n
    np.testing.assert_array_equal(inst.classes, want["classes"])  # same order: no near ties in img0
    np.testing.assert_allclose(inst.scores, want["scores"], atol=1e-4)  # verify's score tolerance
    assert np.abs(inst.boxes - want["boxes"]).max() <= 1  # upstream truncates pixel boxes
    ref_masks = want["masks"].astype(bool)
    inter = (inst.masks & ref_masks).sum((1, 2))
    union = (inst.masks | ref_masks).sum((1, 2))
    assert union.sum() > 1000  # the reference masks are not empty
    iou = inter / np.maximum(union, 1)
    tiny = union - inter <= 4  # tiny masks: a few pixels may flip at the 0.5 threshold (verify's rule)
    assert ((iou >= MIN_MASK_IOU) | tiny).all()


def test_infer_tensorrt_backend_runs_an_engine_file(fake_gpu, case, tmp_path, capsys):
    import cv2

    from trtnet import infer

    engine = _engine_file(fake_gpu.trt, case, tmp_path)
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), case.image("img1"))
    out = tmp_path / "out.png"
    log = tmp_path / "log.jsonl"
    code = infer.main([str(image), "--engine", str(engine), "--config", case.config_name, "--backend", "tensorrt",
                       "--out", str(out), "--score-threshold", "0", "--log", str(log)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    want = case.detections("img1")
    assert f"{len(want['scores'])} detections above 0" in printed.out
    assert cv2.imread(str(out)).shape == case.image("img1").shape
    (line,) = log.read_text().splitlines()
    assert {"upload", "engine keyframe", "masks", "postprocess"} <= set(json.loads(line)["ms"])  # the NVTX stages


def test_an_engine_without_detector_outputs_is_rejected_by_the_segmenter(fake_gpu):
    from runtime_fakes import tiny_engine

    with pytest.raises(EngineError, match="has no output.*det/count.*not a trtnet detector engine"):
        Segmenter(tiny_engine(fake_gpu.trt))


def test_verify_tensorrt_backend_with_a_missing_engine_file_is_a_clear_error(fake_gpu, case, tmp_path, capsys):
    code = verify.main([str(case.path), "--backend", "tensorrt", "--engine", str(tmp_path / "x.engine")])
    assert code == 1  # a missing file is an error (exit 1), not a usage error (trtnet.cli)
    assert f"engine file not found: {tmp_path / 'x.engine'}" in capsys.readouterr().err
