"""``python -m trtnet.eval``: COCO box and mask AP, checked with upstream's own detections as
ground truth.

The reference cases' postprocessed detections (``fastnms/*`` at the original image size,
computed by upstream PyTorch) are written as a COCO annotation file. The fp32 emulator
must then find exactly those objects: box AP 1.0, and mask AP 1.0 over the detections
that have a mask. The random reference weights leave many detections with an empty mask
(every pixel below 0.5); such a detection is no object, so it is written as a crowd
(ignore) region, and upstream's eval still reports it as a result, which COCOeval counts
as a false positive for masks: the mask AP of the full results is then exactly what
upstream's own masks score, and 1.0 once they are left out. A broken mask path must
drop mask AP while box AP stays 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402

from trtnet import eval as trt_eval  # noqa: E402
from trtnet.config import COCO_CLASSES, get_config  # noqa: E402
from trtnet.runtime.masks import Instances  # noqa: E402
from trtnet.verification.reference_data import ReferenceCase  # noqa: E402

# Scores of upstream vs the fp32 emulator differ by <= 1e-4 (verify's fp32 tolerance); two
# detections closer than that may swap rank. None are that close in these cases, so AP must
# be 1.0 up to float rounding.
AP_TOL = 1e-9


def write_ground_truth(ref: ReferenceCase, passes: list[str], folder: Path, prefix: str = "") -> Path:
    """The reference detections of ``passes`` as a COCO annotation file + image files."""
    cfg = get_config(ref.config_name)
    images, anns = [], []
    for k, p in enumerate(passes):
        img = ref.image(p)
        name = f"{prefix}{p}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), img)
        images.append({"id": k + 1, "file_name": name, "height": img.shape[0], "width": img.shape[1],
                       "video_id": 1, "frame_id": k})
        d = ref.detections(p)
        for c, b, m in zip(d["classes"], d["boxes"], d["masks"]):
            x1, y1, x2, y2 = (int(v) for v in b)
            if (x2 - x1) * (y2 - y1) <= 0:
                continue
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": cfg.category_ids[int(c)],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(m.sum()),
                         "iscrowd": int(m.sum() == 0),  # no pixel: no object, an ignore region
                         "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode()}})
    cats = [{"id": i, "name": n} for i, n in zip(cfg.category_ids, cfg.class_names)]
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


class Replay:
    """The emulator run once per image, replayed for every evaluation of the module."""

    def __init__(self, ref: ReferenceCase):
        from trtnet.precision import as_plan
        from trtnet.network.weights import load_weights

        self.run = trt_eval.open_runner("emulator", load_weights(ref.weights_path), get_config(ref.config_name),
                                        as_plan("fp32"))
        self.cache: dict[bytes, dict] = {}

    def __call__(self, image: np.ndarray) -> dict:
        key = image.tobytes()
        if key not in self.cache:
            self.cache[key] = self.run(image)
        return self.cache[key]


@pytest.fixture(scope="module")
def mobilenet(reference_dir, tmp_path_factory):
    ref = ReferenceCase(reference_dir / "mobilenetv2")
    folder = tmp_path_factory.mktemp("coco")
    ann = write_ground_truth(ref, ["img0", "img1"], folder)
    return ref, ann, folder, Replay(ref)


def _evaluate(mobilenet, instances=None):
    ref, ann, folder, replay = mobilenet
    dataset = trt_eval.load_dataset(ann, folder)
    cats = trt_eval.category_map(get_config(ref.config_name), dataset.coco.dataset["categories"])
    return trt_eval.evaluate(dataset, replay, cats, instances=instances)


def _without_empty_masks(outputs, hw, masks_from=None) -> Instances:
    """Upstream's postprocess, keeping the detections whose mask has a pixel (in ``outputs``;
    the masks themselves may come from ``masks_from``)."""
    from trtnet.runtime.segmenter import instances_from_outputs

    inst = instances_from_outputs(outputs, hw)
    keep = np.asarray(inst.masks).reshape(len(inst.scores), -1).any(1)
    if masks_from is not None:
        inst = inst._replace(masks=instances_from_outputs(masks_from, hw).masks)
    return Instances(*(np.asarray(a)[keep] for a in inst))


def test_cli_fp32_emulator_scores_box_ap_1_and_writes_the_metrics(mobilenet, tmp_path, monkeypatch, capsys):
    ref, ann, folder, replay = mobilenet
    monkeypatch.setattr(trt_eval, "open_runner", lambda *a, **k: replay)
    out = tmp_path / "metrics.json"
    code = trt_eval.main(["--annotations", str(ann), "--images", str(folder), "--weights", str(ref.weights_path),
                          "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    table = capsys.readouterr().out
    assert "box AP" in table and "mask AP" in table and "ms/frame" in table
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["fp32"]
    assert list(metrics["fp32"]["bbox"]) == list(trt_eval.STATS_NAMES)
    assert metrics["fp32"]["bbox"]["AP"] == pytest.approx(1.0, abs=AP_TOL)
    assert metrics["fp32"]["bbox"]["AP50"] == pytest.approx(1.0, abs=AP_TOL)
    assert metrics["fp32"]["bbox"]["AP75"] == pytest.approx(1.0, abs=AP_TOL)
    assert metrics["fp32"]["ms_per_frame"] > 0
    assert " 100.00" in table.splitlines()[2]  # box AP column, in the paper's percent


def test_mask_ap_equals_what_upstreams_own_masks_score(mobilenet, reference_dir):
    """Empty masks are results, as in upstream's eval: both score the same mask AP."""
    ref, ann, folder, _ = mobilenet
    dataset = trt_eval.load_dataset(ann, folder)
    cats = trt_eval.category_map(get_config(ref.config_name), dataset.coco.dataset["categories"])
    upstream: list[dict] = []
    for image_id, p in zip(dataset.image_ids, ["img0", "img1"]):
        d = ref.detections(p)
        inst = Instances(d["classes"], d["scores"], d["boxes"], d["masks"].astype(bool))
        upstream += trt_eval.coco_results(image_id, inst, cats)["segm"]
    ceiling = trt_eval.coco_metrics(dataset, upstream, "segm")["AP"]
    ours = _evaluate(mobilenet).metrics["segm"]["AP"]
    assert 0 < ceiling < 1  # the empty masks are false positives
    assert ours == pytest.approx(ceiling, abs=AP_TOL)


