"""A hostile or corrupt checkpoint can neither hang the converter nor exhaust memory.

A seeded mutation corpus over the three reference checkpoint formats: every input loads
or raises a named error (the CheckpointError family), never MemoryError, RecursionError
or anything else; an input running 10 s is interrupted and reported with its seed. Then
one test per bound of the pickle machine, each pinned on both sides where it has a line.
"""

from __future__ import annotations

import io
import struct
import tempfile
from collections import Counter
from pathlib import Path

import convert_helpers as h
import numpy as np
import pytest

from trtnet.benchmarks import fuzz
from weights_convert import CheckpointError, load_state_dict
from weights_convert.pickle_machine import MAX_DEPTH
from weights_convert.unpickler import load_restricted

FORMATS = "checkpoint_formats"
# 3000 seeds, plus those a 600 s run of ``python -m trtnet.bench fuzz`` found (a corrupted
# zip "version needed to extract" made zipfile raise NotImplementedError)
SEEDS = [*range(3000), 86992, 128426, 138250]
NAMED = {"load", "CheckpointError", "UnsafeCheckpointError", "UnsupportedDtypeError"}


def _no_pid(pid):
    raise CheckpointError(f"unexpected persistent record {pid!r}")


def _load(data: bytes, **kw):
    return load_restricted(data, _no_pid, "test.pkl", **kw)


def _corrupt(data: bytes, match: str, **kw) -> None:
    with pytest.raises(CheckpointError, match=match) as err:
        _load(data, **kw)
    assert "test.pkl: corrupted or truncated pickle" in str(err.value)


