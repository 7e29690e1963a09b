"""Mutation fuzz of the checkpoint reader: every input must load or raise a named error.

Seeded, deterministic mutations of the reference checkpoints (byte flips, truncation,
zeroed or inserted chunks, and mutations inside the tensor pickle, re-packed so they reach
the unpickler past the zip CRC) go through weights_convert.load_state_dict for --seconds.
Printed: the count of loads and of each named error (CheckpointError and its family), and
every other outcome (any other exception, or an input slower than --max-seconds) as a
failure with its seed; exit 1 if there was any. Re-run one seed with --seed S --count 1.
"""

from __future__ import annotations

import argparse
import io
import os
import pickletools
import random
import signal
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLES = (
    "python -m trtnet.bench fuzz --seconds 60",
    "python -m trtnet.bench fuzz --seconds 600 --seed 1000",
    "python -m trtnet.bench fuzz --seed 4242 --count 1      # re-run one reported seed",
    "python -m trtnet.bench fuzz --files a.pth b.pth --seconds 30",
)

CHECKPOINT_FORMATS = "checkpoint_formats"
HANG_SECONDS = 10          # an input running this long is a hang: interrupted and reported
MAX_SECONDS = 5.0          # slower than this (but finished) is a failure too


@dataclass
class Sample:
    """One original checkpoint, with where its pickle(s) live for targeted mutations."""

    name: str
    raw: bytes
    zip_members: list[tuple[zipfile.ZipInfo, bytes]] = field(default_factory=list)
    pickle_member: int = -1                  # index in zip_members of data.pkl
    pickle_span: tuple[int, int] = (0, 0)    # legacy: bytes of the leading pickles

    @property
    def pickle(self) -> bytes:
        if self.zip_members:
            return self.zip_members[self.pickle_member][1]
        return self.raw[self.pickle_span[0]: self.pickle_span[1]]

    def with_pickle(self, data: bytes) -> bytes:
        """The checkpoint with its pickle replaced (a zip re-packed with a valid CRC)."""
        if not self.zip_members:
            a, b = self.pickle_span
            return self.raw[:a] + data + self.raw[b:]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for i, (info, body) in enumerate(self.zip_members):
                z.writestr(info.filename, data if i == self.pickle_member else body)
        return out.getvalue()


def load_sample(path: Path) -> Sample:
    raw = path.read_bytes()
    s = Sample(path.name, raw)
    if raw[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            s.zip_members = [(i, z.read(i)) for i in z.infolist()]
        s.pickle_member = next(i for i, (info, _) in enumerate(s.zip_members)
                               if info.filename.endswith("data.pkl"))
    else:  # legacy: magic, protocol, sys_info, objects, storage keys; storages follow
        pos = 0
        for _ in range(5):
            *_, (_, _, last) = pickletools.genops(io.BytesIO(raw[pos:]))
            pos += last + 1
        s.pickle_span = (0, pos)
    return s


def _flip(rng: random.Random, data: bytes, n: int) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        if b:
            b[rng.randrange(len(b))] ^= rng.randrange(1, 256)
    return bytes(b)


def _chunk(rng: random.Random, data: bytes) -> bytes:
    """Bytes to insert: random, a copy of part of ``data``, or that copy repeated."""
    kind = rng.randrange(3)
    if kind == 0 or not data:
        return rng.randbytes(rng.randint(1, 256))
    a = rng.randrange(len(data))
    piece = data[a: a + rng.randint(1, 64)]
    return piece if kind == 1 else piece * rng.randint(2, 2000)


def _edit(rng: random.Random, data: bytes) -> bytes:
    """One structural edit: flips, a truncation, a zeroed chunk, an inserted chunk, or an
    opcode argument overwritten with a huge value."""
    kind = rng.randrange(6)
    pos = rng.randrange(len(data) + 1)
    if kind == 0:
        return _flip(rng, data, rng.randint(1, 8))
    if kind == 1:
        return data[:pos]
    if kind == 2:
        n = rng.randint(1, 4096)
        return data[:pos] + bytes(min(n, len(data) - pos)) + data[pos + n:]
    if kind == 3:
        return data[:pos] + _chunk(rng, data) + data[pos:]
    if kind == 4:  # a length / index / count field set to a huge value
        big = rng.choice((b"\xff\xff\xff\x7f", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80",
                          b"\xf0\xff\xff\x0f"))
        return data[:pos] + big + data[pos + len(big):]
    return data[:pos] + bytes([rng.randrange(256)]) + data[pos:]   # a stray opcode


def mutate(seed: int, samples: list[Sample]) -> tuple[str, str, bytes]:
    """(sample name, mutation kind, bytes) for ``seed``: the same on every run."""
    rng = random.Random(seed)
    s = samples[seed % len(samples)]
    if rng.random() < 0.5:
        data = s.pickle
        for _ in range(rng.randint(1, 3)):
            data = _edit(rng, data)
        return s.name, "pickle", s.with_pickle(data)
    return s.name, "file", _edit(rng, s.raw)


class Hang(BaseException):
    """Raised by the alarm in an input that ran HANG_SECONDS (a BaseException, so no
    ``except Exception`` in the reader can swallow it)."""


def _alarm(signum, frame) -> None:
    raise Hang()


def outcome(path: str) -> str:
    """'load', the name of the named error raised, or 'other: <exception>' (a failure)."""
    from weights_convert import ConverterError, load_state_dict

    try:
        load_state_dict(path)
    except ConverterError as exc:
        return type(exc).__name__
    except Hang:
        return f"other: ran over {HANG_SECONDS} s (a hang)"
    except Exception as exc:  # noqa: BLE001 - every other outcome is what we look for
        return f"other: {type(exc).__name__}: {str(exc)[:120]}"
    return "load"


def run_one(seed: int, samples: list[Sample], path: str,
            hang_seconds: int = HANG_SECONDS) -> tuple[str, float]:
    """The outcome of one seed and its time, under an alarm of ``hang_seconds``."""
    _, _, data = mutate(seed, samples)
    with open(path, "wb") as f:
        f.write(data)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(hang_seconds)
    t0 = time.perf_counter()
    try:
        result = outcome(path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return result, time.perf_counter() - t0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="run mutations for this long (default 60)")
    parser.add_argument("--count", type=int, default=None,
                        help="stop after this many inputs (default: only --seconds bounds the run)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--files", nargs="+", type=Path, default=None, metavar="PTH",
                        help="checkpoints to mutate (default: every .pth in "
                             "$TRTNET_REFERENCE_DIR/checkpoint_formats, else "
                             "../shared/reference/checkpoint_formats from the current directory)")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS,
                        help=f"an input slower than this is a failure (default {MAX_SECONDS})")


