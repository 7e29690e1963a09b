"""Shared pytest fixtures.

``reference_dir``: upstream PyTorch reference outputs (../shared/reference or
$TRTNET_REFERENCE_DIR). CI always has them, so a missing directory is an error,
not a skip.

``trt`` / ``trt11`` / ``trt10``: the REAL TensorRT Python bindings (11.4 and 10.3)
loaded over stub libraries, for conformance tests (see tests/trt_harness.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _reference_dir() -> Path:
    env = os.environ.get("TRTNET_REFERENCE_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Directory of the upstream reference data; fails loudly when absent."""
    path = _reference_dir()
    if not (path / "README.md").is_file():
        pytest.fail(
            f"reference data not found at {path} (set TRTNET_REFERENCE_DIR to the "
            "directory holding vid_resnet50/ and mobilenetv2/)",
            pytrace=False,
        )
    return path


TRT_VERSIONS = ("11.4", "10.3")


@pytest.fixture(scope="session")
def trt_modules() -> dict:
    """Both real binding modules, loaded once per session (downloaded on first use)."""
    import trt_harness

    try:
        return {v: trt_harness.load_bindings(v) for v in TRT_VERSIONS}
    except trt_harness.HarnessError as exc:
        pytest.fail(f"TensorRT bindings harness: {exc}", pytrace=False)


def _aliased(module):
    saved = sys.modules.get("tensorrt")
    sys.modules["tensorrt"] = module
    try:
        yield module
    finally:
        if saved is None:
            sys.modules.pop("tensorrt", None)
        else:
            sys.modules["tensorrt"] = saved


@pytest.fixture(params=TRT_VERSIONS, ids=lambda v: f"trt{v}")
def trt(request, trt_modules):
    """The real ``tensorrt`` module of each supported version, aliased as sys.modules['tensorrt']."""
    yield from _aliased(trt_modules[request.param])


@pytest.fixture
def trt11(trt_modules):
    """Real TensorRT 11.4 bindings (aliased as ``tensorrt`` during the test)."""
    yield from _aliased(trt_modules["11.4"])


@pytest.fixture
def trt10(trt_modules):
    """Real TensorRT 10.3 bindings (aliased as ``tensorrt`` during the test)."""
    yield from _aliased(trt_modules["10.3"])
