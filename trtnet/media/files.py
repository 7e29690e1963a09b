"""Writing output files so that nothing is ever half-written.

Engines, calibration caches and result images are written to a temporary file in the
target's directory, flushed to disk, then renamed over the target: a crash or an error
leaves either the old file or the new one, never a torn one. The target's folder must
exist (a typo in a path is an error, not a new directory tree), and the file gets the
permissions any new file gets (0666 minus the umask), not the temporary file's 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union


def write_atomically(path: Union[str, os.PathLike], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory + os.replace."""
    path = Path(path)
    with replaced_on_success(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


@contextlib.contextmanager
def replaced_on_success(path: Union[str, os.PathLike], *, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary file next to ``path`` (mode 0666 minus the umask) for a writer that wants a
    file name; renamed over ``path`` when the block ends normally, removed when it raises.
    ``keep_suffix``: the temporary name ends with ``path``'s extension (OpenCV's VideoWriter
    picks the container from it)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(2, "folder does not exist (it is not created)", str(path.parent))
    suffix = path.suffix if keep_suffix else ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=str(path.parent))
    try:
        os.fchmod(fd, new_file_mode())
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def new_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` would give a new file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask
