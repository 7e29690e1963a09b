"""``python -m trtnet.infer`` on videos and folders, on the emulator: the overlay video keeps
the input's frame count, size and rate; the per-frame log shows the keyframe schedule; the
JSON holds COCO results with RLE masks; labels stay readable and never pile up; a failed run
leaves no output at all.

The clip is written here with OpenCV (mp4v). vid_resnet50 runs at a reduced input size
(max_size 96, patched into the recognised config): these tests are about the workflow, not
upstream's numbers (test_runtime_video and test_network_video check those at 550).
"""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from trtnet import infer

from trtnet.media import overlay

from trtnet.network import weights
from trtnet.config import get_config
from trtnet.runtime.masks import Instances
from trtnet.verification.reference_data import ReferenceCase

SMALL = 96
FPS = 12.0
CLIP_FRAMES = 5


@pytest.fixture(scope="module")
def case(reference_dir):
    return ReferenceCase(reference_dir / "vid_resnet50")


@pytest.fixture
def small_network(monkeypatch):
    resolve = weights.resolve_config
    monkeypatch.setattr(weights, "resolve_config", lambda store, name=None: replace(resolve(store, name),
                                                                                     max_size=SMALL))


def _frames(case, n, size=(120, 80)):
    image = cv2.resize(case.image("key"), size, interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    return [cv2.warpAffine(image, np.float32([[1, 0, 2 * i], [0, 1, i]]), (w, h), borderMode=cv2.BORDER_REFLECT)
            for i in range(n)]


@pytest.fixture(scope="module")
def clip(case, tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames = _frames(case, CLIP_FRAMES)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, frames[0].shape[1::-1])
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def _read_video(path):
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames, fps


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools on NumPy 2
def test_video_in_gives_an_overlay_video_rle_json_and_the_schedule_in_the_log(small_network, case, clip, tmp_path,
                                                                              capsys):
    from pycocotools import mask as mask_utils

    out, results, log = tmp_path / "out.mp4", tmp_path / "results.json", tmp_path / "frames.jsonl"
    code = infer.main([str(clip), "--weights", str(case.weights_path), "-o", str(out), "--json", str(results),
                       "--log", str(log), "--keyframe-interval", "3", "--score-threshold", "0.05"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "a keyframe every 3 frames" in printed.err and "frames/s" in printed.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.jsonl", "out.mp4", "results.json"]

    frames, fps = _read_video(out)
    assert len(frames) == CLIP_FRAMES and frames[0].shape == (80, 120, 3) and fps == pytest.approx(FPS)

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [d["frame"] for d in lines] == list(range(CLIP_FRAMES))
    assert [d["keyframe"] for d in lines] == [True, False, False, True, False]
    assert [d["motion"] is None for d in lines] == [d["keyframe"] for d in lines]
    assert all(d["motion"] >= 0 for d in lines if not d["keyframe"])
    stages = {"read", "engine keyframe", "masks", "postprocess", "draw", "write"}
    assert stages <= set(lines[0]["ms"]) and "engine nonkeyframe" in lines[1]["ms"]

    entries = json.loads(results.read_text())
    config = get_config(case.config_name)
    assert entries and {e["frame"] for e in entries} <= set(range(CLIP_FRAMES))
    for d in lines:  # the JSON and the log report the same detections per frame
        mine = [e for e in entries if e["frame"] == d["frame"]]
        assert [e["image_id"] for e in mine] == [d["frame"]] * len(mine)
        assert [round(e["score"], 5) for e in mine] == [det["score"] for det in d["detections"]]
        assert [e["category_id"] for e in mine] == [det["category_id"] for det in d["detections"]]
    for e in entries:
        assert e["category_id"] in config.category_ids
        x, y, w, h = e["bbox"]
        mask = mask_utils.decode(e["segmentation"])
        assert mask.shape == (80, 120) and w > 0 and h > 0


def test_adaptive_keyframes_from_the_command_line(small_network, case, clip, tmp_path, capsys):
    log = tmp_path / "f.jsonl"
    code = infer.main([str(clip), "--weights", str(case.weights_path), "--log", str(log), "--adaptive-keyframes",
                       "--motion-threshold", "0", "--keyframe-interval", "100", "--max-frames", "3"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "adaptive keyframes: motion > 0, at least every 100 frames" in printed.err
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    # frame 1 moved (motion > 0): frame 2 is a keyframe; --max-frames stops after 3
    assert [d["keyframe"] for d in lines] == [True, False, True] and lines[1]["motion"] > 0


def test_ctrl_c_ends_a_camera_run_with_complete_outputs(small_network, case, tmp_path, monkeypatch, capsys):
    from trtnet.media import io as media

    class Camera(media.Source):
        kind, path = "camera", None

        def describe(self):
            return "camera 0 (test)"

        def __iter__(self):
            for i, image in enumerate(_frames(case, 2)):
                yield media.Frame(i, image, f"frame {i}")
            raise KeyboardInterrupt

    monkeypatch.setattr(infer, "open_source", lambda spec: Camera())
    out, log = tmp_path / "cam.mp4", tmp_path / "cam.jsonl"
    code = infer.main(["0", "--weights", str(case.weights_path), "-o", str(out), "--log", str(log)])
    assert code == 0 and "stopped by Ctrl-C after 2 frames" in capsys.readouterr().err
    assert len(_read_video(out)[0]) == 2 and len(log.read_text().splitlines()) == 2


def test_folder_in_gives_an_overlay_folder_and_a_new_size_starts_with_a_keyframe(small_network, case, tmp_path,
                                                                                  capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    small, big = _frames(case, 1)[0], _frames(case, 1, size=(150, 100))[0]
    for name, image in (("b.png", big), ("a.png", small), ("notes.txt", None)):
        (frames / name).write_bytes(b"x" if image is None else cv2.imencode(".png", image)[1].tobytes())
    out, log = tmp_path / "overlays", tmp_path / "f.jsonl"
    code = infer.main([str(frames), "--weights", str(case.weights_path), "-o", str(out), "--log", str(log)])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(d["name"], d["keyframe"]) for d in lines] == [("a.png", True), ("b.png", True)]  # sorted; resized
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert cv2.imread(str(out / "b.png")).shape == big.shape


def test_a_run_failing_midway_writes_nothing(small_network, case, clip, tmp_path, monkeypatch, capsys):
    calls = []

    def failing_draw(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return args[0]

    monkeypatch.setattr(infer, "draw", failing_draw)
    outputs = [tmp_path / "out.avi", tmp_path / "r.json", tmp_path / "l.jsonl"]
    code = infer.main([str(clip), "--weights", str(case.weights_path), "-o", str(outputs[0]),
                       "--json", str(outputs[1]), "--log", str(outputs[2])])
    assert code == 1 and "No space left on device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


@pytest.mark.parametrize("argv, code, message", [
    (["{clip}", "-o", "{tmp}/one.png"], 2, "is one image"),
    (["{clip}", "-o", "{tmp}/out.gif"], 1, "unsupported extension '.gif'"),
    (["{clip}", "-o", "{tmp}/missing/out.mp4"], 1, "does not exist"),
    (["{clip}", "--json", "{tmp}/r.txt"], 1, "unsupported extension '.txt'"),
    (["{clip}", "-o", "{clip}"], 1, "is the input"),
    (["{tmp}/junk.mp4", "-o", "{tmp}/out.mp4"], 1, "cannot open video"),
    (["{tmp}/nothing.mkv"], 1, "input not found"),
    (["97"], 1, "cannot open camera 97"),
    (["{clip}", "--keyframe-interval", "0"], 2, "--keyframe-interval must be >= 1"),
    (["{clip}", "--engine", "{clip}", "--backend", "emulator"], 2, "contradicts --backend emulator"),
])
def test_bad_input_or_output_fails_before_any_work(case, clip, tmp_path, capsys, argv, code, message):
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(2048))
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [a.format(clip=clip, tmp=tmp_path) for a in argv] + ["--weights", str(case.weights_path)]
    try:
        got = infer.main(args)
    except SystemExit as exc:  # argparse's usage errors
        got = exc.code
    err = capsys.readouterr().err
    assert got == code and message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- labels ------------------------------------------------------------------------------------
def test_labels_never_overlap_and_the_best_ones_are_kept():
    box, taken, placed = (50, 50, 150, 120), [], []
    for _ in range(4):  # four labels on one box: above, inside the top, below, then no room
        spot = overlay.place_label(box, (60, 20), (400, 400), taken)
        if spot is not None:
            taken.append(spot)
        placed.append(spot)
    assert placed == [(50, 30, 110, 50), (50, 50, 110, 70), (50, 120, 110, 140), None]


def test_a_label_touching_another_is_not_an_overlap():
    taken = [(0, 10, 60, 30)]  # ends exactly where the spot above the box starts
    assert overlay.place_label((0, 50, 100, 100), (60, 20), (400, 400), taken) == (0, 30, 60, 50)
    taken = [(0, 10, 60, 31)]  # one row into it: the next spot, inside the box
    assert overlay.place_label((0, 50, 100, 100), (60, 20), (400, 400), taken) == (0, 50, 60, 70)


def test_labels_stay_inside_the_image():
    assert overlay.place_label((390, 0, 400, 10), (60, 20), (100, 400), []) == (340, 0, 400, 20)


def _box_line_and_label_height(side: int) -> tuple[int, int]:
    u = side // 100  # drawing units of 1% of the side
    inst = Instances(np.array([0]), np.array([0.9], np.float32), np.array([[20 * u, 40 * u, 80 * u, 90 * u]]),
                     np.zeros((1, side, side), bool))
    drawn = overlay.draw(np.zeros((side, side, 3), np.uint8), inst, ["cat"]).any(axis=2)
    line = int(drawn[65 * u, : 50 * u].sum())          # the box's left edge, mid-height
    label = int(drawn[: 40 * u, 20 * u + 1].sum())     # the label's column above the box
    return line, label


def test_line_width_and_font_grow_with_the_image():
    (line_small, label_small), (line_large, label_large) = map(_box_line_and_label_height, (200, 2000))
    assert line_small >= 1 and line_large >= 5 * line_small
    assert label_large >= 5 * label_small > 0


def test_an_odd_frame_size_is_made_even_in_a_video_and_said(tmp_path, capsys):
    from trtnet.media.io import Frame, VideoWriter

    path = tmp_path / "odd.mkv"
    frames = [np.full((31, 45, 3), 40 * i, np.uint8) for i in range(3)]
    with VideoWriter(path, 10.0) as writer:
        for i, image in enumerate(frames):
            writer.write(Frame(i, image, f"frame {i}"), image)
    assert "is 45x31; video codecs store even sizes" in capsys.readouterr().err
    back, fps = _read_video(path)
    assert len(back) == 3 and back[0].shape == (30, 44, 3) and fps == pytest.approx(10.0)
    assert [p.name for p in tmp_path.iterdir()] == ["odd.mkv"]
