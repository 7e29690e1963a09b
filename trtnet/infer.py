"""Segment one image and draw the result.

``python -m trtnet.infer --weights W IMAGE --out result.png [--backend emulator] [--config NAME]``

Runs the keyframe network (NumPy emulator on CPU, or TensorRT), assembles the masks
like upstream's postprocess, and draws masks, boxes, class names and scores with
OpenCV. The config is recognised from the checkpoint's keys and shapes unless given.
The output file is written atomically (temp file + rename).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from trtnet.files import write_atomically
from trtnet.masks import Instances

DEFAULT_SCORE_THRESHOLD = 0.3  # upstream eval.py draws above --score_threshold; 0 shows all 100
DEFAULT_MAX_DRAWN = 15         # upstream eval.py --top_k default for display


class InferError(RuntimeError):
    """Inference cannot run (bad image, unknown config, missing backend)."""


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 200, 255]]], np.uint8)
    import cv2

    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw(image_bgr: np.ndarray, inst: Instances, class_names: Sequence[str], *,
         alpha: float = 0.45, max_drawn: int | None = DEFAULT_MAX_DRAWN) -> np.ndarray:
    """Masks blended over the image, then boxes and "name score" labels; lowest score drawn first."""
    import cv2

    out = image_bgr.copy()
    masks = np.asarray(inst.masks, bool)
    n = len(inst.scores) if max_drawn is None else min(len(inst.scores), max_drawn)
    order = list(range(n))[::-1]  # best on top
    for i in order:
        color = np.array(class_color(int(inst.classes[i])), np.float32)
        m = masks[i]
        out[m] = (out[m].astype(np.float32) * (1 - alpha) + color * alpha).round().astype(np.uint8)
    for i in order:
        cls = int(inst.classes[i])
        color = class_color(cls)
        x1, y1, x2, y2 = (int(v) for v in inst.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 1)
        name = class_names[cls] if 0 <= cls < len(class_names) else f"class {cls}"
        text = f"{name}: {float(inst.scores[i]):.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, 0.5, 1)
        top = max(y1 - th - base - 2, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), color, -1)
        ink = (0, 0, 0) if 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2] > 150 else (255, 255, 255)
        cv2.putText(out, text, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_DUPLEX, 0.5, ink, 1, cv2.LINE_AA)
    return out


def write_image_atomically(path: str | Path, image: np.ndarray) -> None:
    """Encode by the file extension and write via a temp file + os.replace."""
    import cv2

    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise InferError(f"cannot encode an image as {path.suffix!r} for {path}")
    write_atomically(path, data.tobytes())


def read_image(path: str | Path) -> np.ndarray:
    import cv2

    if not Path(path).is_file():
        raise InferError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InferError(f"cannot read {path} as an image")
    return image


def run_emulator(weights, config, image: np.ndarray) -> dict[str, np.ndarray]:
    from trtnet.network.yolact_edge import emulate_keyframe

    return emulate_keyframe(weights, config, image)


def segment(weights_path: str | Path | None, image: np.ndarray, *, backend: str = "emulator",
            config_name: str | None = None, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
            engine: str | Path | None = None):
    """(Instances, config) for one BGR image. ``backend="tensorrt"`` runs ``engine`` (a file
    built by trtnet.build), or builds one from the weights first."""
    from trtnet.config import get_config
    from trtnet.runtime.segmenter import instances_from_outputs
    from trtnet.weights import load_weights, resolve_config

    weights = None
    if weights_path is not None:
        weights = load_weights(weights_path)
        config = resolve_config(weights, config_name)
    elif config_name is not None:
        config = get_config(config_name)
    else:
        raise InferError("give --weights (or --engine with --config, to name the classes)")
    if backend == "emulator":
        if weights is None:
            raise InferError("--backend emulator needs --weights")
        out = run_emulator(weights, config, image)
    elif backend == "tensorrt":
        out = run_tensorrt(engine, weights, config, image)
    else:
        raise InferError(f"unknown backend {backend!r}")
    inst = instances_from_outputs(out, image.shape[:2], score_threshold=score_threshold)
    return inst, config


def run_tensorrt(engine, weights, config, image: np.ndarray) -> dict[str, np.ndarray]:
    """Keyframe outputs of a TensorRT engine (file, or built now from the weights), on the host."""
    from trtnet.runtime import EngineError
    from trtnet.runtime.backends import open_engine

    try:
        runner = open_engine(engine, weights, config)
        return {name: runner.cupy.asnumpy(array) for name, array in runner(image).items()}
    except EngineError as exc:
        raise InferError(f"--backend tensorrt: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trtnet.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("image", help="input image (any format OpenCV reads)")
    parser.add_argument("--weights", help="checkpoint (.pth or .safetensors); optional with --engine and --config")
    parser.add_argument("--out", required=True, help="output image (.png, .jpg)")
    parser.add_argument("--backend", default="emulator", choices=("emulator", "tensorrt"))
    parser.add_argument("--engine", help="--backend tensorrt: engine file from trtnet.build (default: build one)")
    parser.add_argument("--config", help="config name (default: recognised from the checkpoint)")
    parser.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
                        help=f"draw detections above this score (default {DEFAULT_SCORE_THRESHOLD})")
    parser.add_argument("--max-drawn", type=int, default=DEFAULT_MAX_DRAWN, help="draw at most this many")
    args = parser.parse_args(argv)
    try:
        image = read_image(args.image)
        inst, config = segment(args.weights, image, backend=args.backend, config_name=args.config,
                               score_threshold=args.score_threshold, engine=args.engine)
        write_image_atomically(args.out, draw(image, inst, config.class_names, max_drawn=args.max_drawn))
    except (InferError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    shown = min(len(inst.scores), args.max_drawn)
    print(f"{config.name}: {len(inst.scores)} detections above {args.score_threshold:g}, drew {shown} -> {args.out}")
    for i in range(shown):
        cls = int(inst.classes[i])
        print(f"  {config.class_names[cls]:<16} {float(inst.scores[i]):.3f}  box {[int(v) for v in inst.boxes[i]]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