def test_mask_ap_is_1_over_the_detections_that_have_a_mask(mobilenet):
    row = _evaluate(mobilenet, instances=_without_empty_masks)
    assert row.metrics["segm"]["AP"] == pytest.approx(1.0, abs=AP_TOL)
    assert row.metrics["bbox"]["AP"] == pytest.approx(1.0, abs=AP_TOL)


def test_a_broken_mask_path_loses_mask_ap_but_not_box_ap(mobilenet):
    def flipped(outputs, hw):  # prototypes upside down: every mask from the wrong rows
        from trtnet import names

        broken = dict(outputs)
        broken[names.PROTO] = np.ascontiguousarray(np.asarray(outputs[names.PROTO])[..., ::-1, :, :])
        return _without_empty_masks(outputs, hw, masks_from=broken)

    row = _evaluate(mobilenet, instances=flipped)
    assert row.metrics["bbox"]["AP"] == pytest.approx(1.0, abs=AP_TOL)
    assert row.metrics["segm"]["AP"] < 0.6


def test_video_frames_in_coco_format_map_youtube_vis_categories(reference_dir, tmp_path):
    """YouTube-VIS frames (file_name <video>/<frame>) with categories 1..40, scored from the
    case's own head outputs through trtnet's Fast NMS and masks (no network run)."""
    from trtnet.verify import reference_outputs

    ref = ReferenceCase(reference_dir / "vid_resnet50")
    ann = write_ground_truth(ref, ["key"], tmp_path, prefix="video_0001/")
    dataset = trt_eval.load_dataset(ann, tmp_path)
    assert dataset.image_path(1) == tmp_path / "video_0001" / "key.png"
    cats = trt_eval.category_map(get_config(ref.config_name), dataset.coco.dataset["categories"])
    assert cats == {c: c + 1 for c in range(40)}
    row = trt_eval.evaluate(dataset, lambda image: reference_outputs(ref, "key"), cats,
                            instances=_without_empty_masks)
    assert row.metrics["bbox"]["AP"] == pytest.approx(1.0, abs=AP_TOL)
    assert row.metrics["segm"]["AP"] == pytest.approx(1.0, abs=AP_TOL)


def test_coco_classes_map_to_cocos_category_ids_as_upstreams_label_map():
    ids = get_config("yolact_edge_mobilenetv2").category_ids
    assert len(ids) == len(COCO_CLASSES) == 80
    # upstream COCO_LABEL_MAP: 13 -> 12 (stop sign), 27 -> 25 (backpack), 90 -> 80 (toothbrush)
    assert (ids[0], ids[10], ids[11], ids[24], ids[79]) == (1, 11, 13, 27, 90)
    assert len(set(ids)) == 80 and list(ids) == sorted(ids)


