"""A fake GPU for measuring (and testing) the runtime's host side without one.

``fake_cupy()``: a ``cupy``-like module over NumPy with a device model: a stream-ordered
memory pool, streams ordered by vector clocks, events, hazard detection and counters
(pool allocations, host synchronisations). ``io_engine(...)`` + ``fake_tensorrt()``: a
``tensorrt``-like runtime whose engines only declare named inputs and outputs and whose
``execute_async_v3`` records its reads and writes on the stream without computing anything
(engine time zero). ``python -m trtnet.bench runtime`` runs Segmenter and VideoSegmenter
over them; tests/runtime_fakes.py builds its emulator-backed fake TensorRT on the same
device model, so the bench's counters and the tests' are one model.

Benchmark and test support only: nothing in the runtime imports it.
"""

from __future__ import annotations

import bisect
import ctypes
import enum
import itertools
import json
import types
import weakref

import numpy as np

from trtnet.emulator.trt_types import DataType  # the same members and values as trt.DataType

TENSOR_ALIGNMENT = 256  # setTensorAddress: "The pointer must have at least 256-byte alignment."


# ---------------------------------------------------------------------------------------
# CuPy stand-in: a device model on host memory
#
# What it models (what the runtime's correctness depends on, nothing more):
# * a stream-ordered memory pool: blocks are 512-byte aligned (CuPy's pool rounds to 512),
#   an array's block returns to the pool when the last array using it dies (CPython
#   refcounting: deterministic) and is handed out again AT THE SAME ADDRESS to the next
#   allocation of that size on the same stream (CuPy's MemoryPool keeps one arena per stream:
#   docs.cupy.dev cupy.cuda.MemoryPool "free_all_blocks(stream): ... the arena of the given stream");
# * streams whose operations are recorded with vector clocks: work on one stream is ordered;
#   work on two streams is ordered only by an event wait (Stream.wait_event), by the host
#   having synchronized the first before enqueuing the second, or by the legacy NULL stream's
#   implicit synchronisation with blocking streams (a Stream(non_blocking=True) "does not
#   synchronize with the NULL stream", docs.cupy.dev cupy.cuda.Stream);
# * every device read/write of an operation is checked against the earlier accesses of its
#   pool block: an unordered read-after-write (RAW) or write-after-read/write (WAR/WAW) is a
#   hazard, recorded in ``Device.hazards`` (as the CUDA race it would be on a GPU);
# * counters: pool allocations and host synchronisations (stream/event synchronize, get()).
class Hazard(tuple):
    """(kind, what, block address): RAW / WAR / WAW between unordered operations."""


