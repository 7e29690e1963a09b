"""The TensorRT C++ header sets the header-level tests compile against (test-only).

Where: ``$TensorRT_ROOT`` -- the one setting CMake, setup.py, .ci and these tests share --
here an ``os.pathsep``-separated list of TensorRT roots (each with the ``include/`` layout of
an install); unset, every set in ``../shared/trt-headers/`` beside the repo.

Both majors trtnet supports are expected: 10 (10.3, JetPack 6 / Jetson Orin) and 11. A
missing one skips its tests on a developer machine; in CI (``CI`` set to true, as .ci/run
and every CI service do) it fails them, so CI can never pass with the C++ untested.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_HEADERS = REPO.parent / "shared" / "trt-headers"
MAJORS = ("10", "11")
_INCLUDE_SUFFIXES = ("include", "include/x86_64-linux-gnu", "include/aarch64-linux-gnu")


def roots() -> list[Path]:
    """TensorRT roots named by $TensorRT_ROOT, else the shared header sets."""
    env = os.environ.get("TensorRT_ROOT")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return sorted(p for p in SHARED_HEADERS.glob("*") if p.is_dir())


def include_dir(root: Path) -> Path | None:
    """The directory holding NvInferRuntime.h under ``root`` (or None)."""
    for suffix in _INCLUDE_SUFFIXES:
        if (root / suffix / "NvInferRuntime.h").is_file():
            return root / suffix
    return None


def version(include: Path) -> str:
    """``major.minor`` from NvInferVersion.h (TRT_*_ENTERPRISE on 11, NV_TENSORRT_* on 10)."""
    defines = {}
    for line in (include / "NvInferVersion.h").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "#define" and parts[2].isdigit():
            defines[parts[1]] = parts[2]
    for major, minor in (("TRT_MAJOR_ENTERPRISE", "TRT_MINOR_ENTERPRISE"), ("NV_TENSORRT_MAJOR", "NV_TENSORRT_MINOR")):
        if major in defines:
            return f"{defines[major]}.{defines.get(minor, '?')}"
    return "?"


def found() -> dict[str, Path]:
    """Major -> include directory of each header set found (the first root of a major wins)."""
    sets: dict[str, Path] = {}
    for root in roots():
        include = include_dir(root)
        if include is not None:
            sets.setdefault(version(include).split(".")[0], include)
    return sets


FOUND = found()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def header_set(major: str) -> Path:
    """Include directory of TensorRT ``major``; skips the test when absent (fails in CI)."""
    include = FOUND.get(major)
    if include is None:
        where = os.environ.get("TensorRT_ROOT") or str(SHARED_HEADERS)
        message = (f"no TensorRT {major}.x headers in {where} (set TensorRT_ROOT to TensorRT roots "
                   f"separated by {os.pathsep!r})")
        if in_ci():
            pytest.fail(f"CI: {message}", pytrace=False)
        pytest.skip(message)
    return include


def params(majors: tuple[str, ...] = MAJORS):
    """``pytest.mark.parametrize`` over the expected majors, ids like ``trt10.3``."""
    ids = [f"trt{version(FOUND[m])}" if m in FOUND else f"trt{m}" for m in majors]
    return pytest.mark.parametrize("major", majors, ids=ids)
