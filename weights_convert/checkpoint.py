"""Torch checkpoint files read without torch: the zip format and the legacy formats.

* zip (torch >= 1.6): ``<root>/data.pkl`` + one entry per storage ``<root>/data/<key>``
  and a ``byteorder`` record ('little' when absent).
* legacy (pre-1.6, ``_use_new_zipfile_serialization=False``): magic number, protocol
  and sys-info pickles, the object pickle, the list of storage keys, then every storage
  as an int64 element count + its raw little-endian bytes.
* legacy tar (torch < 0.4): a tar holding ``storages``, ``tensors`` and ``pickle``.

Opening a checkpoint unpickles only the object structure (:mod:`.unpickler`); tensor data
is read per tensor by :meth:`Checkpoint.read`, straight from its storage's bytes in the
file, so the peak memory is about the largest storage, not the checkpoint.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import tarfile
import zipfile
import zlib
from collections import Counter
from typing import Any, Optional

import numpy as np

from .errors import CheckpointError
from .unpickler import (
    StorageRef,
    StorageType,
    TensorRef,
    _tensor,
    describe,
    load_restricted,
    memory_budget,
)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# Largest (tensor bytes) / (file bytes) ratio accepted: real state dicts are ~1 (x2 for a
# float16 -> float32 widening); stride-0 records claiming more are refused.
EXPANSION_LIMIT = 16


class Checkpoint:
    """An open checkpoint: ``obj`` is the unpickled object, tensors are :class:`TensorRef`."""

    format: str = "?"

    def __init__(self, path: str):
        self.path = str(path)
        self.obj: Any = None
        self.big_endian = False
        self._file = open(self.path, "rb")
        self._size = os.fstat(self._file.fileno()).st_size
        try:  # storages are read as views of a read-only mapping: no copy into our memory
            self._map: Optional[mmap.mmap] = mmap.mmap(
                self._file.fileno(), 0, access=mmap.ACCESS_READ) if self._size else None
        except (OSError, ValueError):
            self._map = None
        self._uses: Counter = Counter()
        self._cache: dict[str, np.ndarray] = {}
        try:
            self._open()
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error) as exc:
            self.close()  # a record with the wrong structure, past the checks above
            raise CheckpointError(f"{self.path}: malformed {self.format} checkpoint "
                                  f"({type(exc).__name__}: {exc})") from None
        except BaseException:
            self.close()
            raise

    # -- subclass interface ---------------------------------------------------------
    def _open(self) -> None:
        """Parse the file's structure and set ``obj``; no tensor data is read."""
        raise NotImplementedError

    def _read_storage(self, key: str) -> np.ndarray:
        """All bytes of the root storage ``key`` as a uint8 array (checked, CRC if any)."""
        raise NotImplementedError

    # -- public ---------------------------------------------------------------------
    def plan(self, tensors: "dict[str, TensorRef]") -> None:
        """Say which tensors will be read, so storages shared by several stay cached
        until their last user and are dropped right after.

        Refuses tensor records whose values would be far larger than the file (stride-0
        views can describe terabytes with one element): a memory bomb, not weights.
        """
        total = sum(t.nbytes for t in tensors.values())
        if total > max(EXPANSION_LIMIT * self._size, 1 << 26):
            raise CheckpointError(
                f"{self.path}: its tensors would take {total} bytes from a {self._size}-byte "
                "file (broadcast views?); refusing to expand them")
        self._uses = Counter(t.storage.key for t in tensors.values())

    def sha256(self) -> str:
        """sha256 of the whole file. Safe to run on another thread while tensors are read:
        it reads the read-only mapping, or else a file handle of its own."""
        h = hashlib.sha256()
        if self._map is not None:
            h.update(self._map)
            return h.hexdigest()
        with open(self.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        return h.hexdigest()

    def read(self, name: str, t: TensorRef, copy: bool = True) -> np.ndarray:
        """The values of tensor ``name``: C-contiguous, little endian (bfloat16 as uint16).

        ``copy=False`` may return a read-only view of the file's mapping, valid while the
        checkpoint is open (to stream it out); the default returns an array of its own.
        """
        key = t.storage.key
        buf = self._cache.get(key)
        if buf is None:
            buf = self._read_storage(key)
            if self._uses[key] > 1:
                self._cache[key] = buf
        shared = self._uses[key] > 1
        self._uses[key] -= 1
        if self._uses[key] <= 0:
            self._cache.pop(key, None)

        st = t.storage
        view_end = st.byte_offset + st.view_nbytes
        if view_end > buf.size:
            raise CheckpointError(
                f"{self.path}: tensor {name!r}: storage {key!r} holds {buf.size} bytes, "
                f"its record says {view_end} (corrupted file?)")
        start, end = t.byte_span()
        if end > st.view_nbytes:
            raise CheckpointError(
                f"{self.path}: tensor {name!r} (shape {t.shape}, strides {t.strides}, offset "
                f"{t.offset}) reaches byte {end} of a {st.view_nbytes}-byte storage")
        item = t.dtype.itemsize
        raw = buf[st.byte_offset + start: st.byte_offset + end]
        stored = t.dtype.storage.newbyteorder(">") if self.big_endian else t.dtype.storage
        flat = raw.view(stored) if raw.size else np.empty(0, stored)
        if t.numel == 0:
            arr = np.empty(t.shape, t.dtype.storage)
        elif t.is_contiguous():
            arr = flat[: t.numel].reshape(t.shape)
        else:  # read-only: it may overlap itself (stride 0); copied below
            arr = np.lib.stride_tricks.as_strided(
                flat, shape=t.shape, strides=tuple(s * item for s in t.strides), writeable=False)
        if self.big_endian and item > 1:
            return arr.astype(t.dtype.storage, order="C")
        if not arr.flags.c_contiguous or (copy and (shared or not arr.flags.writeable)):
            return np.array(arr, order="C")      # own copy: never alias another tensor
        return arr

    def close(self) -> None:
        self._cache.clear()
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view handed out with copy=False is still alive
                pass
        self._file.close()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _view(self, pos: int, n: int, what: str) -> np.ndarray:
        """Bytes [pos, pos + n) of the file: a read-only view of the mapping if there is
        one, else a fresh array."""
        if self._map is None:
            return self._read_exact(pos, n, what)
        if pos + n > self._size:
            raise CheckpointError(
                f"{self.path}: file is truncated: {what} needs bytes {pos}..{pos + n}, "
                f"the file has {self._size}")
        return np.frombuffer(self._map, np.uint8, n, pos)

    def _read_exact(self, pos: int, n: int, what: str) -> np.ndarray:
        buf = np.empty(n, np.uint8)
        try:
            self._file.seek(pos)
            got = self._file.readinto(memoryview(buf)) if n else 0
        except OSError as exc:
            raise CheckpointError(f"{self.path}: cannot read {what}: {exc.strerror or exc}"
                                  ) from None
        if got != n:
            raise CheckpointError(
                f"{self.path}: file is truncated: {what} needs bytes {pos}..{pos + n}, "
                f"the file has {self._size}")
        return buf


def _key(value: Any, where: str, what: str = "storage key") -> str:
    """A storage or object key: torch writes str (int in old files); anything else is
    corruption, and its str() could be arbitrarily deep or large."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise CheckpointError(f"{where}: malformed {what} {describe(value)}")


def _count(value: Any, where: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CheckpointError(f"{where}: malformed {what} {describe(value)}")
    return value


def _storage_record(pid: Any, where: str, legacy: bool) -> tuple:
    n = 6 if legacy else 5
    if not (isinstance(pid, tuple) and len(pid) == n and pid[0] == "storage"):
        kind = pid[0] if isinstance(pid, tuple) and pid else pid
        if kind == "module":
            raise CheckpointError(f"{where}: the file holds a pickled nn.Module "
                                  "(torch.save(model)), not a state dict")
        raise CheckpointError(f"{where}: unexpected persistent record {describe(pid)}")
    stype, numel = pid[1], pid[4]
    if not isinstance(stype, StorageType) or not isinstance(numel, int) or numel < 0:
        raise CheckpointError(f"{where}: malformed storage record {describe(pid)}")
    return pid[:2] + (_key(pid[2], where),) + pid[3:]


class ZipCheckpoint(Checkpoint):
    format = "zip"

    def _open(self) -> None:
        try:
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
                NotImplementedError) as exc:  # a corrupted "version needed to extract" field
            raise CheckpointError(f"{self.path}: not a readable zip archive (truncated or "
                                  f"corrupted?): {exc}") from None
        names = self._zip.namelist()
        pkls = sorted((n for n in names if n == "data.pkl" or n.endswith("/data.pkl")),
                      key=lambda n: n.count("/"))
        if not pkls:
            raise CheckpointError(f"{self.path}: zip archive without data.pkl: not a "
                                  "PyTorch checkpoint")
        self._prefix = pkls[0][: -len("data.pkl")]
        self._names = set(names)
        if self._prefix + "constants.pkl" in self._names:
            raise CheckpointError(f"{self.path}: a TorchScript archive (torch.jit.save), not a "
                                  "torch.save state dict")
        order = self._member(self._prefix + "byteorder").decode("ascii", "replace").strip() \
            if self._prefix + "byteorder" in self._names else "little"
        if order not in ("little", "big"):
            raise CheckpointError(f"{self.path}: unknown byteorder record {order!r}")
        self.big_endian = order == "big"
        self._storages: dict[str, StorageRef] = {}
        where = f"{self.path} ({pkls[0]})"
        self.obj = load_restricted(self._member(pkls[0]), self._persistent_load, where,
                                   memory_budget(self._size))

    def _member(self, name: str) -> bytes:
        info = self._zip.getinfo(name)
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{self.path}: {name} is encrypted (not a torch.save file)")
        declared = info.file_size
        if declared > max(EXPANSION_LIMIT * self._size, 1 << 26):
            raise CheckpointError(f"{self.path}: {name} claims {declared} bytes uncompressed "
                                  f"in a {self._size}-byte file (corrupted or hostile)")
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
                NotImplementedError, RuntimeError) as exc:
            raise CheckpointError(f"{self.path}: cannot read {name} (corrupted or truncated "
                                  f"file): {exc}") from None

    def _persistent_load(self, pid: Any) -> StorageRef:
        _, stype, key, _loc, numel = _storage_record(pid, self.path, legacy=False)
        name = f"{self._prefix}data/{key}"
        if name not in self._names:
            raise CheckpointError(f"{self.path}: storage {describe(key)} has no entry "
                                  f"{describe(name)} in the archive (corrupted file?)")
        ref = self._storages.get(key)
        if ref is not None and (ref.dtype, ref.numel) != (stype.dtype, numel):
            raise CheckpointError(f"{self.path}: storage {name} has two records that differ "
                                  "(corrupted file)")
        self._check_size(name, stype.dtype.itemsize, numel)
        if ref is None:
            ref = self._storages[key] = StorageRef(key, stype.dtype, numel)
        return ref

    def _check_size(self, name: str, itemsize: int, numel: int) -> None:
        """The storage's declared size against the bytes its archive entry holds."""
        info = self._zip.getinfo(name)
        if info.file_size != numel * itemsize:
            raise CheckpointError(
                f"{self.path}: storage {name} holds {info.file_size} bytes, its record says "
                f"{numel} x {itemsize} bytes (corrupted file)")

    def _read_storage(self, key: str) -> np.ndarray:
        name = f"{self._prefix}data/{key}"
        info = self._zip.getinfo(name)
        root = self._storages[key]
        self._check_size(name, root.dtype.itemsize, root.numel)
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            return np.frombuffer(bytearray(self._member(name)), np.uint8)
        header = self._read_exact(info.header_offset, 30, f"local header of {name}").tobytes()
        if header[:4] != b"PK\x03\x04":
            raise CheckpointError(f"{self.path}: bad local header for {name} (corrupted file)")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        buf = self._view(start, info.file_size, f"storage {name}")
        if zlib.crc32(buf) != info.CRC:
            raise CheckpointError(f"{self.path}: storage {name} fails its CRC check "
                                  "(corrupted file)")
        return buf


class LegacyCheckpoint(Checkpoint):
    format = "legacy"

    def _open(self) -> None:
        f = self._file
        where = f"{self.path} (legacy format)"
        budget = memory_budget(self._size)
        magic = load_restricted(f, self._no_persistent, where, budget)
        if magic != LEGACY_MAGIC:
            raise CheckpointError(f"{self.path}: not a PyTorch checkpoint (neither a zip "
                                  "archive nor the legacy format)")
        protocol = load_restricted(f, self._no_persistent, where, budget)
        if protocol != LEGACY_PROTOCOL:
            raise CheckpointError(f"{self.path}: unsupported legacy protocol "
                                  f"{describe(protocol)}")
        load_restricted(f, self._no_persistent, where, budget)  # sys_info (data is always LE)
        self._roots: dict[str, StorageRef] = {}
        self.obj = load_restricted(f, self._persistent_load, where, budget)
        keys = load_restricted(f, self._no_persistent, where, budget)
        if not isinstance(keys, list):
            raise CheckpointError(f"{where}: malformed storage key list")
        self._offsets: dict[str, int] = {}
        pos = f.tell()
        for key in keys:
            key = _key(key, where)
            root = self._roots.get(key)
            if root is None:
                raise CheckpointError(f"{where}: storage {describe(key)} is not used by any "
                                      "tensor")
            count = int(self._read_exact(pos, 8, f"storage {key}").view("<i8")[0])
            if count != root.numel:
                raise CheckpointError(f"{where}: storage {describe(key)} holds {count} "
                                      f"elements, its record says {root.numel} (corrupted file)")
            self._offsets[key] = pos + 8
            pos += 8 + count * root.dtype.itemsize
            if pos > self._size:
                raise CheckpointError(f"{self.path}: file is truncated: storage {describe(key)} "
                                      f"ends at byte {pos}, the file has {self._size}")
        missing = set(self._roots) - set(self._offsets)
        if missing:
            raise CheckpointError(f"{where}: no data for storages {describe(sorted(missing))}")

    @staticmethod
    def _no_persistent(pid: Any) -> Any:
        raise CheckpointError(f"unexpected persistent record {describe(pid)}")

    def _persistent_load(self, pid: Any) -> StorageRef:
        _, stype, key, _loc, numel, view = _storage_record(pid, self.path, legacy=True)
        root = self._roots.get(key)
        if root is None:
            root = self._roots[key] = StorageRef(key, stype.dtype, numel)
        elif (root.dtype, root.numel) != (stype.dtype, numel):
            raise CheckpointError(f"{self.path}: storage {describe(key)} has two records "
                                  "that differ (corrupted file)")
        if view is None:
            return root
        try:
            _view_key, offset, size = view
            offset, size = int(offset), int(size)
        except (TypeError, ValueError):
            raise CheckpointError(f"{self.path}: malformed storage view {describe(view)}"
                                  ) from None
        item = root.dtype.itemsize
        if offset < 0 or size < 0 or offset + size > root.numel:
            raise CheckpointError(f"{self.path}: storage view {describe(view)} outside its "
                                  "storage")
        return StorageRef(key, root.dtype, size, byte_offset=offset * item, nbytes=size * item)

    def _read_storage(self, key: str) -> np.ndarray:
        root = self._roots[key]
        return self._view(self._offsets[key], root.numel * root.dtype.itemsize,
                          f"storage {key}")


class TarCheckpoint(Checkpoint):
    """The tar format of torch < 0.4: storages, then tensor records, then the object."""

    format = "legacy-tar"

    def _open(self) -> None:
        try:
            tar = tarfile.open(fileobj=self._file, mode="r:")
            members = {m.name: m for m in tar.getmembers()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise CheckpointError(f"{self.path}: unreadable tar archive: {exc}") from None
        for need in ("storages", "tensors", "pickle"):
            if need not in members:
                raise CheckpointError(f"{self.path}: tar archive without '{need}': not a "
                                      "PyTorch checkpoint")
        where = f"{self.path} (legacy tar format)"
        f = self._file
        self._roots: dict[str, StorageRef] = {}
        self._offsets: dict[str, int] = {}
        objects: dict[str, Any] = {}

        budget = memory_budget(self._size)

        def load(pid: Any = self._no_pid) -> Any:
            return load_restricted(f, pid, where, budget)

        f.seek(members["storages"].offset_data)
        for _ in range(self._count(load(), where)):
            rec = load()
            if not (isinstance(rec, tuple) and len(rec) == 3 and isinstance(rec[2], StorageType)):
                raise CheckpointError(f"{where}: malformed storage record {describe(rec)}")
            key, dtype = _key(rec[0], where), rec[2].dtype
            pos = f.tell()
            count = int(self._read_exact(pos, 8, f"storage {key}").view("<i8")[0])
            if count < 0 or pos + 8 + count * dtype.itemsize > self._size:
                raise CheckpointError(f"{self.path}: file is truncated or corrupted at "
                                      f"storage {describe(key)}")
            self._roots[key] = objects[key] = StorageRef(key, dtype, count)
            self._offsets[key] = pos + 8
            f.seek(pos + 8 + count * dtype.itemsize)
        views = load()
        for view in views if isinstance(views, list) else ():
            if not (isinstance(view, (tuple, list)) and len(view) == 4):
                raise CheckpointError(f"{where}: malformed storage view {describe(view)}")
            target, root_key = _key(view[0], where), _key(view[1], where)
            offset = _count(view[2], where, "storage view offset")
            numel = _count(view[3], where, "storage view size")
            root = self._roots.get(root_key)
            if root is None or offset + numel > root.numel:
                raise CheckpointError(f"{where}: storage view {describe(view)} outside its "
                                      "storage")
            item = root.dtype.itemsize
            objects[target] = StorageRef(root.key, root.dtype, numel,
                                         byte_offset=offset * item, nbytes=numel * item)

        f.seek(members["tensors"].offset_data)
        for _ in range(self._count(load(), where)):
            rec = load()
            if not (isinstance(rec, tuple) and len(rec) == 3):
                raise CheckpointError(f"{where}: malformed tensor record {describe(rec)}")
            key, storage = _key(rec[0], where), objects.get(_key(rec[1], where))
            if storage is None:
                raise CheckpointError(f"{where}: tensor {describe(key)} uses an unknown storage")
            pos = f.tell()
            ndim = int(self._read_exact(pos, 8, "tensor record").view("<i4")[0])
            if not 0 <= ndim <= 64:
                raise CheckpointError(f"{where}: malformed tensor record for {describe(key)}")
            body = self._read_exact(pos + 8, 8 * (2 * ndim + 1), "tensor record")
            f.seek(pos + 8 + body.size)
            vals = [int(v) for v in body.view("<i8")]
            objects[key] = _tensor(storage, vals[-1], tuple(vals[:ndim]),
                                   tuple(vals[ndim:2 * ndim]))

        def persistent_load(pid: Any) -> Any:
            if isinstance(pid, tuple):
                return pid[0]
            try:
                return objects[_key(pid, where, "object id")]
            except KeyError:
                raise CheckpointError(f"{where}: unknown object {describe(pid)}") from None

        f.seek(members["pickle"].offset_data)
        self.obj = load(persistent_load)

    @staticmethod
    def _count(n: Any, where: str) -> int:
        return _count(n, where, "record count")

    @staticmethod
    def _no_pid(pid: Any) -> Any:
        raise CheckpointError(f"unexpected persistent record {describe(pid)}")

    def _read_storage(self, key: str) -> np.ndarray:
        root = self._roots[key]
        return self._view(self._offsets[key], root.numel * root.dtype.itemsize,
                          f"storage {key}")


def open_checkpoint(path: "str | os.PathLike") -> Checkpoint:
    """Open a torch checkpoint of any supported format (detected from its first bytes)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"{path}: empty file")
    if head[:2] == b"PK":
        cls = ZipCheckpoint
    elif head[257:262] == b"ustar":
        cls = TarCheckpoint
    elif head[:1] == b"\x80":
        cls = LegacyCheckpoint
    else:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor "
                              "the legacy pickle format)")
    return cls(path)