class Device:
    """The fake GPU: pool, clocks, hazards and counters of one fake_cupy module."""

    ALIGN = 512

    def __init__(self) -> None:
        self.free: dict[tuple[int, int], list[np.ndarray]] = {}  # (stream ptr, size) -> free blocks
        self.blocks: dict[int, tuple[int, "_Access"]] = {}  # block address -> (size, access history)
        self.starts: list[int] = []                          # sorted block addresses
        self.hazards: list[Hazard] = []
        self.log: list[tuple[str, int, str]] = []            # (stream name, seq, what)
        self.allocations = 0
        self.syncs = 0
        self.host_clock: dict[int, int] = {}
        self.current: list[FakeStream] = []
        self.null: FakeStream | None = None
        self.streams: list[FakeStream] = []
        self.events_created = 0

    # -- pool --------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> np.ndarray:
        """A block of at least ``nbytes`` (a uint8 array) from the current stream's arena."""
        self.allocations += 1
        size = max(self.ALIGN, -(-nbytes // self.ALIGN) * self.ALIGN)
        stream = self.current_stream()
        free = self.free.setdefault((stream.ptr, size), [])
        if free:
            block = free.pop()
        else:
            raw = np.empty(size + self.ALIGN, np.uint8)
            offset = (-raw.ctypes.data) % self.ALIGN
            block = raw[offset:offset + size]
            addr = block.ctypes.data
            self.blocks[addr] = (size, _Access())
            bisect.insort(self.starts, addr)
        # Every array of this allocation must hang off ``owner`` in its .base chain. NumPy
        # collapses a view's base to the first owner of the data unless the types differ
        # (PyArray_SetBaseObject), so a plain ``block.view()`` would be skipped, die at once and
        # free the block while it is in use: ``owner`` is of its own type, which stops the collapse.
        owner = block.view(_Block)
        weakref.finalize(owner, free.append, block)
        return owner

    def block_of(self, ptr: int) -> tuple[int, "_Access"] | None:
        i = bisect.bisect_right(self.starts, ptr) - 1
        if i < 0:
            return None
        start = self.starts[i]
        size, access = self.blocks[start]
        return (start, access) if ptr < start + size else None

    # -- streams -----------------------------------------------------------------------
    def current_stream(self) -> "FakeStream":
        return self.current[-1] if self.current else self.null

    def enqueue(self, stream: "FakeStream", what: str, reads=(), writes=()) -> None:
        """One operation on ``stream`` reading/writing the given arrays (or raw addresses)."""
        clock = stream.clock
        _merge(clock, self.host_clock)  # work the host saw finish is ordered before anything enqueued now
        if stream.is_null:  # the legacy NULL stream waits for all blocking streams ...
            for other in self.streams:
                if other.blocking:
                    _merge(clock, other.clock)
        elif stream.blocking:  # ... and blocking streams wait for it
            _merge(clock, self.null.clock)
        clock[stream.ptr] = clock.get(stream.ptr, 0) + 1
        op = (stream.ptr, clock[stream.ptr], stream.name, what)
        self.log.append((stream.name, clock[stream.ptr], what))
        for kind, arrays in (("read", reads), ("write", writes)):
            for a in arrays:
                hit = self.block_of(a if isinstance(a, int) else _address(a))
                if hit is not None:
                    self._check(hit, kind, op, dict(clock))

    def _check(self, hit, kind: str, op: tuple, clock: dict) -> None:
        start, access = hit

        def before(prior) -> bool:
            return clock.get(prior[0], 0) >= prior[1]

        last = access.last_write
        if last is not None and not before(last):
            self.hazards.append(Hazard(("RAW" if kind == "read" else "WAW", f"{op[3]} on {op[2]} after "
                                        f"{last[3]} on {last[2]}", start)))
        if kind == "write":
            for r in access.reads:
                if not before(r):
                    self.hazards.append(Hazard(("WAR", f"{op[3]} on {op[2]} overwrites what {r[3]} on "
                                                f"{r[2]} may still read", start)))
            access.last_write, access.reads = op, []
        else:
            access.reads.append(op)

    def host_sync(self, clock: dict) -> None:
        self.syncs += 1
        _merge(self.host_clock, clock)


class _Block(np.ndarray):
    """The owner of one pool allocation (a type of its own, so NumPy keeps it in .base chains)."""


class _Access:
    def __init__(self) -> None:
        self.last_write: tuple | None = None
        self.reads: list[tuple] = []


def _merge(into: dict, other: dict) -> None:
    for k, v in other.items():
        if into.get(k, 0) < v:
            into[k] = v


def _address(a) -> int:
    return int(np.asarray(a).__array_interface__["data"][0])


class DeviceArray(np.ndarray):
    """A NumPy array posing as a CuPy array ("device" memory is host memory)."""

    device: Device | None = None  # set per fake_cupy module (a subclass each)

    @property
    def __cuda_array_interface__(self) -> dict:
        # As CuPy's: strides None for a C-contiguous array, else the byte strides (a runtime
        # that hands such a view's pointer to TensorRT reads the wrong pixels: the sums show it).
        strides = None if self.flags.c_contiguous else self.strides
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ctypes.data, False),
                "version": 3, "strides": strides}

    def set(self, arr, stream=None) -> None:  # noqa: A003 - CuPy's name
        arr = np.asarray(arr)
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError(f"fake cupy: set() of {arr.dtype}{arr.shape} into {self.dtype}{self.shape}")
        self.device.enqueue(stream or self.device.current_stream(), "set", writes=[self])
        np.copyto(self.view(np.ndarray), arr)

    def get(self, stream=None) -> np.ndarray:
        """A blocking device -> host copy on ``stream`` (default: the current stream), as CuPy's
        ndarray.get(blocking=True): the copy is enqueued, then the stream is synchronized."""
        stream = stream or self.device.current_stream()
        self.device.enqueue(stream, "get", reads=[self])
        stream.synchronize()
        return np.array(self.view(np.ndarray))


class FakeGraph:
    def __init__(self, work: list) -> None:
        self.work = work
        self.launches = 0

    def launch(self, stream=None) -> None:
        self.launches += 1
        for fn in self.work:
            fn(stream)


class FakeEvent:
    """cupy.cuda.Event: a snapshot of a stream's clock."""

    def __init__(self, device: Device, block=False, disable_timing=False, interprocess=False) -> None:
        self.device = device
        self.clock: dict[int, int] = {}
        device.events_created += 1

    def record(self, stream=None) -> None:
        self.clock = dict((stream or self.device.current_stream()).clock)

    @property
    def done(self) -> bool:  # cudaEventQuery; the fake only knows what the host has synchronized
        return all(self.device.host_clock.get(k, 0) >= v for k, v in self.clock.items())

    def synchronize(self) -> None:
        self.device.host_sync(self.clock)


