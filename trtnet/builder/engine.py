"""The TensorRT build: optimization profile, builder config, the strongly typed network, the
serialized engine (what ``python -m trtnet.build`` runs; the CLI is :mod:`trtnet.build`).

Nothing imports ``tensorrt`` at import time: :func:`import_tensorrt` does, with a message that
says what to install.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from trtnet import names
from trtnet.precision import PrecisionPlan
from trtnet.network.weights import WeightConfigError, WeightStore
from trtnet.network.weights import resolve_config as weights_resolve_config


DEFAULT_MIN_FRAME = (32, 32)
DEFAULT_OPT_FRAME = (480, 640)
# 1080p, the largest frame of the cameras users run (USB/CSI cameras, RTSP streams at 1920x1080):
# the context allocates activations for the profile's maximum, and the preprocess holds the
# frame in fp32 twice (cast, then NHWC -> NCHW) before resizing it to 550x550. At 2160x3840 with
# --max-batch 8 that is 2 x 796 MB (~1.8 GiB with the rest, python -m trtnet.build --dry-run),
# too much next to everything else on an 8 GB Orin; at 1080x1920 it is 2 x 199 MB. 4K cameras
# pass --max-frame 2160x3840 (the dry run says what it costs).
DEFAULT_MAX_FRAME = (1080, 1920)


class BuildError(RuntimeError):
    """The engine could not be built; the message says why."""


def parse_frame_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. 480x640) -> (480, 640)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame size must look like HEIGHTxWIDTH (480x640), got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"frame size must be positive, got {text!r}")
    return h, w


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt  # noqa: PLC0415  (optional dependency)
    except ImportError as exc:
        raise BuildError(
            "building an engine needs TensorRT's Python package (pip install tensorrt, "
            f"10.3 or newer): {exc}. To check a model without a GPU use trtnet.emulator "
            "(trtnet.network.emulate_keyframe)."
        ) from exc
    return trt


PROFILING_VERBOSITY = ("layer_names_only", "detailed", "none")  # trt.ProfilingVerbosity members, lower case


@dataclass
class BuilderSettings:
    """Builder switches beyond the network and its profile (trtexec's --noTF32 etc.)."""

    tf32: bool = False                # NvInfer.h BuilderFlag::kTF32 is "Enabled by default": we clear it
    profiling_verbosity: Optional[str] = None  # None: TensorRT's default (layer_names_only)
    timing_cache: Optional[Path] = None
    progress: Optional[bool] = False  # tqdm bars of IProgressMonitor; None: on a terminal only
    workspace_mib: Optional[int] = None


@dataclass
class BuiltEngine:
    """A serialized engine and what its sidecar records about the build."""

    data: bytes
    io: list = field(default_factory=list)        # trtnet.builder.sidecar.tensor_entries
    profile: dict = field(default_factory=dict)   # input name -> (min, opt, max)
    builder: dict = field(default_factory=dict)   # settings as applied


def check_frame_range(min_frame: tuple[int, int], opt_frame: tuple[int, int], max_frame: tuple[int, int]) -> None:
    """min <= opt <= max in height and in width, or a BuildError."""
    if not (min_frame[0] <= opt_frame[0] <= max_frame[0] and min_frame[1] <= opt_frame[1] <= max_frame[1]):
        raise BuildError(f"frame sizes must satisfy min <= opt <= max, got {min_frame}, {opt_frame}, {max_frame}")


def profile_shapes(network: Any, min_frame: tuple[int, int], opt_frame: tuple[int, int],
                   max_frame: tuple[int, int], max_batch: int = 1) -> dict[str, tuple]:
    """(min, opt, max) of every dynamic network input: the frame over the frame range, and the
    batch dimension 1..max_batch (opt = max_batch) of every input that has one."""
    check_frame_range(min_frame, opt_frame, max_frame)
    if int(max_batch) < 1:
        raise BuildError(f"--max-batch must be >= 1, got {max_batch}")
    shapes = {}
    for i in range(network.num_inputs):
        t = network.get_input(i)
        declared = tuple(int(d) for d in tuple(t.shape))
        if -1 not in declared:
            continue
        if t.name == names.INPUT:
            frame = [(*min_frame, 3), (*opt_frame, 3), (*max_frame, 3)]
            if declared[0] >= 0 and max_batch != 1:
                raise BuildError(f"this network takes batches of {declared[0]} frame(s) only; --max-batch {max_batch} "
                                 "needs a network with a dynamic batch dimension")
            batch = [1, max_batch, max_batch] if declared[0] < 0 else [declared[0]] * 3
            shapes[t.name] = tuple((b, *f) for b, f in zip(batch, frame))
        elif declared[0] < 0 and -1 not in declared[1:]:
            shapes[t.name] = tuple((b, *declared[1:]) for b in (1, max_batch, max_batch))
        else:
            raise BuildError(f"input {t.name!r} has dynamic dims {declared} the profile cannot cover")
    return shapes


def configure_builder(trt: Any, builder_config: Any, settings: BuilderSettings) -> dict[str, Any]:
    """Apply ``settings`` to an IBuilderConfig; returns them as recorded in the sidecar."""
    # TF32: NvInfer.h (10.3 l.8317-8320, 11.1 l.9973-9976) BuilderFlag::kTF32 "Allow ... TF32 ...
    # rounding the inputs to 10-bit mantissas ... Enabled by default." fp32 layers would then not
    # be fp32: cleared for every plan unless asked for.
    if settings.tf32:
        builder_config.set_flag(trt.BuilderFlag.TF32)
    else:
        builder_config.clear_flag(trt.BuilderFlag.TF32)
    applied: dict[str, Any] = {"tf32": bool(settings.tf32)}
    if settings.profiling_verbosity is not None:
        if settings.profiling_verbosity not in PROFILING_VERBOSITY:
            raise BuildError(f"profiling verbosity must be one of {', '.join(PROFILING_VERBOSITY)}, "
                             f"got {settings.profiling_verbosity!r}")
        builder_config.profiling_verbosity = getattr(trt.ProfilingVerbosity, settings.profiling_verbosity.upper())
    applied["profiling_verbosity"] = settings.profiling_verbosity or "layer_names_only"
    if settings.workspace_mib is not None:
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace_mib) << 20)
    applied["workspace_mib"] = settings.workspace_mib
    applied["timing_cache"] = str(settings.timing_cache) if settings.timing_cache is not None else None
    return applied


