"""Frames in and out with OpenCV: an image, a folder of images, a video file, a camera.

:func:`open_source` turns what a user types (a path or a camera index) into a
:class:`Source` of BGR frames; :func:`output_kind` decides from ``-o``'s extension what
to write, and :class:`FolderWriter` / :class:`VideoWriter` write overlays: every file via a
temporary name renamed at the end (trtnet.media.files), so an error or an interrupt leaves no
half-written video. Videos keep the input's size (made even: the codecs store even sizes)
and frame rate; the codec follows the extension (:data:`VIDEO_CODECS`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from trtnet.media.files import replaced_on_success, write_atomically

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Output video container (by extension) -> FourCC OpenCV's own FFmpeg/MJPEG writers provide.
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}
VIDEO_SUFFIXES = (*VIDEO_CODECS, ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp")
DEFAULT_FPS = 30.0  # a camera or video that does not say its frame rate


class MediaError(RuntimeError):
    """A source cannot be read or an output cannot be written; the message names the file."""


@dataclass
class Frame:
    index: int        # 0-based position in the source
    image: np.ndarray  # uint8 HxWx3 BGR
    name: str         # file name (images, folders) or "frame N"


class Source:
    """Frames of one input. ``kind``: image, folder, video or camera; ``length``: the number of
    frames when known; ``fps``: frames per second of a video or camera."""

    kind = ""
    length: Optional[int] = None
    fps: float = DEFAULT_FPS
    path: Optional[Path] = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file (sources are context managers)."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_image(path: Path) -> np.ndarray:
    """A BGR image, or a MediaError naming the file."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"cannot read {path} as an image (corrupt, or a format OpenCV does not read)")
    return image


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header (PNG IHDR, JPEG start-of-frame),
    without decoding it; other formats (and headers not understood) are decoded."""
    import struct

    with open(path, "rb") as f:
        head = f.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":  # PNG spec 11.2.2: IHDR comes first
            w, h = struct.unpack(">II", head[16:24])
            return int(w), int(h)
        if head[:2] == b"\xff\xd8":  # JPEG: walk the markers to the first SOFn (ITU T.81 B.2.2)
            f.seek(2)
            while True:
                marker = f.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    break
                if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
                    continue
                length = f.read(2)
                if len(length) < 2:
                    break
                (n,) = struct.unpack(">H", length)
                if marker[1] in _JPEG_SOF:
                    data = f.read(5)
                    if len(data) == 5:
                        h, w = struct.unpack(">HH", data[1:5])
                        return int(w), int(h)
                    break
                f.seek(n - 2, 1)
    h, w = read_image(path).shape[:2]
    return int(w), int(h)


class ImageSource(Source):
    kind = "image"
    length = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self.image = read_image(path)  # read now: a bad file is reported before any work

    def describe(self) -> str:
        h, w = self.image.shape[:2]
        return f"image {self.path} ({w}x{h})"

    def __iter__(self) -> Iterator[Frame]:
        yield Frame(0, self.image, self.path.name)


class FolderSource(Source):
    """The folder's image files (by extension) sorted by name: a sequence of frames."""

    kind = "folder"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise MediaError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.length = len(self.files)

    def describe(self) -> str:
        return f"folder {self.path} ({self.length} images)"

    def check_one_size(self, output: Path) -> None:
        """Before any work: every image the size of the first (one video holds one size),
        else a MediaError naming the first image of another size."""
        first = image_size(self.files[0])
        for file in self.files[1:]:
            size = image_size(file)
            if size != first:
                raise MediaError(f"{file.name} is {size[0]}x{size[1]} but {self.files[0].name} is "
                                 f"{first[0]}x{first[1]}: the video {output} holds frames of one size; "
                                 "resize the images, or write a folder instead (-o DIR)")

    def __iter__(self) -> Iterator[Frame]:
        for i, file in enumerate(self.files):
            yield Frame(i, read_image(file), file.name)


class CaptureSource(Source):
    """A video file or a camera through cv2.VideoCapture."""

    def __init__(self, target: Any, kind: str) -> None:
        import cv2

        self.kind = kind
        self.target = target
        self.path = Path(target) if kind == "video" else None
        self.capture = cv2.VideoCapture(str(target) if kind == "video" else int(target))
        if not self.capture.isOpened():
            what = f"video {target}" if kind == "video" else f"camera {target}"
            raise MediaError(f"cannot open {what} with OpenCV (missing, corrupt, or no codec for it)")
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else DEFAULT_FPS
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.length = count if kind == "video" and count > 0 else None
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)

    def describe(self) -> str:
        what = f"video {self.target}" if self.kind == "video" else f"camera {self.target}"
        count = f"{self.length} frames, " if self.length else ""
        return f"{what} ({count}{self.width}x{self.height} @ {self.fps:g} fps)"

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self.capture.read()
            if not ok or image is None:
                break
            yield Frame(index, image, f"frame {index}")
            index += 1
        if index == 0:
            what = f"video {self.target}" if self.kind == "video" else f"camera {self.target}"
            raise MediaError(f"no frame could be decoded from {what} (empty or corrupt)")

    def close(self) -> None:
        self.capture.release()


def open_source(spec: str) -> Source:
    """The frames ``spec`` names: an image file, a folder of images, a video file, or a
    camera index (digits that are not an existing path)."""
    path = Path(spec)
    if not path.exists():
        if spec.strip().isdigit():
            return CaptureSource(int(spec), "camera")
        raise MediaError(f"input not found: {spec}")
    if path.is_dir():
        return FolderSource(path)
    if not os.access(path, os.R_OK):
        raise MediaError(f"input {path} is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise MediaError(f"input {path} is empty")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return CaptureSource(path, "video")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path)
    raise MediaError(f"input {path}: unknown extension {path.suffix or '(none)'!r}; images: "
                     f"{', '.join(IMAGE_SUFFIXES)}; videos: {', '.join(VIDEO_SUFFIXES)}")


def output_kind(path: Path) -> str:
    """What ``-o path`` asks for: 'image', 'video' or 'folder' (no extension, or a folder)."""
    suffix = path.suffix.lower()
    if path.is_dir() or not suffix:
        return "folder"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_CODECS:
        return "video"
    raise MediaError(f"output {path}: unsupported extension {path.suffix!r}; an image "
                     f"({', '.join(IMAGE_SUFFIXES)}), a video ({', '.join(VIDEO_CODECS)}) or a folder")


def encode_image(path: Path, image: np.ndarray) -> bytes:
    """``image`` encoded in the format of ``path``'s extension."""
    import cv2

    ok, data = cv2.imencode(path.suffix.lower() or ".png", image)
    if not ok:
        raise MediaError(f"OpenCV cannot encode an image as {path.suffix!r} for {path}")
    return data.tobytes()


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode by the extension and write atomically."""
    write_atomically(path, encode_image(path, image))


class FolderWriter:
    """Overlays into a folder (created if its parent exists), one file per frame: the input's
    file name for folders and images, ``frame_000000.png``... for videos and cameras."""

    def __init__(self, path: Path) -> None:
        if path.exists() and not path.is_dir():
            raise MediaError(f"output {path} exists and is not a folder")
        if not path.exists():
            if not path.parent.is_dir():
                raise MediaError(f"output folder {path}: its parent {path.parent} does not exist")
            path.mkdir()
        self.path = path

    def name_of(self, frame: Frame) -> str:
        if frame.name.startswith("frame "):
            return f"frame_{frame.index:06d}.png"
        return frame.name

    def write(self, frame: Frame, image: np.ndarray) -> None:
        write_image(self.path / self.name_of(frame), image)


class VideoWriter:
    """Overlays into a video of the input's frame size and rate; the codec follows the
    extension. Used as a context manager: the file appears only when the block succeeds."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.fourcc = VIDEO_CODECS[path.suffix.lower()]
        self._writer: Any = None
        self._size: Optional[tuple[int, int]] = None
        self._stack = contextlib.ExitStack()
        self._tmp: Optional[Path] = None
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        self._tmp = self._stack.enter_context(replaced_on_success(self.path, keep_suffix=True))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Optional[bool]:
        if self._writer is not None:
            self._writer.release()
        if exc_type is None and self.frames == 0:  # nothing came: no empty video either
            error = MediaError(f"no frame to write to {self.path}")
            self._stack.__exit__(MediaError, error, None)  # removes the temporary file
            raise error
        return self._stack.__exit__(exc_type, exc, tb)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        if self._writer is None:
            self._size = (w, h)
            even = (w - w % 2, h - h % 2)
            if even != (w, h):
                print(f"note: {frame.name} is {w}x{h}; video codecs store even sizes, so {self.path} is "
                      f"{even[0]}x{even[1]} (last column/row dropped); -o DIR writes frames at their exact size",
                      file=sys.stderr)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, even)
            if not self._writer.isOpened():
                raise MediaError(f"OpenCV cannot write {self.fourcc} video to {self.path} ({w}x{h})")
        elif (w, h) != self._size:
            raise MediaError(f"{frame.name} is {w}x{h}, the video {self.path} is {self._size[0]}x{self._size[1]}: "
                             "one video needs frames of one size (write a folder instead: -o DIR)")
        self._writer.write(np.ascontiguousarray(image[: h - h % 2, : w - w % 2]))
        self.frames += 1
