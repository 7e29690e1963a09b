"""trtnet: the YOLACT family (YolactEdge, YOLACT, YOLACT++) as a pure TensorRT network
definition, with a NumPy emulator.

The top level holds what users type (one module per ``python -m trtnet.X`` command, and
``trtnet X`` through :mod:`trtnet.__main__`), ``config`` and ``names``; the machinery lives in
rooms by kind (network, precision, builder, emulator, plugins, runtime, triton, media,
verification, cli), each saying in its ``__init__`` what it may import. Importing trtnet never
needs CuPy, TensorRT or the compiled extension; those are loaded lazily by the modules that use them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# Modules that moved into rooms (issue 14), importable under the old name for one release.
MOVED_MODULES = {
    "trtnet._ext": "trtnet.plugins.extension",
    "trtnet.build_progress": "trtnet.builder.progress",
    "trtnet.coco": "trtnet.media.coco",
    "trtnet.compare": "trtnet.verification.compare",
    "trtnet.conditioned": "trtnet.precision.conditioned",
    "trtnet.engine_sidecar": "trtnet.builder.sidecar",
    "trtnet.files": "trtnet.media.files",
    "trtnet.int8_accuracy": "trtnet.precision.int8_accuracy",
    "trtnet.int8_audit": "trtnet.precision.int8_audit",
    "trtnet.masks": "trtnet.runtime.masks",
    "trtnet.overlay": "trtnet.media.overlay",
    "trtnet.plan_summary": "trtnet.builder.plan_summary",
    "trtnet.profiling": "trtnet.runtime.profiling",
    "trtnet.reference_data": "trtnet.verification.reference_data",
    "trtnet.timing_cache": "trtnet.builder.timing_cache",
    "trtnet.weight_spec": "trtnet.network.weight_spec",
    "trtnet.weights": "trtnet.network.weights",
    "trtnet.network.backbone": "trtnet.network.backbones",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import trtnet.masks`` gives trtnet.runtime.masks itself, with a DeprecationWarning."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib's signature
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec):  # noqa: ANN001
        return None  # a placeholder, replaced in sys.modules by exec_module

    def exec_module(self, module) -> None:  # noqa: ANN001
        new = MOVED_MODULES[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}; the old name goes away in the next release",
                      DeprecationWarning, stacklevel=2)
        sys.modules[module.__name__] = importlib.import_module(new)


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
