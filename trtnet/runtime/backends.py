"""Engines for the commands: :func:`open_engines` gives the keyframe (and non-keyframe)
engine of either backend behind one interface (the emulator's EmulatedEngine, or TensorRT:
an engine from a file, or built here with :func:`trtnet.build.build_engine`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from .engine import Engine, EngineError, import_cupy, import_tensorrt, require_gpu


def build_engine_bytes(weights: Any, config: Any, precision: Optional[str] = None, *,
                       nonkeyframe: bool = False, calibration_cache: Any = None, max_batch: int = 1) -> bytes:
    """A serialized keyframe (or non-keyframe) engine of ``config`` (trtnet.build's default frame
    range; batches 1..``max_batch``)."""
    from trtnet import plugins
    from trtnet.builder.engine import BuildError, build_engine
    from trtnet.precision import as_plan

    trt = import_tensorrt()
    kind = "non-keyframe " if nonkeyframe else ""
    try:
        plugins.load()
        plan = as_plan(precision)
        if calibration_cache is not None:
            from trtnet.precision.calibration import load_plan

            plan = load_plan(calibration_cache, weights, config, plan, nonkeyframe=nonkeyframe)
        return build_engine(trt, weights, config, plan=plan, nonkeyframe=nonkeyframe, max_batch=max_batch)
    except (BuildError, OSError, ImportError, RuntimeError, TypeError, ValueError) as exc:
        raise EngineError(f"building the {getattr(config, 'name', config)} {kind}engine failed: {exc}") from exc


def build_nonkeyframe_engine_bytes(weights: Any, config: Any, precision: Optional[str] = None) -> bytes:
    """A serialized non-keyframe (video) engine of ``config``."""
    return build_engine_bytes(weights, config, precision, nonkeyframe=True)


def open_engine(engine: Optional[Union[str, os.PathLike]], weights: Any = None, config: Any = None,
                precision: Optional[str] = None, *, nonkeyframe: bool = False, calibration_cache: Any = None,
                **engine_kwargs: Any) -> Engine:
    """The engine file ``engine``, or (None) an engine built now from weights + config
    (the keyframe one, or with ``nonkeyframe`` the video one)."""
    trt, cupy = import_tensorrt(), import_cupy()
    require_gpu(cupy)  # before minutes of building
    if engine is None:
        if weights is None or config is None:
            raise EngineError("no --engine given, and no weights/config to build one")
        engine = build_engine_bytes(weights, config, precision, nonkeyframe=nonkeyframe,
                                    calibration_cache=calibration_cache)
    elif not Path(engine).is_file():
        raise EngineError(f"engine file not found: {engine}")
    return Engine(engine, trt=trt, cupy=cupy, **engine_kwargs)


def open_engines(backend: str, weights: Any, config: Any, *, video: Optional[bool] = None,
                 engine: Optional[Union[str, os.PathLike]] = None,
                 nonkey_engine: Optional[Union[str, os.PathLike]] = None,
                 precision: Any = None, calibration_cache: Any = None) -> tuple[Any, Optional[Any]]:
    """(keyframe engine, non-keyframe engine or None) on ``backend`` ('emulator' or 'tensorrt'),
    with the same interface either way, sharing one stream. ``video`` (default: the config's)
    asks for the non-keyframe engine too. TensorRT engines come from ``engine``/``nonkey_engine``
    files or are built now from the weights; the emulator builds its networks from the weights."""
    from .emulated import EmulatedEngine

    video = config.is_video if video is None else video
    if backend == "emulator":
        if engine is not None or nonkey_engine is not None:
            raise EngineError("an engine file runs on the TensorRT backend, not the emulator")
        if weights is None:
            raise EngineError("the emulator backend needs weights")

        def plan_for(nonkeyframe: bool) -> Any:
            if calibration_cache is None:
                return precision
            from trtnet.precision.calibration import load_plan

            return load_plan(calibration_cache, weights, config, precision, nonkeyframe=nonkeyframe)

        key = EmulatedEngine(weights, config, plan=plan_for(False))
        nonkey = (EmulatedEngine(weights, config, nonkeyframe=True, plan=plan_for(True), stream=key.stream)
                  if video else None)
        return key, nonkey
    if backend != "tensorrt":
        raise EngineError(f"unknown backend {backend!r} (emulator, tensorrt)")
    key = open_engine(engine, weights, config, precision, calibration_cache=calibration_cache)
    if not video:
        return key, None
    nonkey = open_engine(nonkey_engine, weights, config, precision, nonkeyframe=True,
                         calibration_cache=calibration_cache, stream=key.stream)
    return key, nonkey
