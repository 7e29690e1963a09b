"""Draw instances over a frame: masks blended in the class colour, boxes, "name score" labels.

Readable at any image size: line width and font scale with the image (a 640-pixel side is
the unit), and labels never pile up: they are placed best score first, each on the first of
a few spots around its box (above, inside the top, below) that no earlier label covers; a
label with no free spot is left out (its mask and box are still drawn).

The score shown, and the order "best" means, is the mask score: with mask re-scoring
(YOLACT++) the re-scored value, as upstream's eval.py prep_display shows (it postprocesses
with ``rescore_bbox`` on and sorts by that score); otherwise it is the box score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # a type hint only: media sits below the runtime
    from trtnet.runtime.masks import Instances

DEFAULT_MAX_DRAWN = 15  # upstream eval.py --top_k default for display
REFERENCE_SIDE = 640.0   # image side at which lines are 2 px and the font scale 0.5
FONT_SCALE = 0.5
ALPHA = 0.45


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue steps)."""
    import cv2

    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    b, g, r = cv2.cvtColor(np.array([[[hue, 200, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def drawing_scale(height: int, width: int) -> float:
    """Size of lines and text relative to a 640-pixel image (clamped so text stays legible)."""
    return float(np.clip(max(height, width) / REFERENCE_SIDE, 0.5, 6.0))


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(box: Sequence[int], size: tuple[int, int], image_hw: tuple[int, int],
                taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    """The first free spot (x1, y1, x2, y2) for a label of ``size`` (w, h) at ``box``: above it,
    inside its top, below it; moved inside the image; None when every spot is taken."""
    x1, y1, _, y2 = (int(v) for v in box)
    w, h = size
    height, width = image_hw
    left = int(np.clip(x1, 0, max(width - w, 0)))
    for top in (y1 - h, y1, y2):
        top = int(np.clip(top, 0, max(height - h, 0)))
        spot = (left, top, left + w, top + h)
        if not any(_overlaps(spot, other) for other in taken):
            return spot
    return None


def shown_scores(inst: Instances) -> np.ndarray:
    """The score each detection is labelled and ranked with: its mask score (see the module)."""
    mask_scores = getattr(inst, "mask_scores", None)
    return np.asarray(inst.scores if mask_scores is None else mask_scores, np.float32).reshape(-1)


def drawing_order(scores: np.ndarray, max_drawn: int | None) -> list[int]:
    """Indices of the detections drawn, best first (stable: ties keep their order), at most max_drawn."""
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    return order if max_drawn is None else order[:max_drawn]


def label_text(name: str, score: float) -> str:
    """A detection's label, as upstream's display writes it ("name: 0.87")."""
    return f"{name}: {score:.2f}"


def draw(image_bgr: np.ndarray, inst: Instances, class_names: Sequence[str], *,
         alpha: float = ALPHA, max_drawn: int | None = DEFAULT_MAX_DRAWN) -> np.ndarray:
    """Masks blended over the image, then boxes and "name score" labels; best (mask) score on top."""
    import cv2

    out = image_bgr.copy()
    height, width = out.shape[:2]
    scale = drawing_scale(height, width)
    line = max(1, round(2 * scale))
    font_scale, text_width = FONT_SCALE * scale, max(1, round(scale))
    pad = max(1, round(2 * scale))
    masks = np.asarray(inst.masks, bool)
    scores = shown_scores(inst)
    order = drawing_order(scores, max_drawn)
    for i in reversed(order):  # lowest score first, best on top
        color = np.array(class_color(int(inst.classes[i])), np.float32)
        m = masks[i]
        out[m] = (out[m].astype(np.float32) * (1 - alpha) + color * alpha).round().astype(np.uint8)
    for i in reversed(order):
        x1, y1, x2, y2 = (int(v) for v in inst.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), class_color(int(inst.classes[i])), line)
    taken: list[tuple[int, int, int, int]] = []
    for i in order:  # best first: the best detections get their labels
        cls = int(inst.classes[i])
        name = class_names[cls] if 0 <= cls < len(class_names) else f"class {cls}"
        text = label_text(name, float(scores[i]))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, font_scale, text_width)
        spot = place_label(inst.boxes[i], (tw + 2 * pad, th + base + 2 * pad), (height, width), taken)
        if spot is None:
            continue
        taken.append(spot)
        color = class_color(cls)
        cv2.rectangle(out, spot[:2], (spot[2] - 1, spot[3] - 1), color, -1)
        ink = (0, 0, 0) if 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2] > 150 else (255, 255, 255)
        cv2.putText(out, text, (spot[0] + pad, spot[1] + pad + th), cv2.FONT_HERSHEY_DUPLEX, font_scale, ink,
                    text_width, cv2.LINE_AA)
    return out
