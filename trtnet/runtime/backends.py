"""The TensorRT backend of ``python -m trtnet.verify`` and ``python -m trtnet.infer``:
an engine from a file, or built here with :func:`trtnet.build.build_engine`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .engine import Engine, EngineError, import_cupy, import_tensorrt, require_gpu


def build_engine_bytes(weights: Any, config: Any, precision: Optional[str] = None) -> bytes:
    """A serialized keyframe engine of ``config`` (trtnet.build's default frame range)."""
    from trtnet import plugins
    from trtnet.build import BuildError, build_engine
    from trtnet.precision import as_plan

    trt = import_tensorrt()
    try:
        plugins.load()
        return build_engine(trt, weights, config, plan=as_plan(precision))
    except (BuildError, OSError, ImportError, RuntimeError) as exc:
        raise EngineError(f"building the {getattr(config, 'name', config)} engine failed: {exc}") from exc


def build_nonkeyframe_engine_bytes(weights: Any, config: Any, precision: Optional[str] = None) -> bytes:
    """A serialized non-keyframe (video) engine of ``config``; frame range as trtnet.build's defaults.

    The builder steps mirror :func:`trtnet.build.build_engine` (which builds keyframe engines
    only); the state inputs have static shapes, so the profile covers the frame alone.
    """
    from trtnet import build, names, plugins
    from trtnet.network.yolact_edge import build_nonkeyframe
    from trtnet.precision import as_plan
    from trtnet.weights import WeightStore

    trt = import_tensorrt()
    try:
        plugins.load()
        store = WeightStore.load(weights)
        builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        tensors = build_nonkeyframe(network, trt, store, config, plan=as_plan(precision))
        profile = builder.create_optimization_profile()
        profile.set_shape(names.INPUT, (1, *build.DEFAULT_MIN_FRAME, 3), (1, *build.DEFAULT_OPT_FRAME, 3),
                          (1, *build.DEFAULT_MAX_FRAME, 3))
        builder_config = builder.create_builder_config()
        builder_config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, builder_config)
        del tensors  # the weights TensorRT points at lived until here
    except (OSError, ImportError, RuntimeError, TypeError) as exc:
        raise EngineError(f"building the {getattr(config, 'name', config)} non-keyframe engine failed: {exc}") from exc
    if serialized is None:
        raise EngineError("TensorRT failed to build the non-keyframe engine; see the TensorRT log above")
    return bytes(memoryview(serialized))


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
