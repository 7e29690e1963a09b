"""Every command over a catalogue of bad inputs: exit code, a message naming the problem,
no traceback, nothing written.

The commands run in-process through their ``main(argv)`` (argparse's usage errors arrive
as SystemExit(2)); a few cases go through ``python -m`` to check the entry points too.
Every case fails before any network runs, so the whole catalogue takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from trtnet import build, calibrate, cli, infer, verify
from trtnet import eval as trt_eval
from weights_convert.__main__ import main as convert_main

REPO = Path(__file__).resolve().parent.parent
MAINS: dict[str, Callable] = {
    "build": build.main, "verify": verify.main, "calibrate": calibrate.main, "eval": trt_eval.main,
    "infer": infer.main, "weights_convert": convert_main,
}


def run_main(main: Callable, argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return int(code), capsys.readouterr().err


@pytest.fixture(scope="module")
def files(tmp_path_factory, reference_dir) -> dict[str, Path]:
    """One bad file of every kind, and a few good inputs to pair them with."""
    d = tmp_path_factory.mktemp("bad")
    good = reference_dir / "mobilenetv2" / "weights.pth"
    paths = {
        "missing": d / "missing.safetensors",
        "empty": d / "empty.safetensors",
        "truncated": d / "truncated.pth",
        "random": d / "random.safetensors",
        "dir": d / "a_dir.safetensors",
        "good_weights": good,
        "images": d / "images",
        "out_dir": d / "out",
    }
    paths["empty"].write_bytes(b"")
    paths["truncated"].write_bytes(good.read_bytes()[:4096])
    paths["random"].write_bytes(os.urandom(3000))
    paths["dir"].mkdir()
    paths["images"].mkdir()
    paths["out_dir"].mkdir()
    import cv2
    import numpy as np

    cv2.imwrite(str(paths["images"] / "a.png"), np.zeros((8, 8, 3), np.uint8))
    ann = d / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
                               "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    paths["annotations"] = ann
    paths["bad_json"] = d / "bad.json"
    paths["bad_json"].write_text('{"images": [')
    paths["image"] = paths["images"] / "a.png"
    paths["random_png"] = d / "random.png"
    paths["random_png"].write_bytes(os.urandom(2000))
    paths["truncated_png"] = d / "truncated.png"
    paths["truncated_png"].write_bytes(paths["image"].read_bytes()[:30])
    paths["random_mp4"] = d / "random.mp4"
    paths["random_mp4"].write_bytes(os.urandom(3000))
    paths["no_images"] = d / "no_images"
    paths["no_images"].mkdir()
    return paths


# What each kind of bad weights file must be called in the message.
WEIGHT_PROBLEMS = {
    "missing": "not found", "empty": "is empty", "truncated": "not a readable zip archive",
    "random": "not a safetensors file", "dir": "is a directory",
}


def _weights_argv(cli_name: str, weights: str, f: dict, out: Path) -> list[str]:
    if cli_name == "build":
        return ["--weights", weights, "-o", str(out / "e.engine")]
    if cli_name == "calibrate":
        return ["--weights", weights, "--images", str(f["images"]), "-o", str(out / "c.json")]
    if cli_name == "verify":
        return [str(REPO.parent / "shared" / "reference" / "mobilenetv2"), "--weights", weights]
    if cli_name == "eval":
        return ["--annotations", str(f["annotations"]), "--images", str(f["images"]), "--weights", weights,
                "-o", str(out / "m.json")]
    if cli_name == "infer":
        return [str(f["image"]), "--weights", weights, "-o", str(out / "o.png"), "--json", str(out / "r.json")]
    return [weights, str(out / "w.safetensors")]  # weights_convert


def _check(code: int, err: str, want_code: int, *needles: str, out: Path | None = None) -> None:
    assert "Traceback" not in err, err
    assert code == want_code, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in: {err}"
    if out is not None:
        assert list(out.iterdir()) == [], "partial output left behind"


@pytest.mark.parametrize("kind", list(WEIGHT_PROBLEMS))
@pytest.mark.parametrize("cli_name", list(MAINS))
def test_bad_weights_file(cli_name, kind, files, tmp_path, capsys, reference_dir):
    bad = str(files[kind])
    argv = _weights_argv(cli_name, bad, files, tmp_path)
    if cli_name == "verify":
        argv[0] = str(reference_dir / "mobilenetv2")
    code, err = run_main(MAINS[cli_name], argv, capsys)
    problem = WEIGHT_PROBLEMS[kind]
    if cli_name == "weights_convert" and kind == "random":
        problem = "not a PyTorch checkpoint"  # the converter reads .pth files
    _check(code, err, 1, bad, problem, out=tmp_path)


@pytest.mark.parametrize("cli_name", ["build", "calibrate", "eval", "infer"])
def test_weights_of_another_config(cli_name, files, tmp_path, capsys):
    argv = _weights_argv(cli_name, str(files["good_weights"]), files, tmp_path) + ["--config", "yolact_edge_resnet50"]
    code, err = run_main(MAINS[cli_name], argv, capsys)
    _check(code, err, 1, "do not fit config yolact_edge_resnet50", out=tmp_path)


@pytest.mark.parametrize("cli_name", ["build", "calibrate", "eval", "infer"])  # verify: the case names it
def test_unknown_config_name(cli_name, files, tmp_path, capsys):
    argv = _weights_argv(cli_name, str(files["good_weights"]), files, tmp_path)
    code, err = run_main(MAINS[cli_name], argv + ["--config", "yolact_nope"], capsys)
    _check(code, err, 1, "unknown config 'yolact_nope'", out=tmp_path)


# -- outputs ------------------------------------------------------------------------------

OUTPUT_CLIS = {  # name -> (argv builder given the output path, an extension it accepts, an input)
    "build": (lambda f, o: ["--weights", str(f["good_weights"]), "-o", o], ".engine", "good_weights"),
    "calibrate": (lambda f, o: ["--weights", str(f["good_weights"]), "--images", str(f["images"]), "-o", o],
                  ".json", "good_weights"),
    "eval": (lambda f, o: ["--annotations", str(f["annotations"]), "--images", str(f["images"]),
                           "--weights", str(f["good_weights"]), "-o", o], ".json", "annotations"),
    "infer": (lambda f, o: [str(f["image"]), "--weights", str(f["good_weights"]), "-o", o], ".png", "image"),
    "infer --json": (lambda f, o: [str(f["image"]), "--weights", str(f["good_weights"]), "--json", o], ".json",
                     "image"),
    "weights_convert": (lambda f, o: [str(f["good_weights"]), o], ".safetensors", "good_weights"),
}


def _unwritable_folder(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new files to anyone
        return Path("/sys")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize("case", ["missing_folder", "is_a_directory", "unwritable", "is_the_input"])
@pytest.mark.parametrize("cli_name", list(OUTPUT_CLIS))
def test_bad_output(cli_name, case, files, tmp_path, capsys):
    argv_of, ext, an_input = OUTPUT_CLIS[cli_name]
    out = {
        "missing_folder": tmp_path / "no" / "such" / f"x{ext}",
        "is_a_directory": files["out_dir"],
        "unwritable": _unwritable_folder(tmp_path) / f"trtnet_test{ext}",
        "is_the_input": files[an_input],
    }[case]
    if cli_name == "infer" and case == "is_a_directory":
        pytest.skip("infer -o DIR writes one overlay per frame into the folder")
    problem = {"missing_folder": "does not exist", "is_a_directory": "is a directory",
               "unwritable": "not writable", "is_the_input": "is the input"}[case]
    before = sorted(tmp_path.rglob("*"))
    code, err = run_main(MAINS[cli_name.split()[0]], argv_of(files, str(out)), capsys)
    _check(code, err, 1, str(out), problem)
    assert not (tmp_path / "no").exists()  # the folder was not created
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("cli_name, ext", [("calibrate", ".txt"), ("eval", ".csv"), ("weights_convert", ".pth"),
                                           ("infer", ".xyz"), ("infer --json", ".txt")])
def test_output_extension_is_checked_before_any_work(cli_name, ext, files, tmp_path, capsys):
    argv_of, _, _ = OUTPUT_CLIS[cli_name]
    out = tmp_path / f"result{ext}"
    code, err = run_main(MAINS[cli_name.split()[0]], argv_of(files, str(out)), capsys)
    _check(code, err, 1, str(out), "extension", out=tmp_path)


# -- other inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind, problem", [("missing", "not found"), ("empty", "is empty"),
                                           ("bad_json", "is not a JSON file"), ("random", "is not a JSON file"),
                                           ("dir", "is a directory")])
def test_eval_bad_annotation_file(kind, problem, files, tmp_path, capsys):
    ann = str(files[kind])
    code, err = run_main(trt_eval.main, ["--annotations", ann, "--images", str(files["images"]),
                                         "--weights", str(files["good_weights"]), "-o", str(tmp_path / "m.json")],
                         capsys)
    _check(code, err, 1, ann, problem, out=tmp_path)


@pytest.mark.parametrize("cli_name", ["calibrate", "eval"])
@pytest.mark.parametrize("kind, problem", [("missing", "not"), ("empty", "not")])
def test_image_folder_that_is_not_a_folder(cli_name, kind, problem, files, tmp_path, capsys):
    images = str(files[kind])
    if cli_name == "calibrate":
        argv = ["--weights", str(files["good_weights"]), "--images", images, "-o", str(tmp_path / "c.json")]
    else:
        argv = ["--annotations", str(files["annotations"]), "--images", images,
                "--weights", str(files["good_weights"]), "-o", str(tmp_path / "m.json")]
    code, err = run_main(MAINS[cli_name], argv, capsys)
    _check(code, err, 1, images, problem, out=tmp_path)


@pytest.mark.parametrize("kind, problem", [("missing", "not found"), ("empty", "is empty"),
                                           ("random_png", "cannot read"), ("truncated_png", "cannot read"),
                                           ("random_mp4", "cannot open video"), ("no_images", "holds no images")])
def test_infer_bad_source(kind, problem, files, tmp_path, capsys):
    source = str(files[kind])
    code, err = run_main(infer.main, [source, "--weights", str(files["good_weights"]), "-o", str(tmp_path / "o.mp4"),
                                      "--json", str(tmp_path / "r.json")], capsys)
    _check(code, err, 1, source, problem, out=tmp_path)


@pytest.mark.parametrize("kind, problem", [("missing", "not found"), ("empty", "not a folder"),
                                           ("dir", "not a reference case folder")])
def test_verify_bad_case_folder(kind, problem, files, capsys):
    code, err = run_main(verify.main, [str(files[kind])], capsys)
    _check(code, err, 1, str(files[kind]), problem)


@pytest.mark.parametrize("kind", ["random", "empty", "missing"])
def test_verify_engine_implies_tensorrt_never_a_silent_emulator_pass(kind, files, reference_dir, capsys):
    """A garbage engine without --backend used to verify the emulator and print PASS."""
    code = verify.main([str(reference_dir / "mobilenetv2"), "--engine", str(files[kind])])
    out, err = capsys.readouterr()
    assert code == 1 and "PASS" not in out + err and "Traceback" not in err
    assert str(files[kind]) in err or "TensorRT" in err


@pytest.mark.parametrize("cli_name", ["verify", "eval", "infer"])
def test_engine_with_the_emulator_backend_is_a_usage_error(cli_name, files, reference_dir, capsys):
    if cli_name == "verify":
        argv = [str(reference_dir / "mobilenetv2"), "--engine", str(files["random"]), "--backend", "emulator"]
    elif cli_name == "infer":
        argv = [str(files["image"]), "--engine", str(files["random"]), "--backend", "emulator",
                "--config", "yolact_edge_mobilenetv2"]
    else:
        argv = ["--annotations", str(files["annotations"]), "--images", str(files["images"]),
                "--engine", str(files["random"]), "--backend", "emulator", "--config", "yolact_edge_mobilenetv2"]
    code, err = run_main(MAINS[cli_name], argv, capsys)
    _check(code, err, 2, "--engine", "contradicts --backend emulator")


@pytest.mark.parametrize("interval, problem", [("0", "must be >= 1"), ("5", "has no flow network")])
def test_eval_keyframe_interval_needs_a_video_config(interval, problem, files, capsys):
    code, err = run_main(trt_eval.main, ["--annotations", str(files["annotations"]), "--images", str(files["images"]),
                                         "--weights", str(files["good_weights"]), "--keyframe-interval", interval],
                         capsys)
    _check(code, err, 2, problem)


@pytest.mark.parametrize("content, problem", [(b"\x8f\x00garbage", "is not JSON"),
                                              (b'{"format": "other"}', "is not a trtnet calibration cache")])
@pytest.mark.parametrize("cli_name", ["build", "verify", "eval", "infer"])
def test_bad_calibration_cache(cli_name, content, problem, files, tmp_path, reference_dir, capsys):
    cache = tmp_path / "cache.json"
    cache.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    argv = _weights_argv(cli_name, str(files["good_weights"]), files, out)
    if cli_name == "verify":
        argv[0] = str(reference_dir / "mobilenetv2")
    code, err = run_main(MAINS[cli_name], argv + ["--precision-plan", "int8_all", "--calibration-cache", str(cache)],
                         capsys)
    _check(code, err, 1, str(cache), problem, out=out)


def test_eval_engine_file_is_checked_before_anything_runs(files, capsys, tmp_path):
    code, err = run_main(trt_eval.main, ["--annotations", str(files["annotations"]), "--images", str(files["images"]),
                                         "--engine", str(files["empty"]), "--config", "yolact_edge_mobilenetv2"],
                         capsys)
    _check(code, err, 1, str(files["empty"]), "is empty")


def test_bench_help_of_every_benchmark_is_plain_text(capsys):
    from trtnet import bench

    for name in bench.available():
        with pytest.raises(SystemExit) as exit_info:
            bench.main([name, "--help"])
        text = capsys.readouterr().out
        assert exit_info.value.code == 0 and text.startswith(f"usage: python -m trtnet.bench {name}")
        assert "``" not in text and ":mod:" not in text and ":func:" not in text, text


def test_bench_unknown_benchmark_is_a_usage_error(capsys):
    from trtnet import bench

    code, err = run_main(bench.main, ["nope"], capsys)
    _check(code, err, 2, "invalid choice: 'nope'")


# -- help and the python -m entry points ------------------------------------------------------


@pytest.mark.parametrize("cli_name", list(MAINS) + ["bench"])
def test_help_has_examples_exit_codes_and_text_on_every_flag(cli_name, capsys):
    from trtnet import bench

    main = MAINS.get(cli_name, bench.main)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "examples:" in text and ("exit status: 0 ok" in text or "exit codes:" in text)
    assert "usage error" in text  # exit code 2 is documented
    assert "``" not in text and ":mod:" not in text  # no raw reStructuredText
    from weights_convert.__main__ import make_parser as convert_parser

    parser = {"build": build.make_parser, "verify": verify.make_parser, "calibrate": calibrate.make_parser,
              "eval": trt_eval.make_parser, "infer": infer.make_parser, "weights_convert": convert_parser}.get(cli_name)
    parsers = [parser()] if parser is not None else []
    if cli_name == "bench":
        import argparse
        import importlib

        for name in bench.available():
            parsers.append(argparse.ArgumentParser(prog=name))
            importlib.import_module(f"trtnet.benchmarks.{name}").add_arguments(parsers[-1])
    silent = [(p.prog, a.option_strings or a.dest) for p in parsers for a in p._actions if not a.help]
    assert silent == [], f"flags without help: {silent}"


@pytest.mark.parametrize("module, argv, needle", [
    ("trtnet.eval", ["--annotations", "{missing}", "--images", "{images}", "--weights", "{weights}"], "not found"),
    ("trtnet.build", ["--weights", "{random}", "-o", "{tmp}/e.engine"], "not a"),
    ("weights_convert", ["{truncated}", "{tmp}/w.safetensors"], "not a readable zip archive"),
    ("trtnet.infer", ["{random_png}", "--weights", "{weights}", "-o", "{tmp}/o.png"], "cannot read"),
    ("trtnet.calibrate", ["--weights", "{weights}", "--images", "{images}", "-o", "{tmp}/no/c.json"],
     "does not exist"),
])
def test_python_m_entry_points(module, argv, needle, files, tmp_path):
    fill = dict(missing=files["missing"], images=files["images"], weights=files["good_weights"],
                random=files["random"], truncated=files["truncated"], random_png=files["random_png"], tmp=tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-m", module, *[a.format(**fill) for a in argv]],
                         capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert run.returncode == 1, run.stderr
    assert needle in run.stderr and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []
