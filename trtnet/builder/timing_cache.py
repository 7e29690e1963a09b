"""A TensorRT timing cache file shared by concurrent builds (``trtnet.build --timing-cache``).

TensorRT times candidate kernels for every layer; the timing cache keeps those results so
a rebuild (another precision plan, another frame range) skips most of the timing. Like
trtexec's ``--timingCacheFile``, the file is read when a build starts and, when it ends,
re-read, merged with what this build learned (``ITimingCache.combine``) and replaced
atomically, both under an exclusive lock on ``FILE.lock``: two builds sharing one file
never lose each other's entries, and a crash never leaves a torn cache. The lock is not
held while the engine builds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any, Iterator, Optional

from trtnet.media.files import write_atomically


class TimingCacheError(RuntimeError):
    """The timing cache file cannot be read, used or written; the message says why."""


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path``'s lock file (``path`` + ``.lock``) while inside."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise TimingCacheError(f"cannot create the timing cache lock {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_bytes(path: Path) -> bytes:
    """The cache file's bytes (empty when it does not exist yet: TensorRT then starts a new cache)."""
    if path.is_dir():
        raise TimingCacheError(f"timing cache {path} is a directory, not a file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise TimingCacheError(f"cannot read the timing cache {path}: {exc.strerror}") from None


class SharedTimingCache:
    """The timing cache file ``path`` attached to TensorRT builder configs.

    ``attach(config)`` before ``build_serialized_network``, ``save(config)`` after it.
    """

    def __init__(self, path: os.PathLike | str) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise TimingCacheError(f"the directory of the timing cache {self.path} does not exist")
        self.loaded = b""
        self.cache: Any = None

    def attach(self, config: Any) -> None:
        """Create the cache from the file's current contents and set it on ``config``."""
        with locked(self.path):
            self.loaded = read_bytes(self.path)
        self.cache = config.create_timing_cache(self.loaded)
        if self.cache is None:
            raise TimingCacheError(f"TensorRT could not read the timing cache {self.path} (corrupt, or from "
                                   "another TensorRT version?); delete it to start a new one")
        # NvInfer.h setTimingCache: a cache from a device with other CUDA properties is refused
        # (ignoreMismatch=false), which is what a shared file on a mixed-GPU farm needs.
        if not config.set_timing_cache(self.cache, False):
            raise TimingCacheError(f"TensorRT refused the timing cache {self.path} (made on another GPU?); "
                                   "use one cache file per GPU model, or delete it")

    def save(self, config: Any) -> int:
        """Merge what this build timed into the file (re-read under the lock); returns its size."""
        built = config.get_timing_cache()
        if built is None:
            raise TimingCacheError("TensorRT returned no timing cache after the build")
        with locked(self.path):
            current = read_bytes(self.path)
            if current and current != self.loaded:  # another build wrote meanwhile: keep its entries
                other = config.create_timing_cache(current)
                if other is None or not built.combine(other, False):
                    raise TimingCacheError(f"could not merge the timing cache {self.path} written by another "
                                           "build meanwhile (another TensorRT version or GPU?)")
            data = bytes(memoryview(built.serialize()))
            write_atomically(self.path, data)
        return len(data)


def open_shared(path: Optional[os.PathLike | str]) -> Optional[SharedTimingCache]:
    """A SharedTimingCache for ``path``, or None when no file is given."""
    return None if path is None else SharedTimingCache(path)
