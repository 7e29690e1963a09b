"""The TensorRT backend of ``python -m trtnet.verify`` and ``python -m trtnet.infer``:
an engine from a file, or built here with :func:`trtnet.build.build_engine`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .engine import Engine, EngineError, import_cupy, import_tensorrt, require_gpu


def build_engine_bytes(weights: Any, config: Any, precision: Optional[str] = None, *,
                       nonkeyframe: bool = False) -> bytes:
    """A serialized keyframe (or non-keyframe) engine of ``config`` (trtnet.build's default frame range)."""
    from trtnet import plugins
    from trtnet.build import BuildError, build_engine
    from trtnet.precision import as_plan

    trt = import_tensorrt()
    kind = "non-keyframe " if nonkeyframe else ""
    try:
        plugins.load()
        return build_engine(trt, weights, config, plan=as_plan(precision), nonkeyframe=nonkeyframe)
    except (BuildError, OSError, ImportError, RuntimeError, TypeError) as exc:
        raise EngineError(f"building the {getattr(config, 'name', config)} {kind}engine failed: {exc}") from exc


def build_nonkeyframe_engine_bytes(weights: Any, config: Any, precision: Optional[str] = None) -> bytes:
    """A serialized non-keyframe (video) engine of ``config``."""
    return build_engine_bytes(weights, config, precision, nonkeyframe=True)


def open_engine(engine: Optional[Union[str, os.PathLike]], weights: Any = None, config: Any = None,
                precision: Optional[str] = None, **engine_kwargs: Any) -> Engine:
    """The engine file ``engine``, or (None) a keyframe engine built now from weights + config."""
    trt, cupy = import_tensorrt(), import_cupy()
    require_gpu(cupy)  # before minutes of building
    if engine is None:
        if weights is None or config is None:
            raise EngineError("no --engine given, and no weights/config to build one")
        engine = build_engine_bytes(weights, config, precision)
    elif not Path(engine).is_file():
        raise EngineError(f"engine file not found: {engine}")
    return Engine(engine, trt=trt, cupy=cupy, **engine_kwargs)


class VerifyRunner:
    """Runs each (keyframe) pass of a reference case through a TensorRT engine; host arrays out."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, ref: Any, pass_name: str) -> dict[str, np.ndarray]:
        outputs = self.engine(np.ascontiguousarray(ref.image(pass_name)))
        return {name: self.engine.cupy.asnumpy(array) for name, array in outputs.items()}


def verify_runner(ref: Any, weights: Any = None, precision: Optional[str] = None,
                  engine: Optional[Union[str, os.PathLike]] = None) -> VerifyRunner:
    """Runner for trtnet.verify: ``engine`` file, or one built from the case's weights and config."""
    if engine is not None:
        return VerifyRunner(open_engine(engine))
    from trtnet.config import get_config
    from trtnet.weights import WeightStore

    config = get_config(ref.config_name)
    store = WeightStore.load(weights or ref.weights_path)
    return VerifyRunner(open_engine(None, store, config, precision))
