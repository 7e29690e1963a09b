"""``python -m trtnet.infer``: draws the detections it finds and writes a PNG atomically.

Drawing is checked with upstream's own postprocessed detections (reference data),
the CLI end to end on the emulator with the reference weights: the pixels it
changes must be the reference masks' pixels (plus box outlines and labels).
"""

from __future__ import annotations

import cv2
import numpy as np

from trtnet import infer

from trtnet.media import io as media

from trtnet.media import overlay
from trtnet.config import get_config
from trtnet.runtime.masks import Instances
from trtnet.verification.reference_data import ReferenceCase

THRESHOLD = 0.3


def _reference_instances(ref: ReferenceCase, pass_name: str) -> Instances:
    d = ref.detections(pass_name)
    keep = d["scores"] > THRESHOLD
    return Instances(d["classes"][keep], d["scores"][keep], d["boxes"][keep], d["masks"][keep].astype(bool))


def _decoration_zone(inst: Instances, shape, margin: int = 25) -> np.ndarray:
    """Box outlines and labels live on the boxes, just above or below them."""
    zone = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in inst.boxes:
        zone[max(y1 - margin, 0): y2 + margin, max(x1 - 4 * margin, 0): x2 + 4 * margin] = True
    return zone


def _check_drawing(image: np.ndarray, drawn: np.ndarray, inst: Instances, max_drawn: int) -> None:
    changed = (drawn != image).any(axis=2)
    masks = inst.masks[:max_drawn].any(axis=0)
    # Blending at alpha 0.45 changes a pixel unless it already has the class colour.
    assert changed[masks].mean() >= 0.99
    outside = changed & ~masks & ~_decoration_zone(inst, image.shape)
    assert outside.sum() == 0


def test_draw_colours_exactly_the_mask_pixels_plus_boxes_and_labels(reference_dir):
    ref = ReferenceCase(reference_dir / "mobilenetv2")
    inst = _reference_instances(ref, "img0")
    image = ref.image("img0")
    drawn = overlay.draw(image, inst, get_config(ref.config_name).class_names, max_drawn=None)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    _check_drawing(image, drawn, inst, len(inst.scores))


def test_png_is_written_atomically_and_reads_back(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = tmp_path / "x.png"
    media.write_image(out, image)
    np.testing.assert_array_equal(cv2.imread(str(out)), image)  # PNG is lossless
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temp file left behind


def test_missing_image_is_a_clear_error(tmp_path, capsys, reference_dir):
    code = infer.main([str(tmp_path / "nope.png"), "--weights", str(reference_dir / "mobilenetv2" / "weights.pth"),
                       "-o", str(tmp_path / "o.png")])
    assert code == 1 and f"input not found: {tmp_path / 'nope.png'}" in capsys.readouterr().err


def test_cli_on_reference_image_draws_the_reference_detections(reference_dir, tmp_path, capsys):
    ref = ReferenceCase(reference_dir / "mobilenetv2")
    image_path = tmp_path / "astronaut.png"
    cv2.imwrite(str(image_path), ref.image("img0"))
    out = tmp_path / "result.png"
    code = infer.main([str(image_path), "--weights", str(ref.weights_path), "--backend", "emulator",
                       "-o", str(out), "--score-threshold", str(THRESHOLD), "--max-drawn", "100"])
    assert code == 0, capsys.readouterr().err
    inst = _reference_instances(ref, "img0")
    assert f"{len(inst.scores)} detections above {THRESHOLD:g}" in capsys.readouterr().out
    _check_drawing(ref.image("img0"), cv2.imread(str(out)), inst, len(inst.scores))
