"""Writing torch.save-format checkpoints without torch, for the converter's tests.

A tiny protocol-2 pickle emitter plus the three container layouts torch uses (zip,
legacy, legacy tar), so tests can make checkpoints torch would write (dtypes, byte
orders, shared storages, strided views) and hostile ones (any global at all).
"""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass(frozen=True)
class Global:
    """A ``module.name`` global (GLOBAL opcode)."""

    module: str
    name: str


@dataclass(frozen=True)
class Reduce:
    """``func(*args)`` (REDUCE opcode)."""

    func: Any
    args: tuple


@dataclass(frozen=True)
class PersId:
    """A persistent id (BINPERSID opcode)."""

    value: Any


@dataclass(frozen=True)
class Build:
    """``obj`` updated with ``state`` (BUILD opcode: ``__setstate__`` or ``__dict__``)."""

    obj: Any
    state: Any


@dataclass
class ODict:
    """``collections.OrderedDict`` with these items."""

    items: list = field(default_factory=list)


def dumps(obj: Any) -> bytes:
    """Protocol-2 pickle of ``obj`` (None, bool, int, float, str, tuple, list, dict and the
    node types above)."""
    out = io.BytesIO()
    out.write(b"\x80\x02")
    _emit(obj, out)
    out.write(b".")
    return out.getvalue()


def _emit(obj: Any, out: io.BytesIO) -> None:
    if obj is None:
        out.write(b"N")
    elif obj is True or obj is False:
        out.write(b"\x88" if obj else b"\x89")
    elif isinstance(obj, int):
        if -(2 ** 31) <= obj < 2 ** 31:
            out.write(b"J" + struct.pack("<i", obj))
        else:
            raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
            out.write(b"\x8a" + bytes([len(raw)]) + raw)
    elif isinstance(obj, float):
        out.write(b"G" + struct.pack(">d", obj))
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        out.write(b"X" + struct.pack("<I", len(raw)) + raw)
    elif isinstance(obj, tuple):
        out.write(b"(")
        for v in obj:
            _emit(v, out)
        out.write(b"t")
    elif isinstance(obj, list):
        out.write(b"](")
        for v in obj:
            _emit(v, out)
        out.write(b"e")
    elif isinstance(obj, dict):
        out.write(b"}(")
        for k, v in obj.items():
            _emit(k, out)
            _emit(v, out)
        out.write(b"u")
    elif isinstance(obj, ODict):
        _emit(Reduce(Global("collections", "OrderedDict"), ()), out)
        out.write(b"(")
        for k, v in obj.items:
            _emit(k, out)
            _emit(v, out)
        out.write(b"u")
    elif isinstance(obj, Global):
        out.write(f"c{obj.module}\n{obj.name}\n".encode())
    elif isinstance(obj, Reduce):
        _emit(obj.func, out)
        _emit(tuple(obj.args), out)
        out.write(b"R")
    elif isinstance(obj, Build):
        _emit(obj.obj, out)
        _emit(obj.state, out)
        out.write(b"b")
    elif isinstance(obj, PersId):
        _emit(obj.value, out)
        out.write(b"Q")
    else:
        raise TypeError(f"cannot emit {type(obj).__name__}")


STORAGE_OF = {
    "float32": "FloatStorage", "float16": "HalfStorage", "float64": "DoubleStorage",
    "bfloat16": "BFloat16Storage", "int64": "LongStorage", "int32": "IntStorage",
    "int16": "ShortStorage", "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
}


@dataclass
class Storage:
    """One storage: flat values; ``dtype`` names the torch dtype (bfloat16 = uint16 bits)."""

    data: np.ndarray
    dtype: str = ""

    def __post_init__(self):
        self.data = np.ascontiguousarray(self.data).reshape(-1)
        self.dtype = self.dtype or str(self.data.dtype)


@dataclass
class Tensor:
    """A tensor record: a storage key, an offset and shape/strides in elements."""

    storage: str
    shape: tuple
    strides: Optional[tuple] = None
    offset: int = 0

    def __post_init__(self):
        if self.strides is None:
            strides, step = [], 1
            for n in reversed(self.shape):
                strides.append(step)
                step *= n
            self.strides = tuple(reversed(strides))


