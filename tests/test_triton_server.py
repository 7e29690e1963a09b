"""A real Triton Inference Server (CPU, loopback) serving a repository exported in the CPU test
mode: N concurrent camera streams x M frames through the orchestrator must give, frame by
frame, the results of VideoSegmenter on the emulator (same schedule, same state handoff), and
END, a START restart and idle eviction must behave as documented. An image config's repository
(the keyframe model alone) must answer every frame as a keyframe with the Segmenter's results.

The server comes from nvidia-pytriton (trtnet.triton.local_server); its environment is made
once per machine. CI has PyPI, so this never skips there.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from instances_match import assert_instances_match
from trtnet.export_triton import main as export_main
from trtnet.runtime import VideoSegmenter
from trtnet.runtime.masks import Instances
from trtnet.runtime.backends import open_engines
from trtnet.triton import client as triton_client
from trtnet.triton.local_server import TritonServer, triton_env

INTERVAL = 3
STREAMS = 2
FRAMES = 4


def _frames(image: np.ndarray, stream: int) -> list[np.ndarray]:
    """A short clip per stream: the reference photo sliding by a few pixels per frame."""
    return [np.roll(image, shift=(2 * i + stream, 3 * i), axis=(0, 1)) for i in range(FRAMES)]


@pytest.fixture(scope="module")
def served(tmp_path_factory, reference_dir):
    """The server, the case, its photo, the idle timeout, and VideoSegmenter's results per stream."""
    from trtnet.config import get_config
    from trtnet.network.weights import load_weights

    case = reference_dir / "vid_resnet50"
    image = np.load(case / "inputs.npz")["A/image_bgr"]
    key, nonkey = open_engines("emulator", load_weights(case / "weights.pth"), get_config("yolact_edge_vid_resnet50"))
    start = time.perf_counter()
    expected = []
    for s in range(STREAMS):
        video = VideoSegmenter(key, nonkey, keyframe_interval=INTERVAL)
        expected.append([(video(f), video.last_was_keyframe) for f in _frames(image, s)])
    per_frame = (time.perf_counter() - start) / (STREAMS * FRAMES)
    # Triton drops a sequence that sent nothing for the idle timeout, and a sequence's next frame
    # comes only after its last one was answered: the timeout must outlast a few emulated frames
    # (streams share the models) on this machine as loaded as it is now.
    idle_timeout = max(10.0, 8 * per_frame)
    repo = tmp_path_factory.mktemp("triton") / "repo"
    assert export_main(["-o", str(repo), "--backend", "emulator", "--weights", str(case / "weights.pth"),
                        "--keyframe-interval", str(INTERVAL), "--idle-timeout", f"{idle_timeout:.1f}",
                        "--max-streams", str(STREAMS)]) == 0
    with TritonServer(repo, triton_env(), repo.parent / "server.log") as server:
        yield server, image, float(f"{idle_timeout:.1f}"), expected


def test_concurrent_streams_match_video_segmenter_frame_by_frame(served):
    import tritonclient.grpc as grpcclient

    server, image, _, expected = served
    got: list = [None] * STREAMS
    errors: list = []

    def stream(s: int) -> None:
        try:
            client = grpcclient.InferenceServerClient(server.grpc_url)
            got[s] = triton_client.run_stream(client, "yolact_edge", 100 + s, _frames(image, s))
        except Exception as exc:  # noqa: BLE001 - reported below with the server log
            errors.append(f"stream {s}: {exc}")

    threads = [threading.Thread(target=stream, args=(s,)) for s in range(STREAMS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, f"{errors}\n{server.log()}"
    for s in range(STREAMS):
        assert [bool(r["keyframe"][0]) for r in got[s]] == [k for _, k in expected[s]] == \
            [i % INTERVAL == 0 for i in range(FRAMES)]
        for i, (result, (inst, _)) in enumerate(zip(got[s], expected[s])):
            where = f"stream {s} frame {i}"
            assert len(result["scores"]) > 0, where
            # a video config has no mask re-scoring: its mask scores are its box scores
            np.testing.assert_array_equal(result["mask_scores"], result["scores"], err_msg=where)
            # The server's NumPy (< 2, its stub's) sums in another order than ours: two near-equal
            # scores may swap ranks and a mask pixel at 0.5 may flip (tests/instances_match.py).
            served_instances = Instances(result["classes"], result["scores"], result["boxes"],
                                         result["masks"].astype(bool))
            assert_instances_match(served_instances, inst, where)


def test_start_restarts_and_an_idle_stream_is_evicted(served):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    server, image, idle_timeout, _ = served
    client = grpcclient.InferenceServerClient(server.grpc_url)
    small = image[:120, :160]
    first = triton_client.segment_frame(client, "yolact_edge", small, 7, start=True, end=False)
    second = triton_client.segment_frame(client, "yolact_edge", small, 7, start=False, end=False)
    restart = triton_client.segment_frame(client, "yolact_edge", small, 7, start=True, end=False)
    assert [bool(r["keyframe"][0]) for r in (first, second, restart)] == [True, False, True]
    time.sleep(idle_timeout + 1.0)
    # Triton dropped the idle sequence: a frame without START is refused...
    with pytest.raises(InferenceServerException, match="START"):
        triton_client.segment_frame(client, "yolact_edge", small, 7, start=False, end=False)
    # ... and with START the stream begins again at a keyframe, then ends.
    again = triton_client.segment_frame(client, "yolact_edge", small, 7, start=True, end=True)
    assert bool(again["keyframe"][0])


@pytest.fixture(scope="module")
def served_image_config(tmp_path_factory, reference_dir):
    """A server for an image config's repository (yolact_edge_mobilenetv2: the keyframe model
    alone), its frames, and the Segmenter's Instances of each."""
    from trtnet.network.weights import load_weights
    from trtnet.runtime import EmulatedEngine, Segmenter

    case = reference_dir / "mobilenetv2"
    inputs = np.load(case / "inputs.npz")
    frames = [inputs["img0/image_bgr"], inputs["img1/image_bgr"]]  # two sizes: still one model, no state
    segmenter = Segmenter(EmulatedEngine(load_weights(case / "weights.pth"), "yolact_edge_mobilenetv2"))
    expected = [segmenter(f) for f in frames]
    repo = tmp_path_factory.mktemp("triton_image") / "repo"
    assert export_main(["-o", str(repo), "--backend", "emulator", "--weights", str(case / "weights.pth")]) == 0
    with TritonServer(repo, triton_env(), repo.parent / "server.log") as server:
        yield server, frames, expected


def test_an_image_config_is_served_every_frame_a_keyframe(served_image_config):
    import tritonclient.grpc as grpcclient

    server, frames, expected = served_image_config
    client = grpcclient.InferenceServerClient(server.grpc_url)
    got = triton_client.run_stream(client, "yolact_edge", 42, frames)
    assert [bool(r["keyframe"][0]) for r in got] == [True] * len(frames)
    for i, (result, inst) in enumerate(zip(got, expected)):
        where = f"frame {i}"
        assert len(result["scores"]) > 0, where
        np.testing.assert_array_equal(result["mask_scores"], result["scores"], err_msg=where)  # no re-scoring
        served_instances = Instances(result["classes"], result["scores"], result["boxes"], result["masks"].astype(bool))
        assert_instances_match(served_instances, inst, where)
