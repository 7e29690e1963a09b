"""``python -m trtnet.infer``: segment an image, a folder of images, a video file or a camera.

SOURCE is an image, a folder of images (sorted by name), a video file (anything OpenCV
decodes) or a camera index (0, 1, ...). Video configs run YolactEdge's schedule on every
multi-frame source, on either backend: a keyframe every --keyframe-interval frames and
the cheap non-keyframe network (flow-warped keyframe features) in between; with
--adaptive-keyframes a keyframe also follows any non-keyframe whose motion statistic
exceeds --motion-threshold (then --keyframe-interval is the longest gap). A folder is a
frame sequence (a frame of another size starts with a keyframe); --keyframe-interval 1
treats its images independently.

Outputs: -o an overlay (masks, boxes, labels) as an image, a folder (one image per frame)
or a video (the input's size and frame rate; codec by extension: .mp4/.m4v/.mov mp4v,
.avi MJPG, .mkv XVID); --json COCO-style results (image_id, frame, category_id, bbox,
score, mask_score, segmentation as RLE); --log one JSON line per frame (frame, keyframe,
motion, detections, milliseconds per stage). "score" is the box score and "mask_score" the
mask's: with YOLACT++'s mask re-scoring the box score x the predicted mask IoU (upstream's
eval scores masks with it), otherwise the box score again. The overlay labels and ranks
detections by the mask score, as upstream's display does. Every output holds the same detections, and the
summary counts them: those scoring above --score-threshold whose box has an area (a
zero-width or zero-height box is dropped, as upstream's COCO evaluation drops it); the
overlay draws the best --max-drawn of them. Every file is written under a temporary name and
renamed when complete. A camera runs until --max-frames or Ctrl-C (then the outputs are
completed); any other source is interrupted without output.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Optional, Sequence

from trtnet import cli

from trtnet.runtime import profiling
from trtnet.media.io import FolderWriter, MediaError, Source, VideoWriter, open_source, output_kind, write_image
from trtnet.media.overlay import DEFAULT_MAX_DRAWN, draw
from trtnet.runtime.video import DEFAULT_MOTION_THRESHOLD

DEFAULT_SCORE_THRESHOLD = 0.3  # upstream eval.py draws above --score_threshold; 0 shows all 100
PROG = "python -m trtnet.infer"
EXAMPLES = (
    "python -m trtnet.infer photo.jpg --weights yolact_edge_mobilenetv2.safetensors -o out.png",
    "python -m trtnet.infer frames/ --weights W.safetensors -o overlays/ --json results.json",
    "python -m trtnet.infer clip.mp4 --weights yolact_edge_vid_resnet50.safetensors -o out.mp4 "
    "--json results.json --log frames.jsonl",
    "python -m trtnet.infer clip.mp4 --weights W.safetensors --adaptive-keyframes --keyframe-interval 30 "
    "--log frames.jsonl",
    "python -m trtnet.infer 0 --engine key.engine --nonkeyframe-engine nonkey.engine --config yolact_edge_vid_resnet50 "
    "-o camera.mp4 --max-frames 300",
)
LOG_SUFFIXES = (".jsonl", ".log")


def make_parser():
    first, rest = __doc__.split("\n\n", 1)
    summary = first.split(": ", 1)[-1]
    p = cli.make_parser(PROG, f"{summary[:1].upper()}{summary[1:]}\n\n{rest.strip()}", EXAMPLES)
    p.add_argument("source", metavar="SOURCE", help="an image, a folder of images, a video file, or a camera index")
    cli.add_weights(p, required=False, help="checkpoint (.safetensors or .pth); optional with --engine and --config")
    cli.add_config(p)
    p.add_argument("-o", "--output", dest="output", type=Path, metavar="PATH",
                   help="overlay: an image file (image input), a video file (.mp4 .m4v .mov .avi .mkv) or a "
                        "folder (no extension: created if its parent exists)")
    cli.add_deprecated_alias(p, "--out", "-o/--output", "output", type=Path, metavar="PATH")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="COCO-style results: image_id, frame, category_id, bbox, score (box), mask_score, "
                        "segmentation (RLE)")
    p.add_argument("--log", type=Path, metavar="FILE",
                   help="one JSON line per frame: frame, keyframe, motion, detections, ms per stage (.jsonl)")
    cli.add_backend(p)
    p.add_argument("--engine", type=Path, metavar="FILE",
                   help="keyframe engine (python -m trtnet.build); implies --backend tensorrt "
                        "(default with tensorrt: build one from --weights)")
    cli.add_nonkeyframe_engine(p, "non-keyframe engine of a video config (python -m trtnet.build --nonkeyframe); "
                                  "implies --backend tensorrt")
    p.add_argument("--precision-plan", dest="precision", default=None, metavar="PLAN", type=cli.precision_plan_arg,
                   help="precision plan when the network is built here (emulator, or tensorrt without --engine): "
                        "a preset such as fp16 or int8_backbone_fpn, or e.g. 'fp16,head=fp32' (default fp32)")
    p.add_argument("--calibration-cache", type=Path, default=None, metavar="JSON",
                   help="int8 ranges for an int8 --precision-plan (python -m trtnet.calibrate -o cache.json)")
    p.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD, metavar="S",
                   help="keep detections scoring above S whose box has an area, in every output and the "
                        f"summary alike (default {DEFAULT_SCORE_THRESHOLD})")
    p.add_argument("--max-drawn", type=int, default=DEFAULT_MAX_DRAWN, metavar="N",
                   help=f"draw at most the N best detections (default {DEFAULT_MAX_DRAWN})")
    cli.add_keyframe_interval(p)  # with --adaptive-keyframes: the longest gap
    p.add_argument("--adaptive-keyframes", action="store_true",
                   help="video configs: also a keyframe right after a frame whose motion statistic "
                        "(flow/motion) is above --motion-threshold")
    p.add_argument("--motion-threshold", type=float, default=DEFAULT_MOTION_THRESHOLD, metavar="M",
                   help="--adaptive-keyframes: the motion above which the next frame is a keyframe "
                        f"(relative feature change; default {DEFAULT_MOTION_THRESHOLD})")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="stop after N frames (a camera otherwise runs until Ctrl-C)")
    return p


def _check_arguments(parser, args) -> str:
    backend = cli.backend_of(parser, args, "engine", "nonkeyframe_engine")
    if args.keyframe_interval is not None and args.keyframe_interval < 1:
        parser.error("--keyframe-interval must be >= 1")
    if not args.motion_threshold >= 0:
        parser.error("--motion-threshold must be >= 0")
    if not 0 <= args.score_threshold <= 1:
        parser.error("--score-threshold must be between 0 and 1")
    if args.max_drawn < 0:
        parser.error("--max-drawn must be >= 0")
    if args.max_frames is not None and args.max_frames < 1:
        parser.error("--max-frames must be >= 1")
    if args.engine is not None and args.precision is not None:
        parser.error("--precision-plan does not apply to --engine (an engine's precision is fixed at build time)")
    return backend


def _check_outputs(args, source: Source) -> Optional[str]:
    """The overlay kind; every output checked (folder, extension, not an input) before any work."""
    inputs = [source.path, args.weights, args.engine, args.nonkeyframe_engine, args.calibration_cache]
    kind = None
    if args.output is not None:
        kind = output_kind(args.output)
        if kind == "image" and source.kind != "image":
            raise cli.CliError(f"-o {args.output} is one image, and {source.describe()} gives many frames: "
                               "give a video file or a folder", cli.EXIT_USAGE)
        if kind == "folder":
            if source.kind == "folder" and args.output.resolve() == source.path.resolve():
                raise cli.CliError(f"-o {args.output} is the input folder; the overlays would replace the images")
            if not args.output.exists() and not args.output.parent.is_dir():
                raise cli.CliError(f"-o {args.output}: folder {args.output.parent} does not exist")
        else:
            cli.output_file(args.output, "overlay", inputs=inputs)
        if kind == "video" and source.kind == "folder":
            source.check_one_size(args.output)
    if args.json is not None:
        cli.output_file(args.json, "results file", suffixes=(".json",), inputs=inputs,
                        outputs={"-o": args.output})
    if args.log is not None:
        cli.output_file(args.log, "log file", suffixes=LOG_SUFFIXES, inputs=inputs,
                        outputs={"-o": args.output, "--json": args.json})
    return kind


def _segmenter(args, backend: str, store: Any, config: Any, source: Source):
    """A VideoSegmenter for the multi-frame sources of video configs, else a Segmenter."""
    from trtnet.runtime import Segmenter, VideoSegmenter, open_engines

    if args.adaptive_keyframes and not config.is_video:
        raise cli.CliError(f"--adaptive-keyframes: {config.name} is an image config (no flow network, no "
                           "non-keyframes to skip); drop the flag or use a video config", cli.EXIT_USAGE)
    video = config.is_video and source.kind != "image" and (args.keyframe_interval > 1 or args.adaptive_keyframes)
    if video and backend == "tensorrt" and args.nonkeyframe_engine is None and store is None:
        raise cli.CliError(f"{config.name} runs non-keyframes on {source.kind} input: give --nonkeyframe-engine "
                           "(or --weights to build one), or --keyframe-interval 1 for keyframes only", cli.EXIT_USAGE)
    if args.engine is None or (video and args.nonkeyframe_engine is None):
        cli.require_calibration(args.precision, args.calibration_cache)
    key, nonkey = open_engines(backend, store, config, video=video, engine=args.engine,
                               nonkey_engine=args.nonkeyframe_engine, precision=args.precision,
                               calibration_cache=args.calibration_cache)
    if nonkey is None:
        return Segmenter(key, score_threshold=args.score_threshold)
    return VideoSegmenter(key, nonkey, keyframe_interval=args.keyframe_interval,
                          motion_threshold=args.motion_threshold if args.adaptive_keyframes else None,
                          score_threshold=args.score_threshold)


def with_area(inst: Any) -> Any:
    """The detections whose pixel box has an area: the one set every output holds (upstream's
    COCO evaluation drops zero-area boxes, so the JSON must; the rest follow it)."""
    import numpy as np

    boxes = np.asarray(inst.boxes).reshape(-1, 4)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if bool(keep.all()):
        return inst
    return type(inst)(*(None if field is None else np.asarray(field)[keep] for field in inst))


def _schedule(segmenter: Any, args) -> str:
    if not hasattr(segmenter, "keyframe_interval"):
        return "every frame a keyframe"
    if segmenter.adaptive:
        return (f"adaptive keyframes: motion > {args.motion_threshold:g}, at least every "
                f"{args.keyframe_interval} frames")
    return f"a keyframe every {args.keyframe_interval} frames"


def _detections(inst: Any, config: Any) -> list[dict]:
    from trtnet.runtime.masks import mask_scores_of

    names_ = config.class_names
    return [{"class": names_[int(c)] if 0 <= int(c) < len(names_) else f"class {int(c)}",
             "category_id": int(config.category_ids[int(c)]), "score": round(float(s), 5),
             "mask_score": round(float(ms), 5), "box": [int(v) for v in b]}
            for c, s, ms, b in zip(inst.classes, inst.scores, mask_scores_of(inst), inst.boxes)]


def _coco_entries(frame: Any, inst: Any, source: Source, cat_of_class: dict) -> list[dict]:
    """One COCO result per detection: bbox and RLE segmentation together, with the frame;
    "score" the box score (the bbox result's), "mask_score" the segm result's."""
    from trtnet.media.coco import coco_results

    found = coco_results(frame.index, inst, cat_of_class)
    extra = {"frame": frame.index} if source.kind in ("video", "camera", "folder") else {}
    if source.kind in ("image", "folder"):
        extra["file_name"] = frame.name
    return [{**b, "mask_score": m["score"], **extra, "segmentation": m["segmentation"]}
            for b, m in zip(found["bbox"], found["segm"])]


def run(args, parser) -> int:
    from trtnet.config import get_config
    from trtnet.network.weights import resolve_config

    backend = _check_arguments(parser, args)
    for flag, path in (("--engine", args.engine), ("--nonkeyframe-engine", args.nonkeyframe_engine),
                       ("--calibration-cache", args.calibration_cache)):
        if path is not None:
            cli.input_file(path, f"{flag} file")
    if args.weights is None and not (args.engine is not None and args.config):
        raise cli.CliError("give --weights (or --engine with --config, to name the classes)", cli.EXIT_USAGE)
    if args.config is not None:
        get_config(args.config)  # an unknown name fails before any file is read
    with ExitStack() as stack:
        source = stack.enter_context(open_source(args.source))
        kind = _check_outputs(args, source)
        store = cli.load_weights(args.weights) if args.weights is not None else None
        config = resolve_config(store, args.config) if store is not None else get_config(args.config)
        args.keyframe_interval = cli.keyframe_interval(args.keyframe_interval, config, sequence=source.kind != "image")
        segmenter = _segmenter(args, backend, store, config, source)
        outputs = [str(p) for p in (args.output, args.json, args.log) if p is not None]
        print(f"{config.name} on {backend}: {source.describe()}; {_schedule(segmenter, args)}"
              f"{' -> ' + ', '.join(outputs) if outputs else ''}", file=sys.stderr)
        writer = None
        if kind == "video":
            writer = stack.enter_context(VideoWriter(args.output, source.fps))
        elif kind == "folder":
            writer = FolderWriter(args.output)
        log = None
        if args.log is not None:
            from trtnet.media.files import replaced_on_success

            log = stack.enter_context(open(stack.enter_context(replaced_on_success(args.log)), "w"))
        summary = _process(args, source, segmenter, config, writer, log, kind)
        if args.json is not None:
            from trtnet.media.files import write_atomically

            write_atomically(args.json, (json.dumps(summary.pop("results")) + "\n").encode("utf-8"))
    _report(args, source, config, summary)
    return cli.EXIT_OK


def _process(args, source: Source, segmenter: Any, config: Any, writer: Any, log: Any,
             kind: Optional[str]) -> dict:
    """Every frame through the segmenter and into the outputs; counts, results and timing."""
    cat_of_class = {i: c for i, c in enumerate(config.category_ids)}
    engine = getattr(segmenter, "keyframe", None) or segmenter.engine
    results: list[dict] = []
    counts = {"frames": 0, "keyframes": 0, "detections": 0}
    last_inst, last_shape = None, None
    progress = None
    if source.kind != "image":
        from tqdm import tqdm

        total = source.length if args.max_frames is None else min(source.length or args.max_frames, args.max_frames)
        progress = tqdm(total=total, unit="frame", desc=source.kind, file=sys.stderr, dynamic_ncols=True)
    start = time.perf_counter()
    frames = iter(source)
    try:
        while args.max_frames is None or counts["frames"] < args.max_frames:
            with profiling.StageTimes(engine.stream.synchronize) as times:
                with profiling.stage(profiling.READ):
                    frame = next(frames, None)
                if frame is None:
                    break
                if hasattr(segmenter, "reset") and frame.image.shape != last_shape and last_shape is not None:
                    segmenter.reset()  # another size: the keyframe state does not apply
                last_shape = frame.image.shape
                inst = with_area(segmenter(frame.image))
                keyframe = getattr(segmenter, "last_was_keyframe", True)
                if writer is not None or kind == "image":
                    with profiling.stage(profiling.DRAW):
                        overlay = draw(frame.image, inst, config.class_names, max_drawn=args.max_drawn)
                    with profiling.stage(profiling.WRITE):
                        if kind == "image":
                            write_image(args.output, overlay)
                        else:
                            writer.write(frame, overlay)
                if args.json is not None:
                    results += _coco_entries(frame, inst, source, cat_of_class)
            counts["frames"] += 1
            counts["keyframes"] += int(keyframe)
            counts["detections"] += len(inst.scores)
            last_inst = inst
            if log is not None:
                motion = getattr(segmenter, "last_motion", None)
                log.write(json.dumps({"frame": frame.index, "name": frame.name, "keyframe": keyframe,
                                      "motion": None if motion is None else round(motion, 6),
                                      "detections": _detections(inst, config),
                                      "ms": {k: round(v, 3) for k, v in times.ms.items()}}) + "\n")
                log.flush()
            if progress is not None:
                progress.update(1)
    except KeyboardInterrupt:
        if source.kind != "camera":
            raise
        print(f"{cli.error_prefix(PROG)}: stopped by Ctrl-C after {counts['frames']} frames", file=sys.stderr)
    finally:
        if progress is not None:
            progress.close()
    if counts["frames"] == 0:
        raise MediaError(f"{source.describe()}: no frame was read")
    return {**counts, "seconds": time.perf_counter() - start, "results": results, "last": last_inst}


def _report(args, source: Source, config: Any, summary: dict) -> None:
    inst = summary["last"]
    if source.kind == "image":
        shown = min(len(inst.scores), args.max_drawn)
        where = f", drew {shown} -> {args.output}" if args.output is not None else ""
        print(f"{config.name}: {len(inst.scores)} detections above {args.score_threshold:g}{where}")
        rescored = config.maskiou is not None
        listed = _detections(inst, config)
        if args.output is not None:  # the drawn ones, in the overlay's order (best mask score first)
            from trtnet.media.overlay import drawing_order, shown_scores

            listed = [listed[i] for i in drawing_order(shown_scores(inst), args.max_drawn)]
        for d in listed:
            mask = f"  mask {d['mask_score']:.3f}" if rescored else ""
            print(f"  {d['class']:<16} {d['score']:.3f}{mask}  box {d['box']}")
    else:
        n, seconds = summary["frames"], summary["seconds"]
        print(f"{config.name}: {n} frames, {summary['keyframes']} keyframes, {summary['detections']} detections "
              f"above {args.score_threshold:g}")
    for label, path in (("overlay", args.output), ("results", args.json), ("log", args.log)):
        if path is not None:
            print(f"wrote {label} {path}")
    seconds = summary["seconds"]
    print(f"done in {seconds:.1f} s ({summary['frames'] / max(seconds, 1e-9):.2f} frames/s)", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from trtnet.precision.calibration import CalibrationError
    from trtnet.config import UnknownConfigError
    from trtnet.precision import PrecisionError
    from trtnet.runtime import EngineError
    from trtnet.network.weights import WeightError

    parser = make_parser()
    args = parser.parse_args(argv)
    return cli.run("trtnet.infer", lambda: run(args, parser),
                   (MediaError, EngineError, UnknownConfigError, PrecisionError, WeightError,
                    CalibrationError, OSError))


if __name__ == "__main__":
    sys.exit(main())
