"""trtnet._C for the tests of the CPU twins: CI always builds it (pip install .), so its
absence is a failure naming why, never a skip."""

from __future__ import annotations

from types import ModuleType

import pytest

from trtnet.plugins import extension as _ext


def compiled_extension() -> ModuleType:
    try:
        return _ext.require()
    except ImportError as exc:
        pytest.fail(str(exc), pytrace=False)
