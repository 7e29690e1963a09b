"""Check a trtnet network against reference outputs of the PyTorch model.

``python -m trtnet.verify CASE_DIR [--backend emulator|tensorrt|reference] [--frames key,fullB]``

CASE_DIR is a folder in the format of ``../shared/reference/<case>/`` (manifest.json,
inputs.npz, outputs.npz, weights.pth; see :mod:`trtnet.verification.reference_data`). For every
pass, the network for the case's config is built (keyframe, or non-keyframe with the
state of the keyframe pass it follows), run on the pass's frame, and every
reference tensor it can match is compared (max abs error, error relative to the
tensor's max abs value, pass/fail), then the detections (one-to-one matching by
class/score/box, box error in pixels, score error, mask IoU). Exit status: 0 when
everything passes, 1 when a check fails or the run is impossible (bad folder, weights,
engine), 2 for a bad command line (e.g. --engine with --backend emulator).

Backends: ``emulator`` (NumPy, CPU), ``tensorrt`` (real TensorRT + GPU) and
``reference``, which runs no network: it feeds the case's own stored head outputs
through trtnet's NumPy Fast NMS and mask assembler -- a check of the folder's
consistency and of the comparison itself.

The comparison itself (checks, tolerances, report) is :mod:`trtnet.verification.compare`; this module
runs the passes and is the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from trtnet import names
from trtnet.verification.compare import (FP32, PassResult, Tolerances, detect_settings, format_report,  # noqa: F401 (re-exported)
                            reference_outputs, verify_pass, wanted_tensors)
from trtnet.verification.reference_data import ReferenceCase


class VerifyError(RuntimeError):
    """The verification cannot run (missing backend, unsupported pass, bad folder)."""


class PassRunner:
    """Runs the passes of a reference case through engines of either backend; host arrays out.

    The engines have one interface (trtnet.runtime: an EmulatedEngine or a TensorRT Engine),
    so nothing here depends on the backend. Keyframe passes run the keyframe engine; a
    non-keyframe pass (video configs) runs the non-keyframe engine (opened on first use) on
    its frame with the state the keyframe engine exported on the pass it follows (manifest:
    "moving_statistics: from key"). Emulated engines also return the intermediate tensors the
    case stores (their ``fetch``), so every stored tensor is compared; a TensorRT engine gives
    its outputs only.
    """

    def __init__(self, backend: str, keyframe, nonkeyframe: Callable[[], object] | None = None):
        self.backend = backend
        self.keyframe = keyframe
        self._make_nonkeyframe = nonkeyframe
        self._nonkeyframe = None
        self.outputs: dict[str, dict[str, np.ndarray]] = {}  # per keyframe pass, for its state

    def _run(self, engine, inputs: dict, pass_name: str) -> dict[str, np.ndarray]:
        from trtnet.runtime import EngineError
        from trtnet.runtime.segmenter import host_array

        try:
            out = engine.run(inputs)
        except EngineError as exc:
            raise VerifyError(f"--backend {self.backend}, pass {pass_name}: {exc}") from None
        return {name: host_array(array) for name, array in out.items()}

    def __call__(self, ref: ReferenceCase, pass_name: str) -> dict[str, np.ndarray]:
        from trtnet.network.yolact_edge import NONKEY_REFERENCE_NAMES, keyframe_state

        image = np.ascontiguousarray(ref.image(pass_name)[None])
        if not ref.is_video_nonkey(pass_name):
            out = self._run(self.keyframe, {names.INPUT: image}, pass_name)
            self.outputs[pass_name] = out
            return out
        key_pass = keyframe_pass_of(ref, pass_name)
        if key_pass not in self.outputs:
            self(ref, key_pass)
        if self._nonkeyframe is None:
            if self._make_nonkeyframe is None:
                raise VerifyError(f"pass {pass_name} needs a non-keyframe engine (--nonkeyframe-engine)")
            self._nonkeyframe = self._make_nonkeyframe()
        state = {k: np.ascontiguousarray(v, np.float32) for k, v in keyframe_state(self.outputs[key_pass]).items()}
        out = self._run(self._nonkeyframe, {names.INPUT: image, **state}, pass_name)
        out.update({ref_name: state[name] for name, ref_name in NONKEY_REFERENCE_NAMES.items() if name in state})
        return out


def keyframe_pass_of(ref: ReferenceCase, pass_name: str) -> str:
    """The keyframe pass whose state a non-keyframe pass used (manifest, else the one before it)."""
    import re

    desc = ref.manifest.get("frames", {}).get("passes", {}).get(pass_name, "")
    match = re.search(r"moving_statistics:\s*from (\w+)", desc)
    if match and match.group(1) in ref.passes:
        return match.group(1)
    earlier = [p for p in ref.passes[: ref.passes.index(pass_name)] if not ref.is_video_nonkey(p)]
    if not earlier:
        raise VerifyError(f"cannot tell which keyframe pass non-keyframe pass {pass_name!r} follows")
    return earlier[-1]


def plan_with_ranges(precision, calibration_cache, weights, config, *, nonkeyframe: bool = False):
    """The precision plan to build: ``precision`` as given, or with the int8 ranges of
    ``calibration_cache`` (python -m trtnet.calibrate), checked against the network."""
    if calibration_cache is None:
        return precision
    from trtnet.precision.calibration import load_plan

    return load_plan(calibration_cache, weights, config, precision, nonkeyframe=nonkeyframe)


def _wanted_by(ref: ReferenceCase, nonkeyframe: bool) -> set[str]:
    """The tensors the case stores for its keyframe (or non-keyframe) passes."""
    found: set[str] = set()
    for p in ref.passes:
        if ref.is_video_nonkey(p) == nonkeyframe:
            found |= wanted_tensors(ref, p)
    return found


def make_runner(backend: str, ref: ReferenceCase, weights=None, precision: str | None = None, engine=None,
                nonkey_engine=None, calibration_cache=None) -> Callable[[ReferenceCase, str], dict]:
    """The case's passes on ``backend``: the reference's own head outputs, or a PassRunner over
    emulated engines (built from the weights) or TensorRT engines (files, or built here)."""
    if backend == "reference":
        return lambda r, p: reference_outputs(r, p)
    if backend not in ("emulator", "tensorrt"):
        raise VerifyError(f"unknown backend {backend!r} (emulator, tensorrt, reference)")
    from trtnet.config import get_config
    from trtnet.runtime import EmulatedEngine, EngineError
    from trtnet.runtime.backends import open_engine
    from trtnet.network.weights import WeightStore

    config = get_config(ref.config_name)
    store = None

    def weights_store():
        nonlocal store
        if store is None:
            store = WeightStore.load(weights or ref.weights_path)
        return store

    def open_(nonkeyframe: bool):
        kind = "non-keyframe " if nonkeyframe else ""
        try:
            if backend == "tensorrt":
                given = nonkey_engine if nonkeyframe else engine
                if given is not None:
                    return open_engine(given)
                return open_engine(None, weights_store(), config, precision, nonkeyframe=nonkeyframe,
                                   calibration_cache=calibration_cache)
            plan = plan_with_ranges(precision, calibration_cache, weights_store(), config, nonkeyframe=nonkeyframe)
            emulated = EmulatedEngine(weights_store(), config, nonkeyframe=nonkeyframe, plan=plan)
            emulated.fetch = sorted(_wanted_by(ref, nonkeyframe) & emulated.tensor_names - set(emulated.outputs))
            return emulated
        except EngineError as exc:
            raise VerifyError(f"--backend {backend}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a network that cannot be built, with the cause
            from trtnet import cli

            raise VerifyError(f"building the {config.name} {kind}network failed: {cli.message_of(exc)}") from exc

    return PassRunner(backend, open_(False), (lambda: open_(True)) if config.is_video else None)


def select_passes(ref: ReferenceCase, frames: str | None) -> list[str]:
    """The passes to check: those named in ``frames`` (comma-separated), else every pass."""
    if not frames:
        return list(ref.passes)
    wanted = [f.strip() for f in frames.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in ref.passes]
    if unknown:
        raise VerifyError(f"unknown pass(es) {unknown} in {ref.path}; passes: {ref.passes}")
    return wanted


def verify_case(case_dir: str | Path, backend: str = "emulator", frames: str | None = None,
                weights: str | Path | None = None, runner=None, precision: str | None = None,
                tol: Tolerances = FP32, engine: str | Path | None = None,
                nonkey_engine: str | Path | None = None,
                calibration_cache: str | Path | None = None) -> tuple[list[PassResult], ReferenceCase]:
    ref = ReferenceCase(case_dir)
    to_run = select_passes(ref, frames)
    if runner is None:
        runner = make_runner(backend, ref, weights, precision, engine, nonkey_engine, calibration_cache)
    conf_thresh = detect_settings(ref)["conf_thresh"]
    results = [verify_pass(ref, p, runner(ref, p), conf_thresh=conf_thresh, tol=tol)
               for p in ref.passes if p in to_run]
    return results, ref


EXAMPLES = (
    "python -m trtnet.verify ../shared/reference/mobilenetv2",
    "python -m trtnet.verify ../shared/reference/vid_resnet50 --frames key,nonkey",
    "python -m trtnet.verify path/to/case --engine model.engine          # implies --backend tensorrt",
    "python -m trtnet.verify path/to/case --precision-plan int8_backbone_fpn --calibration-cache c.json "
    "--tolerance-factor 50 -o report.txt",
)
REPORT_SUFFIXES = (".txt",)


def make_parser():
    from trtnet import cli

    parser = cli.make_parser("python -m trtnet.verify", __doc__.split("\n\n")[0], EXAMPLES)
    parser.add_argument("case_dir", type=Path,
                        help="reference case folder (manifest.json, inputs.npz, outputs.npz, weights)")
    parser.add_argument("--backend", default=None, choices=("emulator", "tensorrt", "reference"),
                        help="emulator: NumPy on CPU (default); tensorrt: real TensorRT + GPU (implied by "
                        "--engine); reference: no network, the folder's own head outputs through trtnet's "
                        "Fast NMS and masks")
    parser.add_argument("--frames", help="comma-separated passes to check (default: every pass the backend can run)")
    cli.add_weights(parser, required=False, help="weights file (default: the case's weights.pth)")
    parser.add_argument("--config", default=None, metavar="NAME",
                        help="config the case must be for (default: the one its manifest names)")
    cli.add_output(parser, "also write the report to this file (.txt)", required=False)
    parser.add_argument("--precision-plan", "--precision", dest="precision", metavar="PLAN", type=cli.precision_plan_arg,
                        help="precision plan for the network, e.g. fp16 or fp16,head=fp32 (default fp32; the "
                        "tolerances are fp32 targets, see --tolerance-factor)")
    parser.add_argument("--engine", type=Path, metavar="FILE",
                        help="a serialized keyframe engine of the case's config (implies --backend tensorrt; "
                        "default with --backend tensorrt: build one here with trtnet.build)")
    parser.add_argument("--calibration-cache", type=Path, metavar="JSON",
                        help="int8 ranges for an int8 --precision-plan (python -m trtnet.calibrate -o cache.json)")
    cli.add_nonkeyframe_engine(parser, "video cases: a serialized non-keyframe engine (python -m trtnet.build "
                               "--nonkeyframe; implies --backend tensorrt; default: build one here)")
    parser.add_argument("--tolerance-factor", type=float, default=1.0,
                        help="multiply every numeric tolerance (e.g. 20 for an fp16 plan); default 1: feature "
                        "maps within 1e-3 x max|ref|, probabilities, scores and relative boxes within 1e-4, "
                        "pixel boxes 1 px, mask IoU >= 0.99")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from trtnet import cli
    from trtnet.precision.calibration import CalibrationError
    from trtnet.config import UnknownConfigError
    from trtnet.precision import PrecisionError
    from trtnet.network.weights import WeightError

    parser = make_parser()
    args = parser.parse_args(argv)
    backend = cli.backend_of(parser, args, "engine", "nonkeyframe_engine")
    if not args.tolerance_factor > 0:
        parser.error("--tolerance-factor must be > 0")

    def run() -> int:
        import time

        from trtnet.config import get_config

        cli.input_dir(args.case_dir, "reference case folder")
        for path, what in ((args.weights, "weights file"), (args.engine, "engine file"),
                           (args.nonkeyframe_engine, "non-keyframe engine file"),
                           (args.calibration_cache, "calibration cache")):
            if path is not None:
                cli.input_file(path, what)
        ref = ReferenceCase(args.case_dir)
        try:
            select_passes(ref, args.frames)
        except VerifyError as exc:  # a pass name the case does not have: the command line is wrong
            raise cli.CliError(f"--frames: {exc}", cli.EXIT_USAGE) from None
        case_config = get_config(ref.config_name).name
        if args.config is not None and get_config(args.config).name != case_config:
            raise cli.CliError(f"--config {args.config}: {ref.path} is a case of {case_config}")
        if args.output is not None:
            cli.output_file(args.output, "report file", suffixes=REPORT_SUFFIXES,
                            inputs=[args.weights, args.engine, args.nonkeyframe_engine, args.calibration_cache])
        if backend != "reference":
            cli.require_calibration(args.precision, args.calibration_cache)
        print(f"verifying {ref.path} ({ref.config_name}) on {backend}: passes "
              f"{', '.join(select_passes(ref, args.frames))}", file=sys.stderr)
        start = time.perf_counter()
        results, ref = verify_case(args.case_dir, backend, args.frames, args.weights,
                                   precision=args.precision, tol=FP32.scaled(args.tolerance_factor),
                                   engine=args.engine, nonkey_engine=args.nonkeyframe_engine,
                                   calibration_cache=args.calibration_cache)
        label = backend + (f", precision {args.precision}" if args.precision else "")
        if args.tolerance_factor != 1.0:
            label += f", tolerances x {args.tolerance_factor:g}"
        report = format_report(ref, label, results)
        print(report)
        if args.output is not None:
            from trtnet.media.files import write_atomically

            write_atomically(args.output, (report + "\n").encode("utf-8"))
            print(f"wrote {args.output}")
        print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        ran = [r for r in results if r.status == "run"]
        return 0 if ran and all(r.passed for r in ran) else 1

    return cli.run("trtnet.verify", run, (VerifyError, FileNotFoundError, KeyError, WeightError,
                                          UnknownConfigError, PrecisionError, CalibrationError, OSError))


if __name__ == "__main__":
    sys.exit(main())
