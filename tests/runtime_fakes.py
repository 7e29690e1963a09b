"""Test-only stand-ins for TensorRT's runtime API and for CuPy, so trtnet.runtime runs on CPU.

``fake_tensorrt()``: a ``tensorrt``-like module. Its Builder builds the network on the
trtnet emulator and "serializes" it as a small blob (magic, total length, a token for
the built network in this process); its Runtime deserializes that blob into an engine
whose execution context reads its inputs from, and writes its outputs to, the raw
addresses given by ``set_tensor_address`` (so a wrong pointer, shape or dtype in the
runtime shows up as wrong numbers) and runs the emulator. Every call on Runtime,
ICudaEngine, IExecutionContext, Builder... is recorded in an ``ApiUsage`` to compare
with the real bindings (tests/test_trt_conformance.usage_problems).

``fake_cupy()``: a ``cupy``-like module over NumPy: arrays are an ndarray subclass with
``__cuda_array_interface__`` (host addresses), ``set``/``get``; ``cuda.Stream`` has a
``ptr`` and records CUDA-graph captures; everything else falls through to NumPy.
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import types

import numpy as np

from trtnet import emulator
from trtnet.benchmarks._fake_engine import TENSOR_ALIGNMENT  # setTensorAddress's 256-byte rule
from trtnet.emulator.usage import ApiUsage

MAGIC = b"FAKETRT1"
TIMING_MAGIC = b"FAKETIMING1\n"
HEADER = 24           # magic, total length (8 bytes), token (8 bytes)
PADDED_SIZE = 1024    # every fake engine is at least this long (the runtime rejects tiny files)


# ---------------------------------------------------------------------------------------
# CuPy stand-in: the device model (stream-ordered pool, vector-clock streams, events, hazards,
# allocation and synchronisation counters) lives in the package, so `python -m trtnet.bench
# runtime` measures over the same model without importing tests/.
from trtnet.benchmarks._fake_engine import (  # noqa: E402,F401 - re-exported for the tests
    Device, DeviceArray, FakeEvent, FakeGraph, FakeStream, Hazard, fake_cupy)


# ---------------------------------------------------------------------------------------
# TensorRT runtime stand-in
class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 1  # 10.3's value (11.4: 0); build.py uses it as a bit position either way


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class BuilderFlag(enum.IntEnum):  # 10.3's and 11.4's value (tests/test_build_options.py checks)
    TF32 = 6


class IProgressMonitor:
    """Base class of progress monitors (the real one is a pybind11 trampoline)."""

    def __init__(self) -> None:
        pass


class ProfilingVerbosity(enum.IntEnum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class _Recorder:
    """Base of the fake classes: every public method call and property read is recorded."""

    _usage: ApiUsage
    _cls = ""

    def _rec(self, method: str, args: tuple, kwargs: dict) -> None:
        self._usage.call(self._cls, method, args, kwargs)

    def _get(self, attr: str) -> None:
        self._usage.attribute(self._cls, attr, "get")


def fake_tensorrt(usage: ApiUsage | None = None) -> types.ModuleType:
    """A fresh fake ``tensorrt`` module; ``module.usage`` holds what was called on it."""
    usage = usage if usage is not None else ApiUsage()
    mod = types.ModuleType("tensorrt")
    for name, value in vars(emulator.trt).items():
        if not name.startswith("_") and not isinstance(value, types.ModuleType):
            setattr(mod, name, value)
    mod.__version__ = "fake"
    mod.usage = usage
    mod.events = []          # ordered log: "deserialize", ...
    mod.built = []           # per build_serialized_network: network, profile, tf32
    networks: dict[int, dict] = {}
    tokens = itertools.count(1)

    class Logger(_Recorder):
        _cls = "Logger"

        class Severity(enum.IntEnum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        _usage = usage

        def __init__(self, *args, **kwargs) -> None:
            self._rec("__init__", args, kwargs)
            (min_severity,) = _bind(args, kwargs, ("min_severity",)) if args or kwargs else (None,)
            self.min_severity = min_severity
            self.messages: list[str] = []

        def log(self, severity, msg: str) -> None:
            self.messages.append(msg)

    for sev in Logger.Severity:
        setattr(Logger, sev.name, sev)

    class IOptimizationProfile(_Recorder):
        _cls = "IOptimizationProfile"
        _usage = usage

        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, *args, **kwargs) -> None:
            self._rec("set_shape", args, kwargs)
            name, lo, opt, hi = _bind(args, kwargs, ("input", "min", "opt", "max"))
            self.shapes[name] = tuple(tuple(int(d) for d in s) for s in (lo, opt, hi))

    class ITimingCache(_Recorder):
        """Entries are the layer names a build "timed"; serialized as sorted lines."""

        _cls = "ITimingCache"
        _usage = usage

        def __init__(self, entries: set) -> None:
            self.entries = set(entries)

        def combine(self, *args, **kwargs) -> bool:
            self._rec("combine", args, kwargs)
            other, _ignore = _bind(args, kwargs, ("input_cache", "ignore_mismatch"))
            self.entries |= other.entries
            return True

        def serialize(self, *args, **kwargs) -> bytes:
            self._rec("serialize", args, kwargs)
            return TIMING_MAGIC + "\n".join(sorted(self.entries)).encode()

    class IBuilderConfig(_Recorder):
        """Flags start as TensorRT's defaults: TF32 set (NvInfer.h kTF32 "Enabled by default")."""

        _cls = "IBuilderConfig"
        _usage = usage

        def __init__(self) -> None:
            self.profiles: list[IOptimizationProfile] = []
            self.flags_set = {BuilderFlag.TF32}
            self._verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
            self._monitor = None
            self.timing_cache: ITimingCache | None = None

        def set_flag(self, *args, **kwargs) -> None:
            self._rec("set_flag", args, kwargs)
            (flag,) = _bind(args, kwargs, ("flag",))
            self.flags_set.add(BuilderFlag(int(flag)))

        def clear_flag(self, *args, **kwargs) -> None:
            self._rec("clear_flag", args, kwargs)
            (flag,) = _bind(args, kwargs, ("flag",))
            self.flags_set.discard(BuilderFlag(int(flag)))

        def get_flag(self, *args, **kwargs) -> bool:
            self._rec("get_flag", args, kwargs)
            (flag,) = _bind(args, kwargs, ("flag",))
            return BuilderFlag(int(flag)) in self.flags_set

        @property
        def profiling_verbosity(self):
            self._get("profiling_verbosity")
            return self._verbosity

        @profiling_verbosity.setter
        def profiling_verbosity(self, value) -> None:
            self._usage.attribute(self._cls, "profiling_verbosity", "set", value)
            assert isinstance(value, ProfilingVerbosity), f"fake: profiling_verbosity = {value!r}"
            self._verbosity = value

        @property
        def progress_monitor(self):
            self._get("progress_monitor")
            return self._monitor

        @progress_monitor.setter
        def progress_monitor(self, value) -> None:
            self._usage.attribute(self._cls, "progress_monitor", "set")
            self._monitor = value

        def create_timing_cache(self, *args, **kwargs):
            self._rec("create_timing_cache", args, kwargs)
            (blob,) = _bind(args, kwargs, ("serialized_timing_cache",))
            blob = bytes(blob)
            if blob and not blob.startswith(TIMING_MAGIC):
                return None  # TensorRT returns nullptr for a blob it cannot read
            body = blob[len(TIMING_MAGIC):].decode()
            return ITimingCache({e for e in body.split("\n") if e})

        def set_timing_cache(self, *args, **kwargs) -> bool:
            self._rec("set_timing_cache", args, kwargs)
            cache, _ignore = _bind(args, kwargs, ("cache", "ignore_mismatch"))
            self.timing_cache = cache
            return True

        def get_timing_cache(self, *args, **kwargs):
            self._rec("get_timing_cache", args, kwargs)
            return self.timing_cache

        def add_optimization_profile(self, *args, **kwargs) -> int:
            self._rec("add_optimization_profile", args, kwargs)
            (profile,) = _bind(args, kwargs, ("profile",))
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_memory_pool_limit(self, *args, **kwargs) -> None:
            self._rec("set_memory_pool_limit", args, kwargs)

    class Builder(_Recorder):
        _cls = "Builder"
        _usage = usage

        def __init__(self, *args, **kwargs) -> None:
            self._rec("__init__", args, kwargs)
            (self.logger,) = _bind(args, kwargs, ("logger",))

        def create_network(self, *args, **kwargs):
            self._rec("create_network", args, kwargs)
            return emulator.Network()

        def create_optimization_profile(self, *args, **kwargs):
            self._rec("create_optimization_profile", args, kwargs)
            return IOptimizationProfile()

        def create_builder_config(self, *args, **kwargs):
            self._rec("create_builder_config", args, kwargs)
            return IBuilderConfig()

        def build_serialized_network(self, *args, **kwargs):
            self._rec("build_serialized_network", args, kwargs)
            network, config = _bind(args, kwargs, ("network", "config"))
            monitor = config._monitor
            if monitor is not None:  # the phases TensorRT reports, in miniature
                monitor.phase_start("Building", None, 2)
                for step in range(2):
                    if not monitor.step_complete("Building", step):
                        monitor.phase_finish("Building")
                        return None
                monitor.phase_finish("Building")
            if config.timing_cache is not None:  # "time" every convolution not in the cache yet
                config.timing_cache.entries |= {network.get_layer(i).name for i in range(network.num_layers)
                                                if network.get_layer(i).type == mod.LayerType.CONVOLUTION}
            token = next(tokens)
            networks[token] = {"network": network, "profile": config.profiles[0].shapes,
                               "tf32": BuilderFlag.TF32 in config.flags_set}
            mod.built.append(networks[token])
            return serialize(token)

    def serialize(token: int) -> bytes:
        body = MAGIC + PADDED_SIZE.to_bytes(8, "little") + token.to_bytes(8, "little")
        return body + bytes(PADDED_SIZE - len(body))

    class Runtime(_Recorder):
        _cls = "Runtime"
        _usage = usage

        def __init__(self, *args, **kwargs) -> None:
            self._rec("__init__", args, kwargs)
            (self.logger,) = _bind(args, kwargs, ("logger",))

        def deserialize_cuda_engine(self, *args, **kwargs):
            self._rec("deserialize_cuda_engine", args, kwargs)
            (data,) = _bind(args, kwargs, ("serialized_engine",))
            data = bytes(memoryview(data))
            mod.events.append("deserialize")
            if not data.startswith(MAGIC) or len(data) < HEADER:
                self.logger.log(Logger.ERROR, "Magic tag does not match")
                return None
            if int.from_bytes(data[8:16], "little") != len(data):
                self.logger.log(Logger.ERROR, "Size specified in header does not match archive size")
                return None
            entry = networks.get(int.from_bytes(data[16:24], "little"))
            return None if entry is None else ICudaEngine(entry["network"], entry["profile"])

    class ICudaEngine(_Recorder):
        _cls = "ICudaEngine"
        _usage = usage

        def __init__(self, network, profile: dict) -> None:
            self.network = network
            self.profile = profile
            io = [network.get_input(i) for i in range(network.num_inputs)]
            io += [network.get_output(i) for i in range(network.num_outputs)]
            self.io = {t.name: (TensorIOMode.INPUT if i < network.num_inputs else TensorIOMode.OUTPUT,
                                t.dtype, tuple(t.shape)) for i, t in enumerate(io)}

        @property
        def num_io_tensors(self) -> int:
            self._get("num_io_tensors")
            return len(self.io)

        def get_tensor_name(self, *args, **kwargs) -> str:
            self._rec("get_tensor_name", args, kwargs)
            (index,) = _bind(args, kwargs, ("index",))
            return list(self.io)[index]

        def get_tensor_mode(self, *args, **kwargs):
            self._rec("get_tensor_mode", args, kwargs)
            (name,) = _bind(args, kwargs, ("name",))
            return self.io[name][0] if name in self.io else TensorIOMode.NONE

        def get_tensor_dtype(self, *args, **kwargs):
            self._rec("get_tensor_dtype", args, kwargs)
            (name,) = _bind(args, kwargs, ("name",))
            return self.io[name][1]

        def get_tensor_shape(self, *args, **kwargs):
            self._rec("get_tensor_shape", args, kwargs)
            (name,) = _bind(args, kwargs, ("name",))
            return mod.Dims(self.io[name][2])

        def get_tensor_profile_shape(self, *args, **kwargs):
            self._rec("get_tensor_profile_shape", args, kwargs)
            name, index = _bind(args, kwargs, ("name", "profile_index"))
            assert index == 0, "fake: one profile"
            return [mod.Dims(s) for s in self.profile[name]]

        def create_execution_context(self, *args, **kwargs):
            self._rec("create_execution_context", args, kwargs)
            return IExecutionContext(self)

    class IExecutionContext(_Recorder):
        _cls = "IExecutionContext"
        _usage = usage

        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self.shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}
            self.executions = 0
            self.state = 0  # bumped by every plain (not captured) execution
            self.capture_failure: str | None = None  # None | "refuse" | "invalidate"
            # set_input_shape/set_tensor_address calls since the last plain execution: TensorRT
            # reconfigures on the next enqueue when "An input binding is changed via
            # setInputTensorAddress() or setTensorAddress() or setInputShape()" (NvInferRuntime.h
            # 10.3 l.1033, 11.1 l.1115), work a CUDA graph capture cannot hold. Whether a call
            # with the same value counts as a change is not documented: the fake says it does.
            self.rebinds = 0
            self.captured_rebinds: list[int] = []

        def set_input_shape(self, *args, **kwargs) -> bool:
            self._rec("set_input_shape", args, kwargs)
            name, shape = _bind(args, kwargs, ("name", "shape"))
            self.rebinds += 1
            shape = tuple(int(d) for d in shape)
            declared = self.engine.io[name][2]
            if name not in self.engine.profile:  # a static input: only its own shape
                assert -1 not in declared, f"fake: dynamic input {name} without a profile"
                self.shapes[name] = shape
                return shape == declared
            lo, _, hi = self.engine.profile[name]
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)) or len(shape) != len(lo):
                return False
            self.shapes[name] = shape
            return True

        def get_tensor_shape(self, *args, **kwargs):
            self._rec("get_tensor_shape", args, kwargs)
            (name,) = _bind(args, kwargs, ("name",))
            return mod.Dims(self.shapes.get(name, self._output_shape(name)))

        def _output_shape(self, name: str) -> tuple:
            """An output's shape as TensorRT infers it for trtnet's networks: a dynamic first
            dimension is the batch of the inputs set so far (-1 while none is)."""
            declared = self.engine.io[name][2]
            if not declared or declared[0] != -1:
                return declared
            batches = {s[0] for n, s in self.shapes.items() if self.engine.io[n][2][:1] == (-1,)}
            assert len(batches) <= 1, f"fake: inputs of different batch sizes {batches}"
            return (batches.pop() if batches else -1, *declared[1:])

        def set_tensor_address(self, *args, **kwargs) -> bool:
            self._rec("set_tensor_address", args, kwargs)
            name, memory = _bind(args, kwargs, ("name", "memory"))
            assert isinstance(memory, int) and memory != 0, f"fake: address of {name} is {memory!r}"
            self.rebinds += 1
            # NvInferRuntime.h (10.3 l.4003, 11.1 l.4378), setTensorAddress: "The pointer must have
            # at least 256-byte alignment." (it returns false otherwise)
            if memory % TENSOR_ALIGNMENT:
                return False
            self.addresses[name] = memory
            return True

        def execute_async_v3(self, *args, **kwargs) -> bool:
            self._rec("execute_async_v3", args, kwargs)
            (handle,) = _bind(args, kwargs, ("stream_handle",))
            stream = FakeStream.by_ptr.get(handle)
            assert stream is not None, f"fake: stream handle {handle!r} is not a stream's ptr"
            missing = [n for n in self.engine.io if n not in self.addresses]
            assert not missing, f"fake: no address for {missing}"
            inputs = {}
            for name, (io_mode, dtype, shape) in self.engine.io.items():
                if io_mode == TensorIOMode.INPUT:
                    assert name in self.shapes, f"fake: shape of input {name} not set"
                    inputs[name] = _read(self.addresses[name], self.shapes[name], emulator.trt.nptype(dtype))
            outputs = {name: (self.addresses[name], emulator.trt.nptype(dtype), shape)
                       for name, (io_mode, dtype, shape) in self.engine.io.items() if io_mode == TensorIOMode.OUTPUT}

            # A captured graph bakes in the addresses, shapes and the context's internal state
            # as they are now; a plain run may reallocate that state (shape change, workspace),
            # after which replaying the graph is undefined (here: an error).
            addresses, shapes, state = dict(self.addresses), dict(self.shapes), self.state

            def work(on_stream) -> None:  # reads the inputs at run time, like a replayed graph
                assert self.state == state, "fake: a CUDA graph replayed after a plain run changed the context"
                self.executions += 1
                on_stream.device.enqueue(on_stream, "execute_async_v3", reads=[addresses[n] for n in inputs],
                                         writes=[ptr for ptr, _, _ in outputs.values()])
                if getattr(self.engine.network, "no_work", False):  # an I/O-only engine (benchmarks)
                    return
                now = {n: _read(addresses[n], shapes[n], emulator.trt.nptype(self.engine.io[n][1]))
                       for n in inputs}
                result = emulator.run(self.engine.network, now)
                for name, (ptr, np_dtype, shape) in outputs.items():
                    _write(ptr, np.asarray(result[name], np_dtype).reshape(shape))

            if stream.capture is not None:
                if self.capture_failure == "refuse":  # TensorRT reports a failure under capture
                    return False
                self.captured_rebinds.append(self.rebinds)
                if self.capture_failure == "invalidate" or self.rebinds:  # CUDA invalidates the capture
                    stream.invalidated = True
                stream.capture.append(work)
            else:
                work(stream)
                self.state += 1
                self.rebinds = 0
            return True

    mod.Logger = Logger
    mod.Builder = Builder
    mod.Runtime = Runtime
    mod.ICudaEngine = ICudaEngine
    mod.IExecutionContext = IExecutionContext
    mod.IOptimizationProfile = IOptimizationProfile
    mod.IBuilderConfig = IBuilderConfig
    mod.TensorIOMode = TensorIOMode
    mod.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag
    mod.MemoryPoolType = MemoryPoolType
    mod.BuilderFlag = BuilderFlag
    mod.IProgressMonitor = IProgressMonitor
    mod.ProfilingVerbosity = ProfilingVerbosity
    mod.ITimingCache = ITimingCache
    mod.serialize = serialize
    return mod


