"""Defect 8: the device memory of a profile (trtnet.builder.memory) and the default max frame.

The figures are worked out by hand from the tensor sizes; the fit warning is pinned on both
sides of its boundary (exactly fits, one byte over).
"""

from __future__ import annotations

import numpy as np
import pytest

from trtnet import build, emulator, names
from trtnet.builder import memory, sidecar

trt = emulator.trt
B = 3  # batch of the hand-worked profile point
FLOAT_MAP = 2 * 4 * 4 * 4  # bytes of one (1, 2, 4, 4) FLOAT tensor = 128


def tiny_network() -> emulator.Network:
    """x -> a=relu(x) -> b=a*a -> c=b+a -> e=c*k (k a constant) -> d=reshape(e) (output)."""
    net = emulator.Network()
    x = net.add_input("x", trt.DataType.FLOAT, (-1, 2, 4, 4))
    relu = net.add_activation(x, trt.ActivationType.RELU)
    relu.name = relu.get_output(0).name = "relu"
    a = relu.get_output(0)
    prod = net.add_elementwise(a, a, trt.ElementWiseOperation.PROD)
    prod.name = prod.get_output(0).name = "square"
    b = prod.get_output(0)
    add = net.add_elementwise(b, a, trt.ElementWiseOperation.SUM)
    add.name = add.get_output(0).name = "sum"
    c = add.get_output(0)
    k = net.add_constant((1, 2, 1, 1), trt.Weights(np.array([1.0, 2.0], np.float32).reshape(1, 2, 1, 1)))
    k.name = "k"
    scale = net.add_elementwise(c, k.get_output(0), trt.ElementWiseOperation.PROD)
    scale.name = "scale"
    flat = net.add_shuffle(scale.get_output(0))
    flat.reshape_dims = (-1, 32)
    flat.name = "flat"
    net.mark_output(flat.get_output(0))
    return net


# By hand, batch 3 (each map 3 x 128 = 384 bytes):
#   relu   live {a}        384
#   square live {a, b}     768
#   sum    live {a, b, c} 1152   <- peak; a and b are read for the last time here
#   k      folded constant, not an activation (8 bytes of weights)
#   scale  live {c, e}     768
#   flat   live {e}        384   (its output d is an I/O tensor)
PEAK = 3 * B * FLOAT_MAP
IO = 2 * B * FLOAT_MAP          # x and d
WEIGHTS = 2 * 4                 # k: two floats
TOTAL = PEAK + IO + WEIGHTS     # 1928


def test_the_activation_peak_of_a_tiny_network_is_the_hand_worked_one():
    net = tiny_network()
    got = memory.profile_memory(net, "max", {"x": (B, 2, 4, 4)}, B)
    assert (got.activation_bytes, got.io_bytes, got.weights_bytes) == (1152, 768, 8) == (PEAK, IO, WEIGHTS)
    assert got.peak_layer == "sum"
    assert sorted(got.peak_tensors) == sorted([("relu", 384), ("square", 384), ("sum", 384)])
    assert got.total_bytes == TOTAL == 1928


def test_the_estimate_leaves_the_network_dynamic():
    net = tiny_network()
    memory.profile_memory(net, "max", {"x": (B, 2, 4, 4)}, B)
    assert tuple(net.get_input(0).shape) == (-1, 2, 4, 4)
    assert tuple(net.get_output(0).shape) == (-1, 32)


def test_each_profile_point_is_estimated_at_its_own_batch():
    rows = memory.profiles_memory(tiny_network(), {"x": ((1, 2, 4, 4), (2, 2, 4, 4), (B, 2, 4, 4))})
    assert [(r.point, r.activation_bytes) for r in rows] == [("min", 3 * 128), ("opt", 6 * 128), ("max", PEAK)]


@pytest.mark.parametrize("gpu_bytes, warned", [(TOTAL, False), (TOTAL - 1, True)])
def test_the_fit_warning_boundary(gpu_bytes, warned):
    row = memory.profile_memory(tiny_network(), "max", {"x": (B, 2, 4, 4)}, B)
    assert memory.fits(row, gpu_bytes) is (not warned)
    warnings = memory.fit_warnings([row], {"name": "Orin", "memory_bytes": gpu_bytes})
    assert len(warnings) == int(warned)
    if warned:
        assert "1928 bytes" in warnings[0] and "1927 bytes" in warnings[0] and "--max-frame" in warnings[0]


