"""``python -m trtnet.eval``: box and mask AP on a COCO-format dataset, like the paper's Table I.

    python -m trtnet.eval --annotations instances_val2017.json --images val2017/ \\
        --weights model.safetensors --precision-plan fp32 fp16 int8_backbone_fpn \\
        --calibration-cache calibration.json -o metrics.json

Every image of the annotation file is segmented (the keyframe network on the NumPy
emulator, or a TensorRT engine), postprocessed like upstream's COCO evaluation
(``postprocess`` with crop, no score threshold, up to 100 detections), encoded as COCO
results (boxes x, y, w, h; masks as RLE) and scored with pycocotools' COCOeval: box AP ranks
the boxes by their box scores, mask AP the masks by their mask scores (YOLACT++'s re-scored
``mask_scores`` output; the box scores for every other config), as upstream's eval does. Classes
map to the dataset's category ids as upstream's label map does (COCO's ids skip a few
numbers; YouTube-VIS uses 1..40); a dataset whose category names do not match the
config's classes is refused. Frames of a video dataset in COCO format (YouTube-VIS
frames as images with ``video_id`` and ``frame_id``, ``file_name`` like
``<video>/<frame>.jpg``) are evaluated by YolactEdge's schedule when the config is a video
config: video by video in frame order, a keyframe every ``--keyframe-interval`` frames (default
5, as in infer and upstream) and the flow-warped non-keyframe network between;
``--keyframe-interval 1``, image configs, still images and ``--engine`` rows run every frame
through the keyframe network.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from trtnet import cli
from trtnet.media.coco import coco_results
from trtnet.config import Config, UnknownConfigError, get_config
from trtnet.media.files import write_atomically
from trtnet.runtime.masks import Instances
from trtnet.precision import COMPONENTS, PRESETS, PrecisionError, PrecisionPlan, as_plan
from trtnet.network.weights import WeightError, resolve_config

# COCOeval.stats, in its order (pycocotools cocoeval.py summarize())
STATS_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
IOU_TYPES = ("bbox", "segm")

Runner = Callable[[np.ndarray], Mapping[str, Any]]  # BGR frame HxWx3 -> det/* and proto outputs


class EvalError(RuntimeError):
    """The evaluation cannot run (bad annotation file, categories, images); the message says why."""


# -- dataset -----------------------------------------------------------------------------


def _quiet():
    """pycocotools prints progress to stdout; keep the command's output to its own table."""
    return contextlib.redirect_stdout(io.StringIO())


def _norm(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").split())


def category_map(config: Config, categories: Sequence[Mapping[str, Any]], source: str = "") -> dict[int, int]:
    """0-based class -> the dataset's category id, as upstream's label map assigns them.

    Every category of the dataset must be one of the config's classes under the same id
    (names compared without case and '_' vs ' '); classes the dataset lacks are dropped."""
    by_id = dict(zip(config.category_ids, range(len(config.class_names))))
    wrong = []
    mapping: dict[int, int] = {}
    for cat in categories:
        cid, cname = cat.get("id"), cat.get("name", "?")
        cls = by_id.get(cid) if isinstance(cid, int) else None
        if cls is None:
            wrong.append(f"category {cid} {cname!r} is no class of {config.name}")
        elif _norm(config.class_names[cls]) != _norm(cname):
            wrong.append(f"category {cid} is {cname!r} in the dataset but {config.class_names[cls]!r} "
                         f"in {config.name}")
        else:
            mapping[cls] = cid
    if wrong:
        more = f"; and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        raise EvalError(f"{source}: the dataset's categories do not fit config {config.name} "
                        f"(its {len(config.class_names)} classes and upstream's category ids): "
                        f"{'; '.join(wrong[:5])}{more}")
    if not mapping:
        raise EvalError(f"{source}: the dataset has no categories")
    return mapping


@dataclass
class Dataset:
    """A COCO-format annotation file and the folder its ``file_name``s are relative to."""

    annotations: Path
    images: Path
    coco: Any                       # pycocotools.coco.COCO
    image_ids: list[int]
    has_masks: bool

    def video_of(self, image_id: int) -> Any:
        """The video an image is a frame of (None for still images)."""
        return self.coco.imgs[image_id].get("video_id")

    def image_path(self, image_id: int) -> Path:
        return self.images / self.coco.imgs[image_id]["file_name"]

    def read(self, image_id: int) -> np.ndarray:
        import cv2

        path = self.image_path(image_id)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EvalError(f"cannot read {path} as an image")
        info = self.coco.imgs[image_id]
        if (info.get("height"), info.get("width")) != image.shape[:2]:
            raise EvalError(f"{path} is {image.shape[0]}x{image.shape[1]} but {self.annotations} says "
                            f"{info.get('height')}x{info.get('width')}")
        return image