def simple(state: "dict[str, np.ndarray]") -> tuple[dict, dict]:
    """(tensors, storages) giving each array its own storage."""
    tensors, storages = {}, {}
    for i, (name, arr) in enumerate(state.items()):
        storages[str(i)] = Storage(arr)
        tensors[name] = Tensor(str(i), tuple(arr.shape))
    return tensors, storages


def _pid(storages: dict, key: str, legacy: bool) -> PersId:
    st = storages[key]
    rec = ("storage", Global("torch", STORAGE_OF[st.dtype]), key, "cpu", int(st.data.size))
    return PersId(rec + (None,) if legacy else rec)


def state_object(tensors: dict, storages: dict, legacy: bool = False, wrap: Optional[str] = None):
    """The pickled object: an OrderedDict of rebuilt tensors (optionally under ``wrap``)."""
    items = [(name, Reduce(Global("torch._utils", "_rebuild_tensor_v2"),
                           (_pid(storages, t.storage, legacy), t.offset, tuple(t.shape),
                            tuple(t.strides), False, ODict())))
             for name, t in tensors.items()]
    obj = ODict(items)
    return {wrap: obj, "iteration": 10} if wrap else obj


def _raw(st: Storage, byteorder: str = "little") -> bytes:
    data = st.data
    if data.dtype.itemsize > 1:
        data = data.astype(data.dtype.newbyteorder("<" if byteorder == "little" else ">"))
    return data.tobytes()


def write_zip(path, tensors: dict, storages: dict, byteorder: str = "little",
              wrap: Optional[str] = None, data_pkl: Optional[bytes] = None,
              compress: bool = False) -> None:
    """A torch >= 1.6 zip checkpoint (``data_pkl`` replaces the pickle when given)."""
    pkl = data_pkl if data_pkl is not None else dumps(state_object(tensors, storages, wrap=wrap))
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", byteorder)
        for key, st in storages.items():
            z.writestr(f"archive/data/{key}", _raw(st, byteorder))
        z.writestr("archive/version", "3\n")


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def write_legacy(path, tensors: dict, storages: dict, main_pickle: Optional[bytes] = None) -> None:
    """A pre-1.6 (``_use_new_zipfile_serialization=False``) checkpoint."""
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        f.write(dumps(LEGACY_MAGIC) + dumps(1001) + dumps(sys_info))
        f.write(main_pickle if main_pickle is not None
                else dumps(state_object(tensors, storages, legacy=True)))
        keys = sorted(storages)
        f.write(dumps(list(keys)))
        for key in keys:
            f.write(struct.pack("<q", storages[key].data.size) + _raw(storages[key]))


def write_tar(path, tensors: dict, storages: dict, main_pickle: Optional[bytes] = None) -> None:
    """The torch < 0.4 tar checkpoint: storages, tensor records, then the object pickle."""
    st_file = io.BytesIO()
    st_file.write(dumps(len(storages)))
    for key, st in storages.items():
        st_file.write(dumps((key, "cpu", Global("torch", STORAGE_OF[st.dtype]))))
        st_file.write(struct.pack("<q", st.data.size) + _raw(st))
    st_file.write(dumps([]))
    t_file = io.BytesIO()
    t_file.write(dumps(len(tensors)))
    for i, (name, t) in enumerate(tensors.items()):
        ttype = STORAGE_OF[storages[t.storage].dtype].replace("Storage", "Tensor")
        t_file.write(dumps((f"t{i}", t.storage, Global("torch", ttype))))
        n = len(t.shape)
        t_file.write(struct.pack("<ii", n, 0) + struct.pack(f"<{n}q", *t.shape)
                     + struct.pack(f"<{n}q", *t.strides) + struct.pack("<q", t.offset))
    pkl = main_pickle if main_pickle is not None else dumps(
        ODict([(name, PersId(f"t{i}")) for i, name in enumerate(tensors)]))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("sys_info", dumps({"protocol_version": 1001})),
                           ("storages", st_file.getvalue()), ("tensors", t_file.getvalue()),
                           ("pickle", pkl)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def hostile_pickle(func: Global, *args: Any, before: Any = None) -> bytes:
    """A pickle that calls ``func(*args)`` when loaded (after building ``before``, if any)."""
    call = Reduce(func, args)
    return dumps(call if before is None else (before, call))