def _files(args: argparse.Namespace) -> list[Path]:
    from trtnet import cli

    if args.files:
        return [cli.input_file(p, "--files checkpoint") for p in args.files]
    folder = cli.reference_case_dir(CHECKPOINT_FORMATS, "--files")
    found = sorted(folder.glob("*.pth"))
    if not found:
        raise cli.CliError(f"no .pth files in {folder}: give --files", cli.EXIT_USAGE)
    return found


def run(args: argparse.Namespace) -> int:
    from trtnet import cli

    if args.seconds <= 0 or (args.count is not None and args.count <= 0):
        raise cli.CliError("--seconds and --count must be positive", cli.EXIT_USAGE)
    try:
        samples = [load_sample(p) for p in _files(args)]
    except (zipfile.BadZipFile, ValueError, StopIteration) as exc:
        raise cli.CliError(f"--files: not a well-formed checkpoint to mutate: {exc}",
                           cli.EXIT_USAGE) from None
    counts: Counter = Counter()
    failures: list[tuple[int, str, float]] = []
    slowest = (0.0, args.seed)
    seed = args.seed
    t_end = time.monotonic() + args.seconds
    with tempfile.TemporaryDirectory(prefix="trtnet-fuzz-") as tmp:
        path = os.path.join(tmp, "input.pth")
        while time.monotonic() < t_end and (args.count is None or seed - args.seed < args.count):
            result, dt = run_one(seed, samples, path)
            if dt > args.max_seconds and not result.startswith("other"):
                result = f"other: took {dt:.1f} s (over --max-seconds {args.max_seconds})"
            counts["failure" if result.startswith("other") else result] += 1
            if result.startswith("other"):
                failures.append((seed, result, dt))
            slowest = max(slowest, (dt, seed))
            seed += 1
    total = seed - args.seed
    print(f"inputs  {total} (seeds {args.seed}..{seed - 1}) over "
          f"{', '.join(s.name for s in samples)}")
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:24s} {n}")
    print(f"slowest {slowest[0] * 1e3:.1f} ms (seed {slowest[1]})")
    for s, result, dt in failures[:50]:
        print(f"FAIL seed {s}: {result} ({dt:.2f} s)")
    if len(failures) > 50:
        print(f"... and {len(failures) - 50} more failures")
    print("ok: every input loaded or raised a named error" if not failures
          else f"{len(failures)} failures")
    return 1 if failures else 0
