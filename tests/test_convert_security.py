"""Hostile checkpoints: a pickle that would run code is refused, naming the global, before
anything runs, and no output file is left behind.

Each payload would create ``pwned`` if executed; the test checks the file never appears.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import convert_helpers as h
from weights_convert import CheckpointError, UnsafeCheckpointError, convert, load_state_dict
from weights_convert.__main__ import main

SAFE = {"conv.weight": np.ones((2, 3), np.float32)}


def _legit(fmt: str):
    """A harmless state dict in the pickle form of ``fmt`` (run before the payload)."""
    tensors, storages = h.simple(SAFE)
    if fmt == "tar":
        return h.ODict([(name, h.PersId(f"t{i}")) for i, name in enumerate(tensors)])
    return h.state_object(tensors, storages, legacy=fmt == "legacy")


def _payloads(marker: str, fmt: str = "zip") -> dict:
    """name -> (pickle bytes, global the error must name)."""
    legit = _legit(fmt)

    class Evil:  # a real pickler's output: protocol 4 STACK_GLOBAL of subprocess.call
        def __reduce__(self):
            return subprocess.call, (["touch", marker],)

    return {
        "os.system": (h.hostile_pickle(h.Global("os", "system"), f"touch {marker}"), "os.system"),
        "posix.system": (h.hostile_pickle(h.Global("posix", "system"), f"touch {marker}"),
                         "posix.system"),
        "builtins.eval": (h.hostile_pickle(
            h.Global("builtins", "eval"), f"open({marker!r}, 'w').close()"), "builtins.eval"),
        "builtins.exec after tensors": (h.hostile_pickle(
            h.Global("builtins", "exec"), f"open({marker!r}, 'w').close()", before=legit),
            "builtins.exec"),
        "subprocess via pickle protocol 4": (pickle.dumps(Evil(), protocol=4), "subprocess.call"),
        "torch.load inside": (h.hostile_pickle(h.Global("torch", "load"), marker), "torch.load"),
    }


PAYLOAD_NAMES = list(_payloads("x"))


def _write(fmt: str, path, payload: bytes) -> None:
    tensors, storages = h.simple(SAFE)
    if fmt == "zip":
        h.write_zip(path, tensors, storages, data_pkl=payload)
    elif fmt == "legacy":
        h.write_legacy(path, tensors, storages, main_pickle=payload)
    else:
        h.write_tar(path, tensors, storages, main_pickle=payload)


@pytest.mark.parametrize("fmt", ["zip", "legacy", "tar"])
@pytest.mark.parametrize("payload", PAYLOAD_NAMES)
def test_hostile_pickle_is_refused_naming_the_global(tmp_path, fmt, payload):
    marker = tmp_path / "pwned"
    data, global_name = _payloads(str(marker), fmt)[payload]
    src, out = tmp_path / "evil.pth", tmp_path / "out.safetensors"
    _write(fmt, src, data)
    with pytest.raises(UnsafeCheckpointError) as err:
        convert(src, out)
    assert err.value.global_name == global_name
    assert global_name in str(err.value)
    assert not marker.exists()
    assert sorted(os.listdir(tmp_path)) == ["evil.pth"]   # no output, no temp file


def test_hostile_pickle_refused_by_load_state_dict(tmp_path):
    marker = tmp_path / "pwned"
    data, _ = _payloads(str(marker))["os.system"]
    _write("zip", tmp_path / "evil.pth", data)
    with pytest.raises(UnsafeCheckpointError, match="os.system"):
        load_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_hostile_legacy_magic_pickle_is_refused(tmp_path):
    # the very first pickle of a legacy file is already a payload
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pth").write_bytes(
        h.hostile_pickle(h.Global("os", "system"), f"touch {marker}"))
    with pytest.raises(UnsafeCheckpointError, match="os.system"):
        convert(tmp_path / "evil.pth", tmp_path / "out.safetensors")
    assert not marker.exists()


def test_cli_refuses_hostile_checkpoint_with_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    data, _ = _payloads(str(marker))["builtins.eval"]
    _write("zip", tmp_path / "evil.pth", data)
    rc = main([str(tmp_path / "evil.pth"), str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("weights_convert: error: ") and "builtins.eval" in err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_cli_process_exits_nonzero_without_traceback(tmp_path):
    marker = tmp_path / "pwned"
    data, _ = _payloads(str(marker), "legacy")["os.system"]
    _write("legacy", tmp_path / "evil.pth", data)
    proc = subprocess.run([sys.executable, "-m", "weights_convert", str(tmp_path / "evil.pth"),
                           str(tmp_path / "out.safetensors")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "os.system" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("target", ["tensor", "rebuild function", "storage"])
def test_pickle_cannot_rewrite_validated_records(tmp_path, target):
    # BUILD could set negative strides on a checked tensor record (an out-of-bounds read),
    # or rewrite a stand-in function's defaults for later loads: both are refused
    tensors, storages = h.simple(SAFE)
    v2 = h.Global("torch._utils", "_rebuild_tensor_v2")
    pid = h.PersId(("storage", h.Global("torch", "FloatStorage"), "0", "cpu", 6))
    tensor = h.Reduce(v2, (pid, 0, (2, 3), (3, 1), False, h.ODict()))
    obj = {
        "tensor": h.Build(tensor, {"strides": (-1000, 1)}),
        "rebuild function": h.Build(v2, (None, {"__defaults__": (1, 2, 3)})),
        "storage": h.Build(pid, {"numel": 10 ** 9}),
    }[target]
    h.write_zip(tmp_path / "b.pth", tensors, storages,
                data_pkl=h.dumps(h.ODict([("conv.weight", obj)])))
    with pytest.raises(CheckpointError, match="malformed pickle: it tries to modify"):
        load_state_dict(tmp_path / "b.pth")


def test_torch_is_never_imported(reference_dir, tmp_path):
    # a 'torch' package that leaves a trace when imported shadows any real one
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        f"open({str(tmp_path / 'torch_imported')!r}, 'w').close()\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from weights_convert import convert; "
            "convert(sys.argv[2], sys.argv[3]); convert(sys.argv[4], sys.argv[3]); "
            "print('torch' in sys.modules)")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site"),
         str(reference_dir / "checkpoint_formats/zip_fp32.pth"), str(tmp_path / "o.safetensors"),
         str(reference_dir / "checkpoint_formats/legacy_fp32.pth")],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert not (tmp_path / "torch_imported").exists()
