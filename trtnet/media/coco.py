"""Detections as COCO results (pycocotools RLE masks), shared by trtnet.eval and trtnet.infer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:  # a type hint only: media sits below the runtime
    from trtnet.runtime.masks import Instances


def coco_results(image_id: int, inst: Instances, cat_of_class: Mapping[int, int]) -> dict[str, list[dict]]:
    """Detections of one image as COCO results, one list per IoU type (as upstream's eval
    writes its bbox and mask files apart): boxes x, y, w, h in pixels, masks as RLE.
    Like upstream, an empty mask is still a result (a false positive for mask AP). Boxes
    score with the box scores, masks with the mask scores (upstream's prep_metrics: box_scores
    for bbox, mask_scores for mask; the same values unless the engine re-scores masks)."""
    from pycocotools import mask as mask_utils

    out: dict[str, list[dict]] = {"bbox": [], "segm": []}
    classes = np.asarray(inst.classes).astype(np.int64)
    boxes = np.asarray(inst.boxes).reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # upstream's eval keeps a detection only if its pixel box has an area (and so do we)
    keep = [i for i, c in enumerate(classes) if int(c) in cat_of_class and area[i] > 0]
    if not keep:
        return out
    masks = np.asfortranarray(np.asarray(inst.masks)[keep].transpose(1, 2, 0).astype(np.uint8))
    rles = mask_utils.encode(masks)
    mask_scores = getattr(inst, "mask_scores", None)
    mask_scores = np.asarray(inst.scores if mask_scores is None else mask_scores).reshape(-1)
    for k, i in enumerate(keep):
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        common = {"image_id": int(image_id), "category_id": int(cat_of_class[int(classes[i])])}
        out["bbox"].append({**common, "score": float(inst.scores[i]), "bbox": [x1, y1, x2 - x1, y2 - y1]})
        rle = rles[k]
        out["segm"].append({**common, "score": float(mask_scores[i]),
                            "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}})
    return out