def build_engine(
    trt: Any, weights: Any, config: Any, *, plan: Optional[PrecisionPlan] = None,
    min_frame: tuple[int, int] = DEFAULT_MIN_FRAME, opt_frame: tuple[int, int] = DEFAULT_OPT_FRAME,
    max_frame: tuple[int, int] = DEFAULT_MAX_FRAME, workspace_mib: Optional[int] = None,
    logger: Any = None, nonkeyframe: bool = False, max_batch: int = 1,
    settings: Optional[BuilderSettings] = None,
) -> bytes:
    """Serialized engine of ``config`` with ``weights`` (a WeightStore or file); see :func:`build`."""
    return build(trt, weights, config, plan=plan, min_frame=min_frame, opt_frame=opt_frame,
                 max_frame=max_frame, workspace_mib=workspace_mib, logger=logger, nonkeyframe=nonkeyframe,
                 max_batch=max_batch, settings=settings).data


def build(
    trt: Any, weights: Any, config: Any, *, plan: Optional[PrecisionPlan] = None,
    min_frame: tuple[int, int] = DEFAULT_MIN_FRAME, opt_frame: tuple[int, int] = DEFAULT_OPT_FRAME,
    max_frame: tuple[int, int] = DEFAULT_MAX_FRAME, workspace_mib: Optional[int] = None,
    logger: Any = None, nonkeyframe: bool = False, max_batch: int = 1,
    settings: Optional[BuilderSettings] = None,
) -> BuiltEngine:
    """Build ``config`` with ``weights``; the engine plus its I/O, profile and settings.

    ``nonkeyframe``: the video engine (partial backbone + flow warp of the keyframe state)
    instead of the keyframe one. ``max_batch``: the profile covers batches 1..max_batch of
    frames of one size (every input's first dimension). TF32 is off unless
    ``settings.tf32``.
    """
    from trtnet.builder.progress import cancel_on_interrupt, make_progress_monitor
    from trtnet.builder.sidecar import tensor_entries
    from trtnet.network.yolact_edge import build_keyframe, build_nonkeyframe
    from trtnet.builder.timing_cache import TimingCacheError, open_shared

    settings = settings or BuilderSettings()
    if workspace_mib is not None:
        settings = replace(settings, workspace_mib=workspace_mib)
    check_frame_range(min_frame, opt_frame, max_frame)
    store = WeightStore.load(weights)  # held until the engine is serialized (trt.Weights do not copy)
    logger = logger or trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # noqa: BLE001  (the bindings raise TypeError/RuntimeError)
        raise BuildError(f"TensorRT could not create a builder (is a CUDA GPU available?): {exc}") from exc
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    build_network = build_nonkeyframe if nonkeyframe else build_keyframe
    tensors = build_network(network, trt, store, config, plan=plan)

    shapes = profile_shapes(network, min_frame, opt_frame, max_frame, max_batch)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    builder_config = builder.create_builder_config()
    if builder_config.add_optimization_profile(profile) < 0:
        raise BuildError(f"invalid optimization profile {shapes}")
    applied = configure_builder(trt, builder_config, settings)
    try:
        cache = open_shared(settings.timing_cache)
        if cache is not None:
            cache.attach(builder_config)
        monitor = make_progress_monitor(trt, enabled=settings.progress) if settings.progress is not False else None
        if monitor is not None:
            builder_config.progress_monitor = monitor
        with cancel_on_interrupt(monitor):
            serialized = builder.build_serialized_network(network, builder_config)
        if monitor is not None and monitor.cancelled:
            raise BuildError("the build was cancelled (Ctrl-C)")
        if serialized is None:
            raise BuildError("TensorRT failed to build the engine; see the TensorRT log above")
        if cache is not None:
            cache.save(builder_config)
    except TimingCacheError as exc:
        raise BuildError(str(exc)) from None
    io = tensor_entries(network, trt)
    del tensors
    return BuiltEngine(bytes(memoryview(serialized)), io, shapes, applied)


def resolve_config(store: Any, name: Optional[str]) -> Any:
    """The config to build (see :func:`trtnet.network.weights.resolve_config`), as a BuildError."""
    try:
        return weights_resolve_config(store, name)
    except WeightConfigError as exc:
        raise BuildError(str(exc)) from None