def _check_annotations(data: Any, source: Path) -> None:
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise EvalError(f"{source} is not a COCO annotation file (needs lists 'images', 'annotations' "
                        "and 'categories')")
    for i, img in enumerate(data["images"]):
        if not (isinstance(img, dict) and "id" in img and isinstance(img.get("file_name"), str)
                and isinstance(img.get("height"), int) and isinstance(img.get("width"), int)):
            raise EvalError(f"{source}: images[{i}] needs id, file_name, height and width")
    ids = {img["id"] for img in data["images"]}
    for i, ann in enumerate(data["annotations"]):
        if not (isinstance(ann, dict) and all(k in ann for k in ("id", "image_id", "category_id", "bbox"))):
            raise EvalError(f"{source}: annotations[{i}] needs id, image_id, category_id and bbox")
        if ann["image_id"] not in ids:
            raise EvalError(f"{source}: annotations[{i}] refers to image {ann['image_id']}, which is not listed")
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])


def frame_order(images: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """Image ids in evaluation order: by id, or for video frames (every image has a
    ``video_id``) video by video, each in frame order (``frame_id``, else ``file_name``)."""
    infos = list(images.values())
    if not infos or not all("video_id" in i for i in infos):
        return sorted(images)
    frame_key = "frame_id" if all("frame_id" in i for i in infos) else "file_name"
    return [i["id"] for i in sorted(infos, key=lambda i: (str(i["video_id"]), i[frame_key], i["id"]))]


def load_dataset(annotations: str | Path, images: str | Path, *, max_images: Optional[int] = None) -> Dataset:
    """The dataset, checked before any image is segmented: readable JSON in COCO's layout and
    every listed image file present."""
    from pycocotools.coco import COCO

    annotations, images = Path(annotations), Path(images)
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalError(f"{annotations} is not a JSON file: {exc}") from None
    _check_annotations(data, annotations)
    coco = COCO()
    coco.dataset = data
    with _quiet():
        coco.createIndex()
    image_ids = frame_order(coco.imgs)
    if max_images is not None:
        image_ids = image_ids[:max_images]
    if not image_ids:
        raise EvalError(f"{annotations} lists no images")
    has_masks = bool(data["annotations"]) and all("segmentation" in a for a in data["annotations"])
    dataset = Dataset(annotations, images, coco, image_ids, has_masks)
    missing = [str(dataset.image_path(i)) for i in image_ids if not dataset.image_path(i).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise EvalError(f"{len(missing)} image(s) of {annotations} not found under {images}: "
                        f"{', '.join(missing[:3])}{more}")
    return dataset


# -- results and metrics -------------------------------------------------------------------


def coco_metrics(dataset: Dataset, results: Sequence[dict], iou_type: str) -> dict[str, float]:
    """COCOeval's 12 summary numbers (STATS_NAMES) of ``results`` on the dataset's images."""
    from pycocotools.cocoeval import COCOeval

    if not results:  # loadRes cannot take an empty list; nothing detected scores 0
        return {k: 0.0 for k in STATS_NAMES}
    with _quiet():
        detections = dataset.coco.loadRes(list(results))
        evaluator = COCOeval(dataset.coco, detections, iou_type)
        evaluator.params.imgIds = list(dataset.image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {k: float(v) for k, v in zip(STATS_NAMES, evaluator.stats)}


@dataclass
class PlanResult:
    """One row of the table: a plan (or engine) and its metrics."""

    label: str
    plan: Optional[PrecisionPlan]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    ms_per_frame: float = 0.0
    detections: int = 0
    keyframes: Optional[int] = None  # frames that ran the keyframe network (video schedule only)
    frames: int = 0

    def as_json(self) -> dict:
        extra = {} if self.keyframes is None else {"keyframes": self.keyframes}
        return {**self.metrics, "ms_per_frame": self.ms_per_frame, **extra}


def evaluate(dataset: Dataset, runner: Runner, cat_of_class: Mapping[int, int], *, label: str = "fp32",
             plan: Optional[PrecisionPlan] = None, progress: bool = False,
             instances: Optional[Callable[[Mapping[str, Any], tuple[int, int]], Instances]] = None) -> PlanResult:
    """Segment every image with ``runner`` and score the results (box AP; mask AP when the
    annotations have segmentations). ``instances``: the postprocess (default upstream's)."""
    from trtnet.runtime.segmenter import instances_from_outputs, to_host

    postprocess = instances or (lambda out, hw: to_host(instances_from_outputs(out, hw)))
    results: dict[str, list[dict]] = {t: [] for t in IOU_TYPES}
    seconds = 0.0
    ids = dataset.image_ids
    if progress:
        from tqdm import tqdm

        ids = tqdm(ids, desc=label, unit="frame", file=sys.stderr)
    video: Any = object()
    for image_id in ids:
        image = dataset.read(image_id)
        if hasattr(runner, "new_video") and dataset.video_of(image_id) != video:
            video = dataset.video_of(image_id)
            runner.new_video()  # every video starts with a keyframe
        start = time.perf_counter()
        inst = postprocess(runner(image), image.shape[:2])
        seconds += time.perf_counter() - start
        for t, found in coco_results(image_id, inst, cat_of_class).items():
            results[t] += found
    row = PlanResult(label, plan, ms_per_frame=1000 * seconds / len(dataset.image_ids),
                     detections=len(results["bbox"]), keyframes=getattr(runner, "keyframes", None),
                     frames=len(dataset.image_ids))
    for t in IOU_TYPES if dataset.has_masks else ("bbox",):
        row.metrics[t] = coco_metrics(dataset, results[t], t)
    return row


# -- runners -------------------------------------------------------------------------------


def open_runner(backend: str, store: Any, config: Config, plan: Optional[PrecisionPlan] = None,
                engine: Optional[Path] = None, calibration_cache: Optional[Path] = None) -> Runner:
    """The keyframe engine on ``backend`` (trtnet.runtime: the emulator, or TensorRT from the
    ``engine`` file or built here for ``plan``), one frame in, its outputs out."""
    from trtnet.runtime import EngineError
    from trtnet.runtime.backends import open_engines

    try:
        key, _ = open_engines(backend, store, config, video=False, engine=engine, precision=plan,
                              calibration_cache=calibration_cache)
    except EngineError as exc:
        raise EvalError(f"--backend {backend}: {exc}") from None
    return key


class ScheduleRunner:
    """YolactEdge's video schedule over a dataset's frames (trtnet.runtime.VideoSegmenter): a
    keyframe every ``keyframe_interval`` frames of a video, the non-keyframe network between."""

    def __init__(self, segmenter: Any) -> None:
        self.segmenter = segmenter
        self.keyframes = 0

    def new_video(self) -> None:
        self.segmenter.reset()

    def __call__(self, image: np.ndarray) -> Mapping[str, Any]:
        out = self.segmenter.outputs(image)
        self.keyframes += int(self.segmenter.last_was_keyframe)
        return out


def open_schedule(backend: str, store: Any, config: Config, plan: Optional[PrecisionPlan],
                  keyframe_interval: int, calibration_cache: Optional[Path] = None) -> ScheduleRunner:
    """Keyframe and non-keyframe networks of a video config on ``backend``, run on a schedule
    (an int8 plan takes each network's ranges from ``calibration_cache``)."""
    from trtnet.runtime import EngineError, VideoSegmenter
    from trtnet.runtime.backends import open_engines

    try:
        key, nonkey = open_engines(backend, store, config, video=True, precision=plan,
                                   calibration_cache=calibration_cache)
    except EngineError as exc:
        raise EvalError(f"--backend {backend}: {exc}") from None
    return ScheduleRunner(VideoSegmenter(key, nonkey, keyframe_interval=keyframe_interval))


def engine_description(engine: Path) -> dict:
    """What trtnet.build recorded about ``engine`` in its sidecar (config, precision plan), or {}
    when there is no readable sidecar (the row then shows the plan as 'engine')."""
    from trtnet.builder.sidecar import sidecar_path

    path = sidecar_path(engine)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return content if isinstance(content, dict) else {}


# -- report --------------------------------------------------------------------------------


def format_table(rows: Sequence[PlanResult], config: Config) -> str:
    """Precision per component, box AP, mask AP (x100, as the paper prints them) and ms/frame."""
    comps = [c for c in COMPONENTS if c != "flow" or config.is_video]
    head = (f"{'plan':<22}" + "".join(f"{c:>9}" for c in comps)
            + f"{'box AP':>9}{'mask AP':>9}{'ms/frame':>10}")
    scheduled = any(r.keyframes is not None for r in rows)
    head += f"{'keyframes':>11}" if scheduled else ""
    lines = [head, "-" * len(head)]
    for r in rows:
        precs = [r.plan.of(c) if r.plan is not None else "engine" for c in comps]
        box = r.metrics.get("bbox", {}).get("AP")
        mask = r.metrics.get("segm", {}).get("AP")
        keys = f"{r.keyframes}/{r.frames}" if r.keyframes is not None else "all"
        lines.append(f"{r.label:<22}" + "".join(f"{p:>9}" for p in precs)
                     + f"{_ap(box):>9}{_ap(mask):>9}{r.ms_per_frame:>10.1f}" + (f"{keys:>11}" if scheduled else ""))
    return "\n".join(lines)


def _ap(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


# -- CLI -----------------------------------------------------------------------------------

EXAMPLES = (
    "python -m trtnet.eval --annotations val2017.json --images val2017/ --weights r50.safetensors",
    "python -m trtnet.eval --annotations val2017.json --images val2017/ --weights r50.safetensors "
    "--precision-plan fp32 fp16 int8_backbone_fpn --calibration-cache r50.calib.json -o metrics.json",
    "python -m trtnet.eval --annotations val2017.json --images val2017/ --config yolact_edge_resnet50 "
    "--engine r50.fp16.engine r50.int8.engine",
)


def make_parser():
    p = cli.make_parser("python -m trtnet.eval", "Box and mask AP (pycocotools COCOeval) of a YolactEdge model "
                        "on a COCO-format dataset, one row per precision plan or engine, like the paper's "
                        "Table I.", EXAMPLES)
    p.add_argument("--annotations", required=True, type=Path, metavar="JSON",
                   help="COCO-format annotation file (images, annotations with bbox and segmentation, "
                        "categories)")
    p.add_argument("--images", required=True, type=Path, metavar="DIR",
                   help="folder the annotation file's image file_names are relative to")
    cli.add_weights(p, required=False, help="checkpoint (.safetensors or .pth); needed unless every row "
                                            "is an --engine")
    cli.add_config(p)
    p.add_argument("--precision-plan", dest="precision", nargs="+", default=None, metavar="PLAN",
                   type=cli.precision_plan_arg,
                   help=f"one or more plans, one table row each: presets ({', '.join(PRESETS)}) or e.g. "
                        "'fp16,head=fp32' (default fp32)")
    p.add_argument("--calibration-cache", type=Path, default=None, metavar="JSON",
                   help="int8 ranges for int8 plans (python -m trtnet.calibrate -o cache.json)")
    cli.add_backend(p)
    p.add_argument("--engine", type=Path, nargs="+", default=None, metavar="FILE",
                   help="serialized engines (python -m trtnet.build), one row each; implies --backend "
                        "tensorrt")
    cli.add_keyframe_interval(p)  # frames with a video_id, video by video; still images: keyframes
    p.add_argument("--max-images", type=int, default=None, metavar="N",
                   help="evaluate only the first N images (by id; video frames video by video in frame order)")
    cli.add_output(p, "write the metrics as JSON: {plan: {bbox: {AP, AP50, ...}, segm: {...}, "
                      "ms_per_frame}}", required=False)
    return p


def _plans(args) -> list[PrecisionPlan]:
    return [as_plan(text) for text in (args.precision or ["fp32"])]


def _label(plan: PrecisionPlan) -> str:
    return plan.preset or str(plan)


def run(args, parser) -> int:
    backend = cli.backend_of(parser, args, "engine")
    if args.engine and args.precision:
        parser.error("--precision-plan does not apply to --engine (an engine's precision is fixed at build time)")
    if args.max_images is not None and args.max_images < 1:
        parser.error("--max-images must be >= 1")
    if args.keyframe_interval is not None and args.keyframe_interval < 1:
        parser.error("--keyframe-interval must be >= 1")
    if args.keyframe_interval is not None and args.keyframe_interval > 1 and args.engine:
        parser.error("--keyframe-interval needs the non-keyframe network: give --weights and a plan, not --engine")
    if args.config is not None:
        get_config(args.config)
    plans = [] if args.engine else _plans(args)
    cli.input_file(args.annotations, "annotation file")
    cli.input_dir(args.images, "image folder")
    engines = [cli.input_file(e, "engine file") for e in args.engine or ()]
    if args.calibration_cache is not None:
        cli.input_file(args.calibration_cache, "calibration cache")
    described = {e: engine_description(e) for e in engines}
    engine_configs = {d["config"] for d in described.values() if d.get("config")}
    if args.config is None and args.weights is None and len(engine_configs) == 1:
        args.config = engine_configs.pop()  # named by the engines' sidecars (trtnet.build)
    if args.weights is None and not (engines and args.config):
        raise cli.CliError("give --weights (or --engine with --config, to name the classes)")
    if args.output is not None:
        cli.output_file(args.output, "metrics file", suffixes=(".json",),
                        inputs=[args.annotations, args.weights, args.calibration_cache, *engines])
    int8 = [p for p in plans if p.uses_int8]
    if int8:
        cli.require_calibration(_label(int8[0]), args.calibration_cache)

    store = cli.load_weights(args.weights) if args.weights is not None else None
    config = resolve_config(store, args.config) if store is not None else get_config(args.config)
    cli.keyframe_interval(args.keyframe_interval, config, sequence=True)  # an image config refuses a gap
    interval, dataset = 1, None  # engine rows: every frame by the keyframe engine
    rows_to_run: list[tuple[str, Optional[PrecisionPlan], Callable[[], Runner]]] = []
    if engines:
        for e in engines:
            built_for = described[e].get("config")
            if built_for and get_config(built_for).name != config.name:
                raise cli.CliError(f"engine {e} was built for {built_for} (its sidecar says), not {config.name}")
            plan_text = described[e].get("precision_plan", {}).get("plan")
            plan = as_plan(plan_text) if plan_text else None
            rows_to_run.append((e.name, plan, lambda e=e: open_runner("tensorrt", store, config, engine=e)))
    else:
        from trtnet.precision.calibration import load_plan

        dataset = load_dataset(args.annotations, args.images, max_images=args.max_images)
        # the default schedule needs videos: frames with a video_id (still images are keyframes)
        videos = bool(dataset.image_ids) and dataset.video_of(dataset.image_ids[0]) is not None
        interval = cli.keyframe_interval(args.keyframe_interval, config, sequence=videos)
        for plan in plans:
            cache = None
            if plan.uses_int8:
                load_plan(args.calibration_cache, store, config, plan)  # a cache that does not fit fails now
                cache = args.calibration_cache
            if interval > 1:
                make = lambda plan=plan, cache=cache: open_schedule(  # noqa: E731
                    backend, store, config, plan, interval, cache)
            else:
                make = lambda plan=plan, cache=cache: open_runner(backend, store, config, plan,  # noqa: E731
                                                                   calibration_cache=cache)
            rows_to_run.append((_label(plan), plan, make))

    if dataset is None:
        dataset = load_dataset(args.annotations, args.images, max_images=args.max_images)
    cat_of_class = category_map(config, dataset.coco.dataset["categories"], str(args.annotations))
    if not dataset.has_masks:
        print("note: the annotations have no segmentations: box AP only", file=sys.stderr)

    print(f"evaluating {len(dataset.image_ids)} images of {args.annotations} ({len(cat_of_class)} categories) "
          f"with {config.name} on {backend}"
          f"{f', a keyframe every {interval} frames' if interval > 1 else ''}: "
          f"{', '.join(r[0] for r in rows_to_run)}", file=sys.stderr)
    start = time.perf_counter()
    rows = [evaluate(dataset, make(), cat_of_class, label=label, plan=plan, progress=True)
            for label, plan, make in rows_to_run]
    print(format_table(rows, config))
    if args.output is not None:
        text = json.dumps({r.label: r.as_json() for r in rows}, indent=2) + "\n"
        write_atomically(args.output, text.encode("utf-8"))
        print(f"wrote {args.output}")
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return cli.EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    from trtnet.precision.calibration import CalibrationError

    parser = make_parser()
    args = parser.parse_args(argv)
    return cli.run("trtnet.eval", lambda: run(args, parser),
                   (EvalError, UnknownConfigError, PrecisionError, WeightError, CalibrationError, OSError))


if __name__ == "__main__":
    sys.exit(main())
