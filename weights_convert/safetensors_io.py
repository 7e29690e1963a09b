"""Writing the safetensors format, one tensor at a time, atomically.

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
data_offsets; ``__metadata__`` -> str:str), then the raw little-endian data. Writing it
ourselves lets tensors stream from the checkpoint to the file without holding them all.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from .errors import ConverterError


def build_header(entries: Sequence[tuple[str, str, tuple[int, ...], int]],
                 metadata: Mapping[str, str]) -> bytes:
    """Header bytes for ``(name, dtype tag, shape, nbytes)`` entries written in that order."""
    header: dict = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    offset = 0
    for name, tag, shape, nbytes in entries:
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # keep the data 8-byte aligned
    return struct.pack("<Q", len(raw)) + raw


def write_atomic(path: str, header: "bytes | Callable[[], bytes]", chunks: Iterable[np.ndarray],
                 expected_size: int, durable: bool = True, header_size: Optional[int] = None) -> None:
    """Write ``header`` then every array of ``chunks`` to a temp file beside ``path``, then
    rename it over ``path``. On any error the temp file is removed and ``path`` untouched.
    ``durable`` fsyncs the data before the rename (a crash then never leaves a torn file).

    ``header`` may be a callable returning ``header_size`` bytes: it is called after the data
    is written (the data goes first at offset ``header_size``), so a header value that takes
    time to compute, such as the source's sha256, is computed while the data streams."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    except OSError as exc:
        raise ConverterError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            late = callable(header)
            if late:
                if header_size is None:
                    raise TypeError("header_size is needed when header is a callable")
                f.seek(header_size)
            else:
                _write(f, header, path)
                header_size = len(header)
            for arr in chunks:
                _write(f, np.ascontiguousarray(arr).reshape(-1).view(np.uint8), path)
            written = f.tell()
            if written != header_size + expected_size:
                raise RuntimeError(f"internal error: wrote {written} bytes, header promised "
                                   f"{header_size + expected_size}")
            if late:
                raw = header()
                if len(raw) != header_size:
                    raise RuntimeError(f"internal error: header of {len(raw)} bytes, {header_size} reserved")
                f.seek(0)
                _write(f, raw, path)
            try:
                f.flush()
                if durable:
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o644 & ~_umask())
            except OSError as exc:
                raise ConverterError(f"cannot write {path}: {exc.strerror or exc}") from None
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise ConverterError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write(f, data, path: str) -> None:
    try:
        f.write(data)
    except OSError as exc:
        raise ConverterError(f"cannot write {path}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
