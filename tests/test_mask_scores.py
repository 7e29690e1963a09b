"""Consumers of YOLACT++'s ``mask_scores`` engine output (issue 13, fast mask re-scoring):
the engine output lists, the Python runtime's Instances, COCO results, ``infer --json`` and
``--log``, the overlay, ``eval`` (mask AP by mask scores, box AP by box scores) and the
``--dry-run`` plan summary.

The engine is the mobilenetv2 reference network with upstream's maskiou_net (the
yolact_plus_resnet50 reference checkpoint's, 80 classes like COCO) added, at a 256 input
(the smallest side whose 64x64 prototypes survive maskiou_net's five unpadded stride-2
convolutions): one emulator pass, whose mask scores are not in the box scores' order, so a
mask score dropped, or swapped with its box score, or moved to another detection, fails here.
The full YOLACT++ network needs DCN and is checked against upstream in test_maskiou.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from trtnet import infer, names
from trtnet.config import CONFIGS, MaskIoUSpec, get_config
from trtnet.media import overlay
from trtnet.media.coco import coco_results
from trtnet.network.weights import WeightStore
from trtnet.network.yolact_edge import (KEYFRAME_OUTPUTS, NONKEYFRAME_OUTPUTS, keyframe_outputs,
                                        nonkeyframe_outputs)
from trtnet.runtime import EmulatedEngine, Segmenter, instances_from_outputs, to_host
from trtnet.runtime.emulated import HostStream
from trtnet.runtime.masks import Instances, mask_scores_of
from trtnet.verification.reference_data import ReferenceCase

SIDE = 256        # input side: prototypes 64x64 -> maskiou_net 31, 15, 7, 3, 1
THRESHOLD = 0.3   # infer's default


@pytest.fixture(scope="module")
def rescoring(reference_dir: Path):
    """(config, weights, image, the engine's outputs for the image) of mobilenetv2 + maskiou_net."""
    base = WeightStore.load(reference_dir / "mobilenetv2" / "weights.pth")
    plus = WeightStore.load(reference_dir / "yolact_plus_resnet50" / "weights.pth")
    tensors = {k: base.get(k, layer="test") for k in base.keys() if not k.endswith("num_batches_tracked")}
    tensors.update({k: plus.get(k, layer="test") for k in plus.keys() if k.startswith("maskiou_net.")})
    config = replace(get_config("yolact_edge_mobilenetv2"), name="mobilenetv2_with_maskiou", max_size=SIDE,
                     maskiou=MaskIoUSpec())
    store = WeightStore(tensors)
    image = ReferenceCase(reference_dir / "mobilenetv2").image("img0")
    outputs = EmulatedEngine(store, config)(image[None])
    n = int(outputs[names.DET_COUNT][0])
    box, mask = outputs[names.DET_SCORES][0, :n], outputs[names.MASK_SCORES][0, :n]
    # what makes the checks below able to fail: mask scores of their own, in another order
    assert n > 10 and np.all(mask < box) and not np.array_equal(np.argsort(-mask), np.argsort(-box))
    return config, store, image, outputs


def _expected(outputs, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(box scores, mask scores) of the detections above ``threshold`` (by box score), engine order."""
    n = int(outputs[names.DET_COUNT][0])
    box, mask = outputs[names.DET_SCORES][0, :n], outputs[names.MASK_SCORES][0, :n]
    keep = box > threshold
    return box[keep], mask[keep]


# -- the engine's outputs -------------------------------------------------------------------------


def test_engine_outputs_list_mask_scores_exactly_for_the_rescoring_configs(rescoring):
    for config in CONFIGS.values():
        expected = KEYFRAME_OUTPUTS + ((names.MASK_SCORES,) if config.maskiou is not None else ())
        assert keyframe_outputs(config) == expected, config.name
        assert nonkeyframe_outputs(config) == expected + (names.FLOW_MOTION,)
    assert names.MASK_SCORES in keyframe_outputs("yolact_plus_resnet50")
    assert names.MASK_SCORES in keyframe_outputs("yolact_plus_base")
    assert keyframe_outputs("yolact_base") == KEYFRAME_OUTPUTS
    assert nonkeyframe_outputs("yolact_edge_vid_resnet50") == NONKEYFRAME_OUTPUTS
    config, store, _, outputs = rescoring
    assert set(EmulatedEngine(store, config).outputs) == set(keyframe_outputs(config)) == set(outputs)
    plain = replace(config, maskiou=None)
    assert set(EmulatedEngine(store, plain).outputs) == set(KEYFRAME_OUTPUTS)
    assert outputs[names.MASK_SCORES].dtype == np.float32


# -- the Python runtime -----------------------------------------------------------------------------


def test_segmenter_carries_the_engines_mask_scores_next_to_the_box_scores(rescoring):
    config, store, image, outputs = rescoring
    inst = Segmenter(EmulatedEngine(store, config), score_threshold=THRESHOLD)(image)
    box, mask = _expected(outputs, THRESHOLD)
    np.testing.assert_array_equal(inst.scores, box)
    np.testing.assert_array_equal(inst.mask_scores, mask)  # the engine's own values, detection by detection
    assert type(inst.mask_scores) is np.ndarray and len(inst.mask_scores) == len(inst.masks)


def test_the_threshold_applies_to_box_scores_as_upstreams_postprocess(rescoring):
    _, _, image, outputs = rescoring
    n = int(outputs[names.DET_COUNT][0])
    box = outputs[names.DET_SCORES][0, :n]
    on = float(box[5])  # a threshold exactly on a box score drops that detection (score > threshold)
    inst = instances_from_outputs(outputs, image.shape[:2], score_threshold=on)
    assert len(inst.scores) == int(np.sum(box > on)) and on not in inst.scores.tolist()
    np.testing.assert_array_equal(inst.mask_scores, _expected(outputs, on)[1])
    # a threshold above every mask score still keeps the detections whose box scores pass it
    above = float(outputs[names.MASK_SCORES][0, :n].max())
    assert len(instances_from_outputs(outputs, image.shape[:2], score_threshold=above).scores) > 0


def test_without_mask_rescoring_the_mask_scores_are_the_box_scores(rescoring):
    _, _, image, outputs = rescoring
    plain = {k: v for k, v in outputs.items() if k != names.MASK_SCORES}
    inst = instances_from_outputs(plain, image.shape[:2], score_threshold=THRESHOLD)
    np.testing.assert_array_equal(inst.mask_scores, inst.scores)
    hand_made = Instances(inst.classes, inst.scores, inst.boxes, inst.masks)
    assert hand_made.mask_scores is None and mask_scores_of(hand_made) is inst.scores


def test_mask_scores_of_another_length_are_refused(rescoring):
    _, _, image, outputs = rescoring
    broken = {**outputs, names.MASK_SCORES: outputs[names.MASK_SCORES][:, :-1]}
    broken[names.DET_COUNT] = np.array([outputs[names.MASK_SCORES].shape[1]], np.int32)
    with pytest.raises(ValueError, match="mask_scores has 99 values for 100 detections"):
        instances_from_outputs(broken, image.shape[:2])


def test_to_host_and_the_area_rule_keep_each_mask_score_with_its_detection():
    boxes = np.array([[2, 2, 2, 9], [1, 1, 6, 6], [2, 2, 9, 2], [0, 0, 3, 3]])  # 0 and 2 have no area
    inst = Instances(np.arange(4), np.array([0.9, 0.8, 0.7, 0.6], np.float32), boxes, np.zeros((4, 8, 8), bool),
                     np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    kept = infer.with_area(to_host(inst))
    assert kept.scores.tolist() == pytest.approx([0.8, 0.6]) and kept.mask_scores.tolist() == pytest.approx([0.2, 0.4])
    hand_made = infer.with_area(Instances(*inst[:4]))
    assert hand_made.mask_scores is None and to_host(hand_made).mask_scores is None


# -- COCO results, infer ------------------------------------------------------------------------------


def test_coco_results_score_boxes_by_box_scores_and_masks_by_mask_scores(rescoring):
    _, _, image, outputs = rescoring
    inst = infer.with_area(instances_from_outputs(outputs, image.shape[:2], score_threshold=THRESHOLD))
    found = coco_results(7, inst, {i: i + 1 for i in range(80)})
    assert [r["score"] for r in found["bbox"]] == [float(s) for s in inst.scores]
    assert [r["score"] for r in found["segm"]] == [float(s) for s in inst.mask_scores]
    plain = coco_results(7, Instances(*inst[:4]), {i: i + 1 for i in range(80)})
    assert [r["score"] for r in plain["segm"]] == [r["score"] for r in plain["bbox"]]


class _ReplayEngine:
    """The Engine interface over one stored run (infer's CLI path without a second emulator pass)."""

    def __init__(self, outputs):
        self._outputs, self.stream, self.source = outputs, HostStream(), "replay"
        self.inputs = {names.INPUT: np.dtype(np.uint8)}
        self.outputs = {k: v.dtype for k, v in outputs.items()}

    def run(self, inputs, **_):
        return dict(self._outputs)

    def __call__(self, frame, synchronize=True):
        return dict(self._outputs)


def test_infer_json_log_and_summary_carry_the_mask_score(rescoring, reference_dir, tmp_path, monkeypatch, capsys):
    config, _, image, outputs = rescoring
    source, res, log, out = tmp_path / "photo.png", tmp_path / "r.json", tmp_path / "f.jsonl", tmp_path / "o.png"
    cv2.imwrite(str(source), image)
    monkeypatch.setattr("trtnet.network.weights.resolve_config", lambda store, name=None: config)
    monkeypatch.setattr(infer, "_segmenter", lambda *a, **k: Segmenter(_ReplayEngine(outputs),
                                                                         score_threshold=THRESHOLD))
    code = infer.main([str(source), "--weights", str(reference_dir / "mobilenetv2" / "weights.pth"),
                       "--json", str(res), "--log", str(log), "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    inst = infer.with_area(instances_from_outputs(outputs, image.shape[:2], score_threshold=THRESHOLD))
    results = json.loads(res.read_text())
    assert [r["score"] for r in results] == [float(s) for s in inst.scores]
    assert [r["mask_score"] for r in results] == [float(s) for s in inst.mask_scores]
    (frame,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert [d["mask_score"] for d in frame["detections"]] == [round(float(s), 5) for s in inst.mask_scores]
    assert [d["score"] for d in frame["detections"]] == [round(float(s), 5) for s in inst.scores]
    # the summary lists the drawn detections best mask score first, with both scores
    best = int(np.argmax(inst.mask_scores))
    first = next(line for line in printed.out.splitlines() if line.startswith("  "))
    assert f"{float(inst.scores[best]):.3f}  mask {float(inst.mask_scores[best]):.3f}" in first


# -- the overlay ---------------------------------------------------------------------------------------


def _two_detections(mask_scores):
    masks = np.zeros((2, 40, 80), bool)
    masks[0, 5:15, 5:15] = True
    masks[1, 20:30, 50:60] = True
    return Instances(np.array([0, 1]), np.array([0.9, 0.5], np.float32), np.array([[4, 4, 16, 16], [49, 19, 61, 31]]),
                     masks, mask_scores)


def _labels(monkeypatch, inst, max_drawn):
    texts = []
    original = overlay.label_text
    monkeypatch.setattr(overlay, "label_text", lambda name, score: texts.append(original(name, score)) or texts[-1])
    image = np.zeros((40, 80, 3), np.uint8)
    drawn = overlay.draw(image, inst, ["a", "b"], max_drawn=max_drawn)
    return texts, (drawn != image).any(axis=2)


def test_the_overlay_shows_and_ranks_the_rescored_value(monkeypatch):
    inst = _two_detections(np.array([0.2, 0.7], np.float32))
    texts, _ = _labels(monkeypatch, inst, None)
    assert texts == ["b: 0.70", "a: 0.20"]  # upstream's display: the rescored score, best first
    texts, changed = _labels(monkeypatch, inst, 1)
    assert texts == ["b: 0.70"]
    assert changed[20:30, 50:60].all() and not changed[5:15, 5:15].any()  # the best by mask score is drawn


def test_the_overlay_shows_the_box_score_without_rescoring(monkeypatch):
    texts, changed = _labels(monkeypatch, _two_detections(None), 1)
    assert texts == ["a: 0.90"] and changed[5:15, 5:15].all() and not changed[20:30, 50:60].any()


# -- eval --------------------------------------------------------------------------------------------


def test_eval_scores_mask_ap_by_mask_scores_and_box_ap_by_box_scores(tmp_path):
    """One object; two detections: the right one (A) and a false positive (B). B has the higher
    box score, A the higher mask score: box AP50 is 0.5 (B ranked first), mask AP50 1.0. Scores
    swapped, the numbers swap; mask scores dropped, mask AP50 falls to 0.5."""
    pytest.importorskip("pycocotools")
    from trtnet import eval as trt_eval

    side = 64
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((side, side, 3), np.uint8))
    square = [8.0, 8.0, 32.0, 8.0, 32.0, 32.0, 8.0, 32.0]
    (tmp_path / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": side, "width": side}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 24, 24], "area": 576.0,
                         "iscrowd": 0, "segmentation": [square]}],
        "categories": [{"id": 1, "name": "person"}]}))
    dataset = trt_eval.load_dataset(tmp_path / "ann.json", tmp_path)
    boxes = np.array([[[8, 8, 32, 32], [40, 40, 60, 60]]], np.float32) / side  # A on the object, B off it
    outputs = {names.DET_COUNT: np.array([2], np.int32), names.DET_BOXES: boxes,
               names.DET_SCORES: np.array([[0.5, 0.9]], np.float32), names.DET_CLASSES: np.zeros((1, 2), np.int32),
               names.DET_COEFFS: np.full((1, 2, 1), 10.0, np.float32),  # sigmoid(10): the box is the mask
               names.PROTO: np.ones((1, side, side, 1), np.float32),
               names.MASK_SCORES: np.array([[0.8, 0.1]], np.float32)}
    row = trt_eval.evaluate(dataset, lambda image: outputs, {0: 1})
    assert row.metrics["bbox"]["AP50"] == pytest.approx(0.5, abs=1e-9)
    assert row.metrics["segm"]["AP50"] == pytest.approx(1.0, abs=1e-9)
    plain = trt_eval.evaluate(dataset, lambda image: {k: v for k, v in outputs.items() if k != names.MASK_SCORES},
                              {0: 1})
    assert plain.metrics["segm"]["AP50"] == pytest.approx(0.5, abs=1e-9)  # box scores rank the masks then


# -- build --dry-run ------------------------------------------------------------------------------------


def _maskiou_macs_per_mask(grid: int, config) -> tuple[int, int]:
    """(parameters, MACs) of maskiou_net on one grid x grid mask, from the layer list alone."""
    params = macs = 0
    cin, side = 1, grid
    for out_ch, kernel, stride in config.maskiou.layers:
        out_ch = config.num_classes - 1 if out_ch is None else out_ch
        side = (side - kernel) // stride + 1  # unpadded
        params += out_ch * cin * kernel * kernel + out_ch
        macs += out_ch * cin * kernel * kernel * side * side
        cin = out_ch
    return params, macs


def test_dry_run_counts_maskiou_once_per_detection_slot(rescoring):
    from trtnet import emulator
    from trtnet.builder.plan_summary import ORDER, format_components, summarize
    from trtnet.network.yolact_edge import build_keyframe
    from trtnet.precision import as_plan

    config, store, _, _ = rescoring
    net = emulator.Network()
    build_keyframe(net, emulator.trt, store, config)
    grid, max_det = SIDE // 4, config.detect.max_det
    assert ORDER.index("maskiou") == ORDER.index("detect") + 1
    for batch in (1, 3):
        rows = {r.component: r for r in summarize(net, emulator.trt, as_plan("int8"), batch=batch)}
        params, macs = _maskiou_macs_per_mask(grid, config)
        m = rows["maskiou"]
        assert (m.convolutions, m.parameters, m.macs) == (6, params, batch * max_det * macs)
        assert m.precision == "fp16"  # the head's int8 -> fp16: maskiou_net is never int8
    assert any(line.split()[0] == "maskiou" for line in format_components(list(rows.values())))


# -- README ----------------------------------------------------------------------------------------------


def test_the_readme_checkpoint_table_names_every_released_file_and_what_it_needs():
    from trtnet.network.weight_spec import config_from_filename

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Supported checkpoints\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| checkpoint")]
    table = {row[1]: (row[0].strip("`"), row[3]) for row in rows}
    released = ("yolact_base_54_800000.pth", "yolact_resnet50_54_800000.pth", "yolact_darknet53_54_800000.pth",
                "yolact_im700_54_800000.pth", "yolact_plus_base_54_800000.pth",
                "yolact_plus_resnet50_54_800000.pth")
    for file_name in released:  # each file is listed beside the config its name gives
        config = config_from_filename(file_name)
        assert table[config][0] == file_name, config
    assert table["yolact_im400"][0] == "(no released file)"
    for name, (_, needs) in table.items():
        config = get_config(name)
        assert ("libnvinfer_plugin" in needs) == any(config.backbone.dcn_layers), name
        assert ("mask re-scoring" in needs) == (config.maskiou is not None), name
    assert "```" not in section  # no code block to keep in step (tests/test_readme.py checks those)
