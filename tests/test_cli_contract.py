"""The CLI contract every command keeps (issue 15, "What a new user met"): one spelling per
flag, --version and examples everywhere, exit codes 0 ok / 1 failure / 2 usage, one message
prefix, no exception class names, defaults that do not depend on where trtnet is installed,
and one rule for which detections infer's outputs hold.

Like tests/test_cli_bad_inputs.py, the commands run in-process through ``main(argv)``; each
case fails (or is stubbed) before a network runs, so the file takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import cv2
import numpy as np
import pytest

from trtnet import (
    __version__,
    bench,
    build,
    calibrate,
    cli,
    export_triton,
    infer,
    verify,
)
from trtnet import eval as trt_eval
from trtnet.config import get_config
from trtnet.media.io import FolderSource, MediaError, image_size
from trtnet.runtime.masks import Instances
from trtnet.runtime.video import DEFAULT_KEYFRAME_INTERVAL
from weights_convert.__main__ import main as convert_main

REPO = Path(__file__).resolve().parent.parent
MAINS: dict[str, Callable] = {
    "trtnet.build": build.main, "trtnet.verify": verify.main, "trtnet.calibrate": calibrate.main,
    "trtnet.eval": trt_eval.main, "trtnet.infer": infer.main, "weights_convert": convert_main,
    "trtnet.export_triton": export_triton.main, "trtnet.bench": bench.main,
}


def run_main(main: Callable, argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


def _no_internals(err: str) -> None:
    assert "Traceback" not in err, err
    for name in ("WeightFileError", "MissingWeightError", "PrecisionError", "WeightError", "CliError",
                 "VerifyError", "BuildError", "KeyError", "ValueError"):
        assert name not in err, err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, reference_dir) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("contract")
    paths = {"mnv2": reference_dir / "mobilenetv2" / "weights.pth",
             "vid": reference_dir / "vid_resnet50" / "weights.pth",
             "image": d / "a.png", "mixed": d / "mixed", "same": d / "same"}
    cv2.imwrite(str(paths["image"]), np.full((16, 16, 3), 90, np.uint8))
    for folder, sizes in (("mixed", [(16, 16), (16, 16), (16, 18)]), ("same", [(16, 16), (16, 16)])):
        paths[folder].mkdir()
        for i, (h, w) in enumerate(sizes):
            cv2.imwrite(str(paths[folder] / f"{i:03d}.png"), np.full((h, w, 3), 40 * i, np.uint8))
    return paths


# -- defaults that do not depend on where trtnet is installed ---------------------------------


@pytest.mark.parametrize("name, option", [("convert", "--input"), ("triton", "--case"), ("keyframes", "--case")])
def test_bench_reference_defaults_follow_the_environment_not_the_install(name, option, tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.delenv(cli.REFERENCE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/reference here
    code, _, err = run_main(bench.main, [name], capsys)
    assert code == 1, err
    assert err.startswith(f"trtnet.bench {name}: error: reference case 'vid_resnet50' not found"), err
    assert option in err and cli.REFERENCE_ENV in err and str(tmp_path) in err
    assert ".venv" not in err and "site-packages" not in err
    _no_internals(err)


def test_reference_case_dir_order(tmp_path, monkeypatch, reference_dir):
    monkeypatch.delenv(cli.REFERENCE_ENV, raising=False)
    (tmp_path / "work").mkdir()
    (tmp_path / "shared" / "reference" / "vid_resnet50").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert cli.reference_case_dir("vid_resnet50", "--case").resolve() == \
        (tmp_path / "shared" / "reference" / "vid_resnet50").resolve()
    monkeypatch.setenv(cli.REFERENCE_ENV, str(reference_dir))  # the variable wins over the cwd
    assert cli.reference_case_dir("vid_resnet50", "--case") == reference_dir / "vid_resnet50"
    given = tmp_path / "given"
    with pytest.raises(cli.CliError, match="--case folder not found"):  # an option given wins, and is checked
        cli.reference_case_dir("vid_resnet50", "--case", given)
    given.mkdir()
    assert cli.reference_case_dir("vid_resnet50", "--case", given) == given


def test_bench_convert_outside_the_repo_through_python_m(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != cli.REFERENCE_ENV}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-m", "trtnet.bench", "convert"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=env, check=False)
    assert run.returncode == 1 and "--input" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert "lib/python" not in run.stderr


# -- exit codes: a malformed value is a usage error ------------------------------------------


def _plan_argv(name: str, f: dict, tmp: Path, plan: str) -> list[str]:
    w = str(f["mnv2"])
    return {
        "trtnet.build": ["--weights", w, "--precision-plan", plan, "-o", str(tmp / "e.engine")],
        "trtnet.calibrate": ["--weights", w, "--images", str(f["same"]), "--precision-plan", plan,
                             "-o", str(tmp / "c.json")],
        "trtnet.eval": ["--annotations", str(f["image"]), "--images", str(f["same"]), "--weights", w,
                        "--precision-plan", "fp32", plan],
        "trtnet.infer": [str(f["image"]), "--weights", w, "--precision-plan", plan],
        "trtnet.verify": [str(f["mnv2"].parent), "--precision-plan", plan],
        "trtnet.export_triton": ["-o", str(tmp / "repo"), "--backend", "emulator", "--weights", str(f["vid"]),
                                 "--precision-plan", plan],
    }[name]


@pytest.mark.parametrize("plan", ["bogus=fp16", "fp16,head=fp7", "fp99"])
@pytest.mark.parametrize("name", ["trtnet.build", "trtnet.calibrate", "trtnet.eval", "trtnet.infer",
                                  "trtnet.verify", "trtnet.export_triton"])
def test_a_malformed_precision_plan_is_a_usage_error(name, plan, inputs, tmp_path, capsys):
    code, _, err = run_main(MAINS[name], _plan_argv(name, inputs, tmp_path, plan), capsys)
    assert code == 2, err
    assert err.splitlines()[-1].startswith(f"{name}: error: argument --precision-plan"), err
    assert list(tmp_path.iterdir()) == []
    _no_internals(err)


@pytest.mark.parametrize("flags, code", [
    (["--max-frame", "10x10"], 2),                                           # below the default min frame
    (["--min-frame", "64x64", "--opt-frame", "64x64", "--max-frame", "64x64"], 0),  # min == opt == max: allowed
    (["--min-frame", "64x65", "--opt-frame", "64x64", "--max-frame", "64x64"], 2),  # one pixel over
])
def test_build_frame_range_contradiction_is_a_usage_error(flags, code, inputs, capsys):
    got, _, err = run_main(build.main, ["--weights", str(inputs["mnv2"]), "--dry-run", *flags], capsys)
    assert got == code, err
    if code == 2:
        assert err.splitlines()[-1].startswith("trtnet.build: error: --min-frame/--opt-frame/--max-frame: "
                                               "frame sizes must satisfy min <= opt <= max")
    _no_internals(err)


def test_verify_unknown_frames_is_a_usage_error(reference_dir, capsys):
    code, _, err = run_main(verify.main, [str(reference_dir / "mobilenetv2"), "--frames", "zzz"], capsys)
    assert code == 2 and err.startswith("trtnet.verify: error: --frames: unknown pass(es) ['zzz']"), err
    assert "img0" in err  # the passes it has


# -- outputs that collide ------------------------------------------------------------------------


@pytest.mark.parametrize("flags, first, second", [
    (["-o", "{d}/same.png", "--json", "{d}/same.png"], "-o", "results file"),
    (["--json", "{d}/r.json", "--log", "{d}/r.json"], "--json", "log file"),
])
def test_infer_outputs_that_share_a_file_collide(flags, first, second, inputs, tmp_path, capsys):
    argv = [str(inputs["image"]), "--weights", str(inputs["mnv2"]), *[f.format(d=tmp_path) for f in flags]]
    code, _, err = run_main(infer.main, argv, capsys)
    assert code == 2, err
    assert "collides with " + first in err and err.startswith(f"trtnet.infer: error: {second}"), err
    assert "is the input" not in err
    assert list(tmp_path.iterdir()) == []


# -- one rule for every output of infer ----------------------------------------------------------


def test_with_area_boundary():
    boxes = np.array([[2, 2, 2, 9], [2, 2, 9, 2], [2, 2, 3, 3], [5, 5, 4, 9]])  # zero w, zero h, 1x1, negative
    inst = Instances(np.arange(4), np.full(4, 0.9, np.float32), boxes, np.zeros((4, 8, 8), bool))
    kept = infer.with_area(inst)
    assert kept.boxes.tolist() == [[2, 2, 3, 3]] and kept.classes.tolist() == [2] and kept.masks.shape == (1, 8, 8)


class _Stub:
    """A segmenter giving fixed detections: two with a box, two without (zero width/height)."""

    def __init__(self):
        self.engine = SimpleNamespace(stream=SimpleNamespace(synchronize=lambda: None))

    def __call__(self, image):
        h, w = image.shape[:2]
        boxes = np.array([[1, 1, 8, 8], [3, 3, 3, 10], [0, 0, 5, 6], [4, 9, 12, 9]])
        masks = np.zeros((4, h, w), bool)
        masks[:, 2:5, 2:5] = True
        return Instances(np.array([0, 1, 2, 0]), np.array([0.9, 0.8, 0.7, 0.6], np.float32), boxes, masks)


def test_infer_summary_json_and_log_hold_the_same_detections(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(infer, "_segmenter", lambda *a, **k: _Stub())
    out, res, log = tmp_path / "o.mp4", tmp_path / "r.json", tmp_path / "f.jsonl"
    code, printed, err = run_main(infer.main, [str(inputs["same"]), "--weights", str(inputs["mnv2"]),
                                               "-o", str(out), "--json", str(res), "--log", str(log)], capsys)
    assert code == 0, err
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    results = json.loads(res.read_text())
    assert len(frames) == 2 and all(len(f["detections"]) == 2 for f in frames)
    assert len(results) == 4  # 2 frames x the 2 detections with a box
    assert "2 frames, 2 keyframes, 4 detections above 0.3" in printed
    assert err.splitlines()[0].startswith("yolact_edge_mobilenetv2 on emulator: folder") and "done in" in err


def test_infer_help_states_the_rule(capsys):
    code, out, _ = run_main(infer.main, ["--help"], capsys)
    assert code == 0 and "whose box has an area" in " ".join(out.split())


# -- one spelling per flag; old spellings warn ---------------------------------------------------


@pytest.mark.parametrize("make_parser, before", [
    (infer.make_parser, ["clip.mp4"]), (verify.make_parser, ["case"]),
    (export_triton.make_parser, ["-o", "repo"]),
])
def test_nonkeyframe_engine_has_one_spelling_and_the_old_one_warns(make_parser, before, capsys):
    parser = make_parser()
    new = parser.parse_args([*before, "--nonkeyframe-engine", "n.engine"])
    assert new.nonkeyframe_engine == Path("n.engine") and capsys.readouterr().err == ""
    old = parser.parse_args([*before, "--nonkey-engine", "n.engine"])
    assert old.nonkeyframe_engine == Path("n.engine")
    err = capsys.readouterr().err
    assert "warning: --nonkey-engine is deprecated; use --nonkeyframe-engine" in err
    assert "--nonkey-engine" not in parser.format_help()  # hidden


def test_verify_has_config_and_output(reference_dir, tmp_path, capsys):
    report = tmp_path / "report.txt"
    code, out, err = run_main(verify.main, [str(reference_dir / "mobilenetv2"), "--backend", "reference",
                                            "--config", "yolact_edge_mobilenetv2", "-o", str(report)], capsys)
    assert code == 0, err
    assert report.read_text().strip() in out and "SUMMARY" in report.read_text()
    code, _, err = run_main(verify.main, [str(reference_dir / "mobilenetv2"), "--config", "yolact_edge_resnet50"],
                            capsys)
    assert code == 1 and "is a case of yolact_edge_mobilenetv2" in err


def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from weights_convert.__main__ import make_parser as convert_parser

    found = [("trtnet.build", build.make_parser()), ("trtnet.verify", verify.make_parser()),
             ("trtnet.calibrate", calibrate.make_parser()), ("trtnet.eval", trt_eval.make_parser()),
             ("trtnet.infer", infer.make_parser()), ("weights_convert", convert_parser()),
             ("trtnet.export_triton", export_triton.make_parser())]
    return found


@pytest.mark.parametrize("name", list(MAINS))
def test_version_on_every_command(name, capsys):
    code, out, _ = run_main(MAINS[name], ["--version"], capsys)
    assert code == 0
    assert out.strip() == ("weights_convert 1.0 (trtnet)" if name == "weights_convert" else f"trtnet {__version__}")


@pytest.mark.parametrize("sub", bench.available())
def test_every_benchmark_has_version_and_examples(sub, capsys):
    code, out, _ = run_main(bench.main, [sub, "--version"], capsys)
    assert code == 0 and out.strip() == f"trtnet {__version__}"
    code, out, _ = run_main(bench.main, [sub, "--help"], capsys)
    examples = out.split("examples:\n", 1)[1].split("\n\n", 1)[0]
    assert code == 0 and f"python -m trtnet.bench {sub}" in examples and "usage error" in out


def test_flag_names_are_the_same_everywhere():
    for name, parser in _all_parsers():
        flags = {o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
        assert not flags & {"--nonkey-engine", "--out", "--plan"}, name
        if "--output" in flags:
            assert "-o" in flags, name
        if any(a.dest == "precision" for a in parser._actions):
            assert "--precision-plan" in flags, name
        assert "--version" in flags and ("--weights" in flags or name in ("weights_convert",)), name


# -- one vocabulary for the keyframe interval ------------------------------------------------------


@pytest.mark.parametrize("make_parser, argv", [
    (infer.make_parser, ["x.mp4"]), (trt_eval.make_parser, ["--annotations", "a", "--images", "i"]),
    (export_triton.make_parser, ["-o", "r"]),
])
def test_keyframe_interval_has_one_default_and_one_help(make_parser, argv):
    parser = make_parser()
    (action,) = [a for a in parser._actions if "--keyframe-interval" in a.option_strings]
    assert action.default is None  # resolved with the config by cli.keyframe_interval
    assert action.help == cli.KEYFRAME_INTERVAL_HELP.format(default=DEFAULT_KEYFRAME_INTERVAL)


def test_keyframe_interval_resolution():
    video, image = get_config("yolact_edge_vid_resnet50"), get_config("yolact_edge_mobilenetv2")
    assert DEFAULT_KEYFRAME_INTERVAL == 5  # the paper's schedule
    assert cli.keyframe_interval(None, video, sequence=True) == 5
    assert cli.keyframe_interval(None, video, sequence=False) == 1
    assert cli.keyframe_interval(None, image, sequence=True) == 1
    assert cli.keyframe_interval(1, image, sequence=True) == 1  # on the boundary: allowed
    with pytest.raises(cli.CliError, match="has no flow network") as exc:
        cli.keyframe_interval(2, image, sequence=True)
    assert exc.value.code == cli.EXIT_USAGE
    assert cli.keyframe_interval(30, video, sequence=True) == 30


def test_export_triton_default_interval_is_the_same(tmp_path, inputs):
    args = export_triton.make_parser().parse_args(["-o", str(tmp_path / "r")])
    assert args.keyframe_interval is None  # main() fills in DEFAULT_KEYFRAME_INTERVAL


# -- messages: one prefix, no internals ------------------------------------------------------------


@pytest.mark.parametrize("name, argv", [
    ("trtnet.build", ["--weights"]), ("trtnet.verify", ["--nope"]), ("trtnet.calibrate", []),
    ("trtnet.eval", ["--images", "x"]), ("trtnet.infer", []), ("weights_convert", []),
    ("trtnet.export_triton", []), ("trtnet.bench", ["nope"]),
])
def test_usage_errors_have_the_one_prefix(name, argv, capsys):
    code, _, err = run_main(MAINS[name], argv, capsys)
    assert code == 2 and err.splitlines()[-1].startswith(f"{name}: error: "), err
    assert "python -m" not in err.splitlines()[-1]


def test_error_prefix_forms():
    assert cli.error_prefix("python -m trtnet.infer") == "trtnet.infer"
    assert cli.error_prefix("trtnet export-triton") == "trtnet.export_triton"
    assert cli.error_prefix("python -m trtnet.bench kernels") == "trtnet.bench kernels"
    assert cli.error_prefix("python -m weights_convert") == "weights_convert"


def test_verify_weights_of_another_config_names_no_exception_class(reference_dir, capsys):
    code, _, err = run_main(verify.main, [str(reference_dir / "mobilenetv2"), "--weights",
                                          str(reference_dir / "vid_resnet50" / "weights.pth")], capsys)
    assert code == 1 and err.splitlines()[-1].startswith("trtnet.verify: error: building the "
                                                         "yolact_edge_mobilenetv2 network failed: layer "), err
    _no_internals(err)


@pytest.mark.parametrize("name", ["trtnet.infer", "trtnet.verify", "trtnet.eval"])
def test_int8_without_a_cache_names_the_flag(name, inputs, tmp_path, capsys, reference_dir):
    argv = {"trtnet.infer": [str(inputs["image"]), "--weights", str(inputs["mnv2"])],
            "trtnet.verify": [str(reference_dir / "mobilenetv2")],
            "trtnet.eval": ["--annotations", str(inputs["image"]), "--images", str(inputs["same"]),
                            "--weights", str(inputs["mnv2"])]}[name]
    if name == "trtnet.eval":  # a real annotation file, so only the plan is wrong
        ann = tmp_path / "a.json"
        ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "000.png", "height": 16, "width": 16}],
                                   "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
        argv[1] = str(ann)
    code, _, err = run_main(MAINS[name], [*argv, "--precision-plan", "int8_all"], capsys)
    assert code == 1, err
    assert err.splitlines()[-1].startswith(f"{name}: error: --precision-plan int8_all quantizes to int8 and needs "
                          "--calibration-cache FILE"), err
    assert "python -m trtnet.calibrate" in err and "load_plan" not in err and "()" not in err


def test_weights_convert_quiet_prints_nothing(reference_dir, tmp_path, capsys):
    out = tmp_path / "p.safetensors"
    code, printed, err = run_main(convert_main, [str(reference_dir / "checkpoint_formats/legacy_fp32.pth"),
                                                 str(out), "-q"], capsys)
    assert code == 0 and out.is_file() and printed == "" and err == ""
    code, _, err = run_main(convert_main, [str(reference_dir / "checkpoint_formats/legacy_fp32.pth"),
                                           str(tmp_path / "q.safetensors")], capsys)
    assert code == 0 and err.startswith("warning: the checkpoint matches no yolact_edge config")  # without -q


# -- refusals before any work -----------------------------------------------------------------------


def test_export_triton_refuses_an_existing_folder_before_saying_anything(inputs, tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    code, out, err = run_main(export_triton.main, ["-o", str(repo), "--backend", "emulator",
                                                   "--weights", str(inputs["vid"])], capsys)
    assert code == 1 and out == ""
    assert err == f"trtnet.export_triton: error: -o {repo} exists; choose another folder or pass --overwrite\n"
    assert list(repo.iterdir()) == []


def test_infer_mixed_size_folder_to_a_video_fails_before_any_work(inputs, tmp_path, monkeypatch, capsys):
    def no_network(*a, **k):
        raise AssertionError("a network was opened")

    monkeypatch.setattr(infer, "_segmenter", no_network)
    out = tmp_path / "o.mp4"
    code, _, err = run_main(infer.main, [str(inputs["mixed"]), "--weights", str(inputs["mnv2"]), "-o", str(out)],
                            capsys)
    assert code == 1, err
    assert "002.png is 18x16 but 000.png is 16x16" in err and str(out) in err and "-o DIR" in err
    assert list(tmp_path.iterdir()) == []


def test_folder_of_one_size_passes_the_check(inputs, tmp_path):
    FolderSource(inputs["same"]).check_one_size(tmp_path / "o.mp4")
    with pytest.raises(MediaError, match="002.png"):
        FolderSource(inputs["mixed"]).check_one_size(tmp_path / "o.mp4")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
@pytest.mark.parametrize("hw", [(1, 1), (17, 33), (480, 641)])
def test_image_size_from_headers_matches_decoding(ext, hw, tmp_path):
    path = tmp_path / f"i{ext}"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (*hw, 3), np.uint8))
    h, w = cv2.imread(str(path)).shape[:2]
    assert image_size(path) == (w, h) == (hw[1], hw[0])


def test_adaptive_keyframes_with_an_image_config_is_a_usage_error(inputs, capsys):
    code, _, err = run_main(infer.main, [str(inputs["same"]), "--weights", str(inputs["mnv2"]),
                                         "--adaptive-keyframes"], capsys)
    assert code == 2 and "--adaptive-keyframes: yolact_edge_mobilenetv2 is an image config" in err, err


def test_triton_client_names_streams_by_kind(tmp_path, monkeypatch):
    from trtnet.triton.client import stream_label

    monkeypatch.chdir(tmp_path)
    assert stream_label("0") == "camera 0"
    assert stream_label("clip.mp4") == "video clip.mp4"
    (tmp_path / "frames").mkdir()
    assert stream_label("frames") == "folder frames"
    (tmp_path / "1").write_bytes(b"x")  # a file named like an index is a file
    assert stream_label("1") == "video 1"


def test_emulator_triton_repository_stores_the_weights_once(inputs, tmp_path, capsys):
    repo = tmp_path / "repo"
    code, _, err = run_main(export_triton.main, ["-o", str(repo), "--backend", "emulator",
                                                 "--weights", str(inputs["vid"])], capsys)
    assert code == 0, err
    copies = [p for p in repo.rglob("*") if p.is_file() and p.stat().st_size == inputs["vid"].stat().st_size]
    assert [p.relative_to(repo).as_posix() for p in copies] == ["yolact_edge_keyframe/1/weights.pth"]
    text = (repo / "yolact_edge_nonkeyframe" / "config.pbtxt").read_text()
    relative = "../../yolact_edge_keyframe/1/weights.pth"
    assert f'"{relative}"' in text
    # the emulator model opens version_dir / parameter: the one copy
    assert ((repo / "yolact_edge_nonkeyframe" / "1") / relative).resolve() == copies[0].resolve()