class FakeStream:
    _ptrs = itertools.count(0x7000)
    by_ptr: dict[int, "FakeStream"] = {}
    device: Device  # set per fake_cupy module (a subclass each)

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False) -> None:
        self.ptr = 0 if null else next(self._ptrs)
        self.is_null = null
        self.blocking = not non_blocking
        self.name = "null" if null else f"stream{self.ptr:#x}" + (" (non-blocking)" if non_blocking else "")
        self.clock: dict[int, int] = {}
        self.capture: list | None = None
        self.invalidated = False
        self.synchronized = 0
        if not null:
            FakeStream.by_ptr[self.ptr] = self
            self.device.streams.append(self)

    def synchronize(self) -> None:
        self.synchronized += 1
        self.device.host_sync(self.clock)

    def record(self, event=None) -> FakeEvent:
        event = event or FakeEvent(self.device)
        event.record(self)
        return event

    def wait_event(self, event: FakeEvent) -> None:
        _merge(self.clock, event.clock)

    def begin_capture(self, mode=None) -> None:
        assert self.capture is None, "fake cupy: nested capture"
        self.capture = []
        self.invalidated = False

    def end_capture(self) -> FakeGraph:
        assert self.capture is not None, "fake cupy: end_capture without begin_capture"
        work, self.capture = self.capture, None
        if self.invalidated:  # as CuPy raises cudaErrorStreamCaptureInvalidated
            raise RuntimeError("cudaErrorStreamCaptureInvalidated: operation failed due to a previous error "
                               "during capture")
        return FakeGraph(work)

    def use(self) -> "FakeStream":
        self.device.current[:] = [self]
        return self

    def __enter__(self):
        self.device.current.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self.device.current.pop()


def fake_cupy(device_count: int = 1) -> types.ModuleType:
    """A fresh fake ``cupy`` with its own Device (``module.device``: pool, hazards, counters)."""
    device = Device()
    array_cls = type("DeviceArray", (DeviceArray,), {"device": device})
    stream_cls = type("FakeStream", (FakeStream,), {"device": device})
    device.null = stream_cls(null=True)
    stream_cls.null = device.null
    FakeStream.by_ptr[0] = device.null  # execute_async_v3 on the legacy default stream
    mod = types.ModuleType("cupy")
    mod.device = device
    mod.ndarray = array_cls

    def empty(shape, dtype=np.float32) -> DeviceArray:
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return device.malloc(nbytes)[:nbytes].view(dtype).reshape(shape).view(array_cls)

    def is_dev(a) -> bool:
        return isinstance(a, DeviceArray)

    def copy_of(a, what: str, dtype=None) -> DeviceArray:
        src = np.asarray(a)
        out = empty(src.shape, dtype or src.dtype)
        device.enqueue(device.current_stream(), what, reads=[a] if is_dev(a) else [], writes=[out])
        np.copyto(out.view(np.ndarray), src, casting="unsafe")
        return out

    def asarray(a, dtype=None):
        if is_dev(a) and (dtype is None or np.dtype(dtype) == a.dtype):
            return a  # CuPy returns the array itself
        return copy_of(a, "asarray", dtype)

    def ascontiguousarray(a, dtype=None):
        if is_dev(a) and a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        return copy_of(a, "ascontiguousarray", dtype)

    def zeros(shape, dtype=np.float32):
        out = empty(shape, dtype)
        device.enqueue(device.current_stream(), "zeros", writes=[out])
        out.view(np.ndarray)[...] = 0
        return out

    def stack(arrays, axis=0):
        host = np.stack([np.asarray(a) for a in arrays], axis)
        out = empty(host.shape, host.dtype)
        device.enqueue(device.current_stream(), "stack", reads=[a for a in arrays if is_dev(a)], writes=[out])
        np.copyto(out.view(np.ndarray), host)
        return out

    def copyto(dst, src, casting="same_kind", where=True):
        device.enqueue(device.current_stream(), "copyto", reads=[src] if is_dev(src) else [], writes=[dst])
        np.copyto(dst.view(np.ndarray), np.asarray(src), casting=casting, where=where)

    mod.empty, mod.zeros, mod.asarray, mod.ascontiguousarray = empty, zeros, asarray, ascontiguousarray
    mod.stack, mod.copyto = stack, copyto
    mod.asnumpy = lambda a, stream=None: a.get(stream) if is_dev(a) else np.array(a)
    mod.get_array_module = lambda *arrays: mod if any(isinstance(a, DeviceArray) for a in arrays) else np

    runtime = types.SimpleNamespace(getDeviceCount=lambda: device_count)
    mod.cuda = types.SimpleNamespace(Stream=stream_cls, Event=lambda *a, **k: FakeEvent(device, *a, **k),
                                     runtime=runtime, get_current_stream=device.current_stream)

    def passthrough(name: str):
        value = getattr(np, name)
        if callable(value) and not isinstance(value, type):
            def wrapped(*args, **kwargs):
                out = value(*args, **kwargs)
                return out.view(array_cls) if isinstance(out, np.ndarray) else out
            return wrapped
        return value

    mod.__getattr__ = passthrough  # module-level __getattr__ (PEP 562)
    return mod