def _bind(args: tuple, kwargs: dict, params: tuple[str, ...]) -> tuple:
    """Positional + keyword arguments by the real parameter names (a wrong name fails here)."""
    unknown = set(kwargs) - set(params)
    assert not unknown, f"fake: unknown keyword(s) {unknown}; parameters are {params}"
    values = list(args) + [kwargs[p] for p in params[len(args):] if p in kwargs]
    assert len(values) == len(params), f"fake: expected {params}, got {len(args)} positional + {sorted(kwargs)}"
    return tuple(values)


def _read(ptr: int, shape: tuple, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = (ctypes.c_ubyte * nbytes).from_address(ptr)
    return np.frombuffer(raw, np.uint8).view(dtype).reshape(shape).copy()


def _write(ptr: int, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    ctypes.memmove(ptr, array.ctypes.data, array.nbytes)


def api_usage_classes() -> tuple[str, ...]:
    """The fake classes whose recorded usage is checked against the real bindings."""
    return ("Logger", "Runtime", "ICudaEngine", "IExecutionContext", "Builder", "IBuilderConfig",
            "IOptimizationProfile", "ITimingCache")


# ---------------------------------------------------------------------------------------
# Fixture and a tiny engine
import sys  # noqa: E402

import pytest  # noqa: E402

from trtnet import names, plugins  # noqa: E402

from trtnet.runtime import masks

SUM, SUM_INT = "test/frame_sum", "test/frame_sum_int"


@pytest.fixture
def fake_gpu(monkeypatch):
    """``tensorrt`` and ``cupy`` replaced by the fakes (plugins.load recorded, not run)."""
    trt, cupy = fake_tensorrt(), fake_cupy()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(masks, "_cupy", cupy)  # the assembler takes the CuPy path for fake arrays
    monkeypatch.setattr(plugins, "load", lambda path=None: trt.events.append("plugins.load"))
    return types.SimpleNamespace(trt=trt, cupy=cupy)


def tiny_engine(trt, min_hw=(8, 8), opt_hw=(32, 32), max_hw=(64, 64)) -> bytes:
    """A serialized fake engine: frame uint8 [1,H,W,3] -> per-channel sums (float32 and int32)."""
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    frame = net.add_input(names.INPUT, trt.DataType.UINT8, (1, -1, -1, 3))
    as_float = net.add_cast(frame, trt.DataType.FLOAT).get_output(0)
    total = net.add_reduce(as_float, trt.ReduceOperation.SUM, 0b0110, False).get_output(0)
    total.name = SUM
    as_int = net.add_cast(total, trt.DataType.INT32).get_output(0)
    as_int.name = SUM_INT
    net.mark_output(total)
    net.mark_output(as_int)
    profile = builder.create_optimization_profile()
    profile.set_shape(names.INPUT, (1, *min_hw, 3), (1, *opt_hw, 3), (1, *max_hw, 3))
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(net, config)