def test_a_sidecar_without_a_gpu_gives_no_warning_and_old_sidecars_give_mib():
    row = memory.profile_memory(tiny_network(), "max", {"x": (B, 2, 4, 4)}, B)
    assert memory.fit_warnings([row], {"name": "unknown", "reason": "no CuPy"}) == []
    assert sidecar.gpu_memory_bytes({"memory_mib": 8}) == 8 << 20
    assert sidecar.gpu_memory_bytes({"memory_mib": 8, "memory_bytes": 123}) == 123


# --- the real network -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnv2_fp16():
    from trtnet.config import get_config
    from trtnet.network.random_weights import random_weights
    from trtnet.network.weights import WeightStore
    from trtnet.network.yolact_edge import build_keyframe

    config = get_config("yolact_edge_mobilenetv2")
    net = emulator.Network()
    build_keyframe(net, trt, WeightStore(random_weights(config.name)), config, plan=build.as_plan("fp16"))
    return net


@pytest.mark.parametrize("frame", [(2160, 3840), (1080, 1920)])
def test_the_preprocess_holds_the_whole_batch_in_fp32(mnv2_fp16, frame):
    shapes = build.profile_shapes(mnv2_fp16, build.DEFAULT_MIN_FRAME, build.DEFAULT_OPT_FRAME, frame, 8)
    top = memory.profiles_memory(mnv2_fp16, shapes)[-1]
    copy = 8 * frame[0] * frame[1] * 3 * 4  # 796 262 400 bytes at 2160x3840: the defect's ~800 MB
    assert top.peak_tensors[:2] == (("preprocess.to_float", copy), ("preprocess.to_nchw", copy))
    assert top.io_bytes >= 8 * frame[0] * frame[1] * 3  # the uint8 frames themselves


def test_the_default_max_frame_is_1080p():
    assert build.DEFAULT_MAX_FRAME == (1080, 1920)
    assert build.make_parser().parse_args(["--weights", "w"]).max_frame == (1080, 1920)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    from safetensors.numpy import save_file

    from trtnet.network.random_weights import random_weights

    path = tmp_path_factory.mktemp("w") / "mnv2.safetensors"
    save_file(random_weights("yolact_edge_mobilenetv2"), str(path))
    return path


def test_dry_run_prints_memory_per_profile_and_warns_for_a_small_gpu(weights_file, monkeypatch, capsys):
    monkeypatch.setattr(sidecar, "gpu_description", lambda: {"name": "Tiny", "memory_bytes": 64 << 20})
    assert build.main(["--weights", str(weights_file), "--dry-run", "--max-batch", "8"]) == 0
    out = capsys.readouterr().out
    section = out.split("device memory per profile point", 1)[1]
    for point in ("min", "opt", "max"):
        assert f"\n  {point} " in section
    assert "warning: the max point needs" in section and "Tiny has 64.0 MiB" in section
    assert names.INPUT in out


def test_dry_run_without_a_gpu_prints_memory_and_no_warning(weights_file, monkeypatch, capsys):
    monkeypatch.setattr(sidecar, "gpu_description", lambda: {"name": "unknown", "reason": "no CuPy"})
    assert build.main(["--weights", str(weights_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "device memory per profile point" in out and "warning:" not in out


def test_dry_run_checks_the_gpu_named_by_the_engines_existing_sidecar(weights_file, tmp_path, monkeypatch, capsys):
    # A dry run on a desktop before rebuilding an engine of the Orin: the sidecar names the Orin.
    import json

    monkeypatch.setattr(sidecar, "gpu_description", lambda: {"name": "Desktop", "memory_bytes": 1 << 40})
    engine = tmp_path / "m.engine"
    sidecar.sidecar_path(engine).write_text(json.dumps({"gpu": {"name": "Orin", "memory_mib": 64}}))
    assert build.main(["--weights", str(weights_file), "--dry-run", "-o", str(engine)]) == 0
    out = capsys.readouterr().out
    assert "but Orin (from m.engine.json) has 64.0 MiB (67108864 bytes)" in out and "Desktop" not in out
    sidecar.sidecar_path(engine).write_text("{not json")
    assert sidecar.target_gpu(engine)["name"] == "Desktop"