# ---------------------------------------------------------------------------------------
# An I/O-only TensorRT runtime stand-in (what trtnet.runtime.Engine calls, nothing more)
IO_MAGIC = b"FAKEIOENGINE1\n"


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


_DTYPES = {np.dtype(np.float32): DataType.FLOAT, np.dtype(np.float16): DataType.HALF,
           np.dtype(np.int32): DataType.INT32, np.dtype(np.uint8): DataType.UINT8}


def io_engine(inputs: dict, outputs: dict, profile: dict, zeroed: tuple = ()) -> bytes:
    """A serialized I/O-only engine: ``inputs``/``outputs`` name -> (dtype, shape with -1 for the
    batch or a dynamic dimension), ``profile`` input name -> (min, opt, max). An output's -1
    first dimension is the inputs' batch (as trtnet's networks infer it). The outputs named in
    ``zeroed`` (small ones: a count, a motion) are written as zeros; the others are left as
    they are, so the engine costs nothing."""
    spec = {"inputs": {n: [np.dtype(d).str, list(s)] for n, (d, s) in inputs.items()},
            "outputs": {n: [np.dtype(d).str, list(s)] for n, (d, s) in outputs.items()},
            "profile": {n: [list(x) for x in p] for n, p in profile.items()}, "zeroed": list(zeroed)}
    body = IO_MAGIC + json.dumps(spec).encode()
    return body + b" " * max(0, 1024 - len(body))


def fake_tensorrt() -> types.ModuleType:
    """A ``tensorrt``-like module running :func:`io_engine` engines; ``module.contexts`` lists
    the execution contexts made (their ``rebinds``, ``executions`` and ``captures`` counters)."""
    mod = types.ModuleType("tensorrt")
    mod.__version__ = "fake-io"
    mod.DataType, mod.TensorIOMode = DataType, TensorIOMode
    mod.contexts = []

    class Logger:
        WARNING = 2

        def __init__(self, min_severity=None) -> None:
            self.min_severity = min_severity

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, serialized_engine):
            data = bytes(serialized_engine)
            if not data.startswith(IO_MAGIC):
                return None
            return ICudaEngine(json.loads(data[len(IO_MAGIC):].decode()))

    class ICudaEngine:
        def __init__(self, spec: dict) -> None:
            self.io = {}
            for kind, mode in (("inputs", TensorIOMode.INPUT), ("outputs", TensorIOMode.OUTPUT)):
                for name, (dtype, shape) in spec[kind].items():
                    self.io[name] = (mode, np.dtype(dtype), tuple(shape))
            self.profile = {n: tuple(tuple(s) for s in p) for n, p in spec["profile"].items()}
            self.zeroed = tuple(spec["zeroed"])

        @property
        def num_io_tensors(self) -> int:
            return len(self.io)

        def get_tensor_name(self, index: int) -> str:
            return list(self.io)[index]

        def get_tensor_mode(self, name: str):
            return self.io[name][0] if name in self.io else TensorIOMode.NONE

        def get_tensor_dtype(self, name: str):
            return _DTYPES[self.io[name][1]]

        def get_tensor_shape(self, name: str) -> tuple:
            return self.io[name][2]

        def get_tensor_profile_shape(self, name: str, profile_index: int):
            return self.profile[name]

        def create_execution_context(self):
            context = IExecutionContext(self)
            mod.contexts.append(context)
            return context

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self.shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}
            self.executions = 0
            self.captures = 0
            # set_input_shape/set_tensor_address calls since the last plain run: TensorRT
            # reconfigures on the next enqueue when "An input binding is changed via
            # setInputTensorAddress() or setTensorAddress() or setInputShape()" (NvInferRuntime.h
            # 10.3 l.1033, 11.1 l.1115), which a CUDA graph capture cannot hold.
            self.rebinds = 0

        def set_input_shape(self, name: str, shape) -> bool:
            self.rebinds += 1
            shape = tuple(int(d) for d in shape)
            lo, _, hi = self.engine.profile[name]
            if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            self.shapes[name] = shape
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            if name in self.shapes:
                return self.shapes[name]
            declared = self.engine.io[name][2]
            if not declared or declared[0] != -1:
                return declared
            batches = {s[0] for s in self.shapes.values()}
            return (batches.pop() if len(batches) == 1 else -1, *declared[1:])

        def set_tensor_address(self, name: str, memory: int) -> bool:
            self.rebinds += 1
            # NvInferRuntime.h (10.3 l.4003, 11.1 l.4378), setTensorAddress: "The pointer must
            # have at least 256-byte alignment."
            if memory % TENSOR_ALIGNMENT:
                return False
            self.addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            stream = FakeStream.by_ptr[stream_handle]
            reads = [self.addresses[n] for n, (m, _, _) in self.engine.io.items() if m == TensorIOMode.INPUT]
            writes = [self.addresses[n] for n, (m, _, _) in self.engine.io.items() if m == TensorIOMode.OUTPUT]

            zeroed = [(self.addresses[n], int(np.prod(self.get_tensor_shape(n))) * self.engine.io[n][1].itemsize)
                      for n in self.engine.zeroed]

            def work(on_stream) -> None:
                self.executions += 1
                on_stream.device.enqueue(on_stream, "execute_async_v3", reads=reads, writes=writes)
                for ptr, nbytes in zeroed:
                    ctypes.memset(ptr, 0, nbytes)

            if stream.capture is not None:
                self.captures += 1
                if self.rebinds:  # the capture would miss the reconfiguration: CUDA invalidates it
                    stream.invalidated = True
                stream.capture.append(work)
            else:
                work(stream)
                self.rebinds = 0
            return True

    mod.Logger, mod.Runtime = Logger, Runtime
    mod.ICudaEngine, mod.IExecutionContext = ICudaEngine, IExecutionContext
    return mod