def _pkl(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


# -- the corpus ----------------------------------------------------------------------------
def test_mutation_corpus_only_loads_or_raises_named_errors(reference_dir, tmp_path):
    samples = [fuzz.load_sample(p) for p in sorted((reference_dir / FORMATS).glob("*.pth"))]
    assert [s.name for s in samples] == ["legacy_fp32.pth", "wrapped_fp32.pth", "zip_fp32.pth"]
    path = str(tmp_path / "m.pth")
    kinds: Counter = Counter()
    bad = []
    for seed in SEEDS:
        result, _ = fuzz.run_one(seed, samples, path, hang_seconds=10)
        kinds[result] += 1
        if result not in NAMED:
            bad.append((seed, result))
    assert bad == [], f"not a load or a named error (seed, outcome): {bad[:10]}"
    # the corpus reaches every kind of outcome, so it can catch a regression in each
    assert kinds["load"] > 0 and kinds["CheckpointError"] > 0 and kinds["UnsafeCheckpointError"] > 0


def test_corpus_is_deterministic_and_reaches_the_unpickler(reference_dir):
    samples = [fuzz.load_sample(p) for p in sorted((reference_dir / FORMATS).glob("*.pth"))]
    assert fuzz.mutate(1234, samples) == fuzz.mutate(1234, samples)
    reached = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.pth"
        for seed in range(300):
            name, kind, data = fuzz.mutate(seed, samples)
            if kind != "pickle" or name == "legacy_fp32.pth":
                continue
            path.write_bytes(data)
            try:
                load_state_dict(path)
            except CheckpointError as exc:
                reached += "corrupted or truncated pickle" in str(exc)
    assert reached > 20    # re-packed with a valid CRC: the mutated pickle is parsed


def test_unmutated_pickles_round_trip(reference_dir):
    # re-packing an unchanged pickle gives a checkpoint that loads identically
    for p in sorted((reference_dir / FORMATS).glob("*.pth")):
        s = fuzz.load_sample(p)
        with tempfile.TemporaryDirectory() as tmp:
            q = Path(tmp) / p.name
            q.write_bytes(s.with_pickle(s.pickle))
            a, b = load_state_dict(p), load_state_dict(q)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# -- declared lengths ----------------------------------------------------------------------
def test_string_exactly_to_the_end_loads_one_past_fails():
    assert _load(_pkl(b"X\x03\x00\x00\x00abc")) == "abc"
    # declared to reach the very last byte (the STOP is swallowed): the next opcode is missing
    _corrupt(b"\x80\x02X\x04\x00\x00\x00abc.", r"opcode at byte 11 declares 1 bytes, only 0")
    # one byte past the end: refused before anything is read or allocated
    _corrupt(b"\x80\x02X\x05\x00\x00\x00abc.", r"BINUNICODE at byte 7 declares 5 bytes, only 4 are left")


def test_huge_declared_string_is_refused_without_allocating():
    _corrupt(_pkl(b"X\xff\xff\xff\xff" + b"a" * 10), r"declares 4294967295 bytes, only 11")


def test_huge_storage_size_is_refused_at_its_record(tmp_path):
    tensors, storages = h.simple({"w": np.zeros(4, np.float32)})
    pkl = h.dumps(h.ODict([("w", h.Reduce(h.Global("torch._utils", "_rebuild_tensor_v2"), (
        h.PersId(("storage", h.Global("torch", "FloatStorage"), "0", "cpu", 2 ** 40)),
        0, (4,), (1,), False, h.ODict())))]))
    h.write_zip(tmp_path / "c.pth", tensors, storages, data_pkl=pkl)
    with pytest.raises(CheckpointError, match="holds 16 bytes, its record says 1099511627776 x 4"):
        load_state_dict(tmp_path / "c.pth")


def test_global_line_is_bounded():
    _corrupt(_pkl(b"ctorch\n" + b"A" * 300 + b"\n"), r"GLOBAL name at byte \d+: no end of line")


# -- opcodes -------------------------------------------------------------------------------
@pytest.mark.parametrize("op", [b"i", b"I1\n", b"\x8e", b"\x96", b"\x81", b"0", b"2", b"B", b"V"])
def test_opcode_outside_the_allowlist_is_refused(op):
    _corrupt(_pkl(b"N" + op), f"opcode 0x{op[0]:02x} is not one a torch state dict uses")


@pytest.mark.parametrize("proto, ok", [(1, False), (2, True), (5, True), (6, False)])
def test_protocol_range(proto, ok):
    data = bytes([0x80, proto]) + b"K\x07."
    if ok:
        assert _load(data) == 7
    else:
        _corrupt(data, f"pickle protocol {proto}")


def test_stack_underflow_and_leftovers_are_refused():
    _corrupt(_pkl(b"\x85"), "stack underflow")
    _corrupt(_pkl(b"(N\x86"), "stack underflow")            # TUPLE2 cannot reach below a MARK
    _corrupt(_pkl(b"NN"), "STOP with 2 objects")
    _corrupt(_pkl(b"(N"), "STOP with 1 objects and 1 open MARKs")


def test_reduce_calls_only_allowed_globals():
    _corrupt(_pkl(b"X\x01\x00\x00\x00a)R"), "REDUCE calls a str")
    _corrupt(_pkl(b"ccollections\nOrderedDict\nNR"), "REDUCE arguments are a NoneType")


def test_dict_keys_are_scalars():
    # a (deep) tuple as key would be hashed recursively by CPython: refused before
    _corrupt(_pkl(b"}N\x85\x85Ns"), "a dict key of type tuple")
    assert _load(_pkl(b"}X\x01\x00\x00\x00kK\x01s")) == {"k": 1}


# -- nesting, memo, work, memory -----------------------------------------------------------
def test_nesting_depth_at_the_limit_loads_one_more_fails():
    # depth d: d lists pushed, then d - 1 APPENDs put each into the one below it
    def nested(d: int) -> bytes:
        return _pkl(b"]" * d + b"a" * (d - 1))
    obj = _load(nested(MAX_DEPTH))
    depth = 0
    while isinstance(obj, list):
        depth, obj = depth + 1, (obj[0] if obj else None)
    assert depth == MAX_DEPTH
    _corrupt(nested(MAX_DEPTH + 1), f"nested over {MAX_DEPTH} deep")


def test_very_deep_tuple_chain_is_refused_not_a_crash():
    _corrupt(_pkl(b"N" + b"\x85" * 200_000), f"nested over {MAX_DEPTH} deep")


def test_memo_read_before_write_is_refused():
    _corrupt(_pkl(b"h\x05"), "memo entry 5 read before it was written")
    _corrupt(_pkl(b"j\xff\xff\xff\x7f"), "memo entry 2147483647 read before")
    _corrupt(_pkl(b"q\x00"), "stack underflow")               # BINPUT of nothing


def test_memo_cycle_is_refused():
    _corrupt(_pkl(b"]q\x00h\x00a"), "cycle")


def test_shared_references_cannot_unfold_exponentially():
    # x = []; then 30 times x = (x, x): 2**31 nodes unfolded from 120 bytes
    body = b"]" + b"q\x00h\x00\x86" * 30
    _corrupt(_pkl(body), "shared references unfold to over")
    assert _load(_pkl(b"]" + b"q\x00h\x00\x86" * 3)) == ((([], []), ([], [])),) * 2


def test_repeated_work_on_a_memoized_object_is_bounded():
    # torch.Size(big) re-run 5000 times on one memoized 20000-item tuple: 1e8 element copies
    big = b"(" + b"K\x01" * 20_000 + b"t"
    body = b"]ctorch\nSize\nq\x00" + big + b"\x85q\x01\x86a" + b"h\x00h\x01Ra" * 5_000
    _corrupt(_pkl(body), "more work than", max_memory=1 << 40)   # the work bound, not memory


def test_memory_is_bounded_by_the_budget():
    body = b"](" + b"}" * 500 + b"e"
    assert len(_load(_pkl(body))) == 500
    _corrupt(_pkl(body), "would allocate over 10000 bytes", max_memory=10_000)


def test_file_source_is_left_right_after_the_pickle():
    f = io.BytesIO(_pkl(b"K\x07") + b"rest")
    assert load_restricted(f, _no_pid, "x") == 7
    assert f.read() == b"rest"


def test_long1_and_binfloat():
    assert _load(_pkl(b"\x8a\x02\x00\x80")) == -(2 ** 15)
    assert _load(_pkl(b"G" + struct.pack(">d", 1.5))) == 1.5
