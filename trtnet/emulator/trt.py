"""The ``tensorrt`` names trtnet uses, for the NumPy emulator.

Model code is written as ``build_x(network, trt, ...)``; passing this module as
``trt`` runs the same code on the emulator. Every name and enum member here
exists with the same meaning in the real bindings of TensorRT 11.4 and 10.3
(checked by tests/test_trt_conformance.py). Members that exist in only one of
the two versions are left out on purpose.
"""

from __future__ import annotations

import sys as _sys
import types as _types

from .builder import IBuilderConfig  # noqa: F401  (re-export)
from .plugins import get_plugin_registry, init_libnvinfer_plugins  # noqa: F401  (re-export)
from .trt_types import *  # noqa: F401,F403  (the types and enums; one place for them)

__version__ = "emulator"


# --- record which names model code touches (for the conformance tests) ----------------------
names_used: set[str] = set()


class _RecordingModule(_types.ModuleType):
    """``emulator.trt`` records every public name code outside the emulator reads from it."""

    def __getattribute__(self, name: str):
        value = _types.ModuleType.__getattribute__(self, name)  # missing names raise, unrecorded
        if not name.startswith("_") and name != "names_used":
            caller = _sys._getframe(1).f_globals.get("__name__", "")
            if not caller.startswith("trtnet.emulator"):
                _types.ModuleType.__getattribute__(self, "names_used").add(name)
        return value


_sys.modules[__name__].__class__ = _RecordingModule