# ---------------------------------------------------------------------------------------
# trtnet's engines as I/O-only fakes (the tensor names and roughly the sizes of the real ones)
MAX_DETECTIONS = 100
PROTO_SIDE, MASK_DIM = 138, 32
STATE_SHAPES = {"lateral": (256, 69, 69), "p4": (256, 35, 35), "p5": (256, 18, 18)}  # per camera, 550x550


def trtnet_engines(max_batch: int = 4, min_hw=(64, 64), max_hw=(1080, 1920)) -> tuple[bytes, bytes]:
    """(keyframe, non-keyframe) I/O-only engines of a YolactEdge video config: frames uint8
    [N,H,W,3] in, det/*, proto (and the keyframe state / flow/motion) out, batch 1..max_batch."""
    from trtnet import names
    from trtnet.network.yolact_edge import STATE_INPUTS

    f32, i32 = np.float32, np.int32
    detector = {names.DET_COUNT: (i32, (-1,)), names.DET_BOXES: (f32, (-1, MAX_DETECTIONS, 4)),
                names.DET_SCORES: (f32, (-1, MAX_DETECTIONS)), names.DET_CLASSES: (i32, (-1, MAX_DETECTIONS)),
                names.DET_COEFFS: (f32, (-1, MAX_DETECTIONS, MASK_DIM)),
                names.PROTO: (f32, (-1, PROTO_SIDE, PROTO_SIDE, MASK_DIM))}
    state = dict(zip(STATE_INPUTS, STATE_SHAPES.values()))  # exported name -> per-camera shape
    frame = {names.INPUT: (np.uint8, (-1, -1, -1, 3))}
    profile = {names.INPUT: ((1, *min_hw, 3), (1, *max_hw, 3), (max_batch, *max_hw, 3))}
    key_outputs = {**detector, **{n: (f32, (-1, *s)) for n, s in state.items()}}
    nonkey_inputs = {**frame, **{STATE_INPUTS[n]: (f32, (-1, *s)) for n, s in state.items()}}
    nonkey_profile = {**profile, **{STATE_INPUTS[n]: ((1, *s), (1, *s), (max_batch, *s)) for n, s in state.items()}}
    keyframe = io_engine(frame, key_outputs, profile, zeroed=(names.DET_COUNT,))
    nonkeyframe = io_engine(nonkey_inputs, {**detector, names.FLOW_MOTION: (f32, (-1,))}, nonkey_profile,
                            zeroed=(names.DET_COUNT, names.FLOW_MOTION))
    return keyframe, nonkeyframe