def test_categories_that_do_not_fit_the_config_are_refused():
    cfg = get_config("yolact_edge_mobilenetv2")
    with pytest.raises(trt_eval.EvalError, match="category 12 'stop sign' is no class"):
        trt_eval.category_map(cfg, [{"id": 12, "name": "stop sign"}], "a.json")  # contiguous ids
    with pytest.raises(trt_eval.EvalError, match="is 'giant_panda' in the dataset but 'bicycle'"):
        trt_eval.category_map(cfg, [{"id": 2, "name": "giant_panda"}], "a.json")
    assert trt_eval.category_map(cfg, [{"id": 64, "name": "Potted_Plant"}], "a.json") == {58: 64}


def test_cli_refuses_a_dataset_of_other_categories(reference_dir, tmp_path, capsys):
    ref = ReferenceCase(reference_dir / "mobilenetv2")
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "giant_panda"}]}))
    code = trt_eval.main(["--annotations", str(ann), "--images", str(tmp_path), "--weights", str(ref.weights_path)])
    err = capsys.readouterr().err
    assert code == 1 and "lists no images" in err and "Traceback" not in err
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((4, 4, 3), np.uint8))
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.png", "height": 4, "width": 4}],
                               "annotations": [], "categories": [{"id": 2, "name": "giant_panda"}]}))
    code = trt_eval.main(["--annotations", str(ann), "--images", str(tmp_path), "--weights", str(ref.weights_path)])
    err = capsys.readouterr().err
    assert code == 1 and "do not fit config yolact_edge_mobilenetv2" in err and "'giant_panda'" in err


def test_an_engines_sidecar_names_its_config_and_plan(tmp_path, capsys):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"serialized")
    (tmp_path / "m.engine.json").write_text(json.dumps({
        "config": "yolact_edge_vid_resnet50", "precision_plan": {"plan": "fp16,head=fp32"}}))
    assert trt_eval.engine_description(engine)["config"] == "yolact_edge_vid_resnet50"
    assert trt_eval.engine_description(tmp_path / "other.engine") == {}
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    code = trt_eval.main(["--annotations", str(ann), "--images", str(tmp_path), "--engine", str(engine),
                          "--config", "yolact_edge_mobilenetv2"])
    err = capsys.readouterr().err
    assert code == 1 and "was built for yolact_edge_vid_resnet50" in err and "Traceback" not in err


def test_video_frames_run_video_by_video_in_frame_order_each_from_a_keyframe(tmp_path):
    """evaluate() over frames of two videos listed out of order, with a recording segmenter
    (the schedule itself is trtnet.runtime.VideoSegmenter's, tested there)."""
    frames = [(1, 7, 1), (2, 3, 0), (3, 7, 0), (4, 3, 1), (5, 3, 2)]  # (image id, video_id, frame_id)
    for i, _, _ in frames:
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((4, 4, 3), i, np.uint8))
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({
        "images": [{"id": i, "video_id": v, "frame_id": f, "file_name": f"{i}.png", "height": 4, "width": 4}
                   for i, v, f in frames],
        "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    dataset = trt_eval.load_dataset(ann, tmp_path)
    assert dataset.image_ids == [2, 4, 5, 3, 1]

    class Segmenter:  # keyframe every 2 frames, like VideoSegmenter(keyframe_interval=2)
        def __init__(self):
            self.calls, self.since, self.last_was_keyframe = [], None, False

        def reset(self):
            self.calls.append("reset")
            self.since = None

        def outputs(self, image):
            self.last_was_keyframe = self.since is None or self.since >= 2
            self.since = 1 if self.last_was_keyframe else self.since + 1
            self.calls.append(("key" if self.last_was_keyframe else "nonkey", int(image[0, 0, 0])))
            return {}

    runner = trt_eval.ScheduleRunner(Segmenter())
    empty = Instances(np.zeros(0, int), np.zeros(0, np.float32), np.zeros((0, 4), int), np.zeros((0, 4, 4), bool))
    row = trt_eval.evaluate(dataset, runner, {0: 1}, instances=lambda out, hw: empty)
    assert runner.segmenter.calls == ["reset", ("key", 2), ("nonkey", 4), ("key", 5),
                                      "reset", ("key", 3), ("nonkey", 1)]
    assert (row.keyframes, row.frames) == (3, 5) and row.as_json()["keyframes"] == 3
    assert "3/5" in trt_eval.format_table([row], get_config("yolact_edge_vid_resnet50"))
