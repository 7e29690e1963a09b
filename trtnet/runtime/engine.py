"""Run a serialized trtnet engine with TensorRT on CuPy buffers.

``Engine(path_or_bytes)`` loads the plugin library, deserializes the engine and
enumerates its I/O tensors by name. Each call checks the input shapes against the
optimization profile, stages the inputs into device buffers allocated once per shape and
reused, sets shapes and addresses on the context only when they change, orders its stream
after the stream that produced device inputs (an event), enqueues ``execute_async_v3`` on
the engine's CuPy stream and returns the outputs by name (trtnet.names). Optionally a run
whose bindings are unchanged since the previous (warm-up) run is captured as a CUDA graph
and replayed while they stay unchanged.

Works on TensorRT 10.3+ (strongly typed engines): tensor types come from the engine and
map to NumPy dtypes in :data:`NUMPY_DTYPES`. ``tensorrt`` and ``cupy`` are imported
lazily, so ``import trtnet.runtime`` works without either.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from trtnet import names

from trtnet.runtime import profiling

EngineSource = Union[str, os.PathLike, bytes, bytearray, memoryview]

# trt.DataType member name -> NumPy dtype: the one place engine tensor types are mapped.
NUMPY_DTYPES: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}

# NvInferRuntime.h setTensorAddress (10.3 l.4003, 11.1 l.4378): "The pointer must have at least
# 256-byte alignment." Device inputs at other addresses are copied (Engine._stage_input).
TENSOR_ALIGNMENT = 256
MAX_IN_FLIGHT = 4  # runs whose inputs are held without a synchronize before the oldest is waited for

MIN_ENGINE_BYTES = 256  # real engines are megabytes; anything this small is truncated or not an engine

# Leading bytes of files people hand over by mistake -> what they are.
_NOT_ENGINES = (
    (b"PK\x03\x04", "a zip archive (a PyTorch .pth checkpoint?)"),
    (b"\x80\x02", "a Python pickle (a legacy PyTorch .pth checkpoint?)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


# The type name a serialized plan stores for YOLACT++'s DCN layers (TensorRT's libnvinfer_plugin).
DCN_PLUGIN_TYPE = b"ModulatedDeformConv2d"

class EngineError(RuntimeError):
    """The engine cannot be loaded or run; the message says why."""


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or a clear error."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise EngineError("running an engine needs the TensorRT Python package (tensorrt, 10.3 or newer) "
                          f"and an NVIDIA GPU: {exc}. On CPU use trtnet.emulator.") from exc
    return trt


def import_cupy() -> Any:
    """The ``cupy`` module, or a clear error."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise EngineError("the TensorRT runtime keeps its buffers on the GPU with CuPy, which is not "
                          f"installed: {exc}. Install the wheel for your CUDA, e.g. pip install cupy-cuda12x") from exc
    return cupy


def require_gpu(cupy: Any) -> None:
    """A clear error when CuPy sees no CUDA device."""
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError, missing driver...
        raise EngineError(f"the TensorRT runtime needs a CUDA GPU, and CuPy found none: {exc}") from None
    if count < 1:
        raise EngineError("the TensorRT runtime needs a CUDA GPU, and CuPy found none")


def numpy_dtype(trt_dtype: Any, tensor: str = "?") -> np.dtype:
    """NumPy dtype of a ``trt.DataType`` (by member name, so any TensorRT version works)."""
    key = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    if key not in NUMPY_DTYPES:
        raise EngineError(f"tensor {tensor!r} has TensorRT type {key}, which the runtime cannot hold "
                          f"(supported: {', '.join(NUMPY_DTYPES)}); export it in another type")
    return NUMPY_DTYPES[key]


def device_pointer(array: Any) -> int:
    """Device address of a CUDA array (CuPy, or anything with ``__cuda_array_interface__``)."""
    return int(array.__cuda_array_interface__["data"][0])


def is_device_array(array: Any) -> bool:
    """Whether ``array`` lives on the GPU (its type offers ``__cuda_array_interface__``; the
    interface itself is not evaluated, which for a strided view may mean work or an error)."""
    return hasattr(type(array), "__cuda_array_interface__") or "__cuda_array_interface__" in getattr(
        array, "__dict__", {})


def is_c_contiguous(array: Any) -> bool:
    """Whether a device array is C-contiguous (CuPy's flags, else the CUDA array interface)."""
    flags = getattr(array, "flags", None)
    if flags is not None:
        return bool(flags.c_contiguous)
    iface = array.__cuda_array_interface__
    strides, shape = iface.get("strides"), iface["shape"]
    if strides is None:
        return True
    expected, step = [], np.dtype(iface["typestr"]).itemsize
    for dim in reversed(shape):
        expected.insert(0, step)
        step *= dim
    return all(s == e for s, e, d in zip(strides, expected, shape) if d != 1)


def read_engine_file(path: Union[str, os.PathLike]) -> bytes:
    """The bytes of an engine file, after the checks that need no TensorRT."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"engine file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise EngineError(f"engine file {path} is empty (0 bytes); rebuild it with python -m trtnet.build")
    data = path.read_bytes()
    check_engine_bytes(data, str(path))
    return data


def check_engine_bytes(data: bytes, what: str = "the serialized engine") -> None:
    """Reject what is surely not a TensorRT engine (too short, another file format)."""
    if len(data) < MIN_ENGINE_BYTES:
        raise EngineError(f"{what} is {len(data)} bytes, too small for a TensorRT engine (truncated?); "
                          "rebuild it with python -m trtnet.build")
    for magic, kind in _NOT_ENGINES:
        if data.startswith(magic):
            raise EngineError(f"{what} looks like {kind}, not a TensorRT engine; build an engine with "
                              "python -m trtnet.build")
    head = int.from_bytes(data[:8], "little")
    if 2 <= head < len(data) and data[8:10] == b'{"':
        raise EngineError(f"{what} looks like a safetensors checkpoint, not a TensorRT engine; build an "
                          "engine with python -m trtnet.build")


class EngineInterface:
    """What every executor of a trtnet network offers (TensorRT :class:`Engine`,
    trtnet.runtime.emulated.EmulatedEngine), so nothing above them branches on the backend:
    ``inputs`` / ``outputs`` (name -> NumPy dtype, in the network's order), ``stream``,
    ``source`` (for messages), ``run({name: array})`` -> outputs by name, and
    ``engine(frame, **state)`` for one uint8 BGR frame."""

    source: str
    inputs: dict
    outputs: dict
    stream: Any

    def __repr__(self) -> str:
        def fmt(tensors: dict) -> str:
            return ", ".join(f"{n} {d}" for n, d in tensors.items())
        return f"{type(self).__name__}({self.source}: inputs {fmt(self.inputs)}; outputs {fmt(self.outputs)})"

    def __call__(self, frame: Any, *, synchronize: bool = True, **inputs: Any) -> dict[str, Any]:
        """Outputs by name for one frame, a batch NxHxWx3 or a list of frames of one size
        (extra inputs, e.g. keyframe state, by keyword)."""
        return self.run({names.INPUT: frame_batch(frame, getattr(self, "cupy", None)), **inputs},
                        synchronize=synchronize)

    def run(self, inputs: Mapping[str, Any], *, synchronize: bool = True) -> dict[str, Any]:
        raise NotImplementedError


class Engine(EngineInterface):
    """A deserialized engine with one execution context, a CuPy stream and reused buffers.

    ``engine(frame)`` runs one uint8 BGR frame (HxWx3 or 1xHxWx3, NumPy or CuPy, any
    size inside the optimization profile); ``engine.run({name: array})`` sets every
    input by name (e.g. the keyframe state of a non-keyframe engine). Outputs are the
    engine's own device buffers, valid until the next call (copy to keep them); they
    are ready when the call returns unless ``synchronize=False`` (then read them on
    ``engine.stream``, or after synchronizing it). Engines that feed each other (keyframe
    state) share one ``stream``.

    Streams: the engine's work runs on ``stream`` (default a new ``Stream(non_blocking=True)``;
    TensorRT warns against the default stream, NvInferRuntime.h enqueueV3, 10.3 l.4264 /
    11.1 l.4639). Device inputs are ordered before it by an event recorded on CuPy's current
    stream at the call; if you produce frames on a stream of your own, call the engine with
    that stream current (``with my_stream: engine(frame)``), or pass ``stream=my_stream`` so
    the engine enqueues right behind your work, or synchronize your stream first.
    """

    def _load_libnvinfer_plugin(self) -> None:
        """Register libnvinfer_plugin's creators (ModulatedDeformConv2d) before deserializing.

        A plan names each plugin layer's creator by its type string, so an engine holding
        YOLACT++'s deformable convolutions contains b"ModulatedDeformConv2d"; its creator must be
        registered (initLibNvInferPlugins) before deserialize_cuda_engine, or TensorRT fails with
        a plugin-not-found error deep in its log.
        """
        from trtnet import plugins

        try:
            plugins.load_libnvinfer_plugin(self.trt, self.logger)
        except plugins.LibNvInferPluginError as exc:
            raise EngineError(f"{self.source} uses TensorRT's {DCN_PLUGIN_TYPE.decode()} plugin: {exc}") from None

    def __init__(self, engine: EngineSource, *, plugin_library: Optional[Union[str, os.PathLike]] = None,
                 load_plugins: bool = True, cuda_graph: bool = False, logger: Any = None,
                 stream: Any = None, trt: Any = None, cupy: Any = None) -> None:
        self.trt = trt or import_tensorrt()
        self.cupy = cupy or import_cupy()
        require_gpu(self.cupy)
        if load_plugins:  # the creators must be registered before TensorRT deserializes plugin layers
            from trtnet import plugins

            try:
                plugins.load(plugin_library)
            except (OSError, ImportError, RuntimeError) as exc:
                raise EngineError(f"the trtnet plugin library could not be loaded: {exc}") from exc
        if isinstance(engine, (bytes, bytearray, memoryview)):
            self.source = "the serialized engine"
            data = bytes(engine)
            check_engine_bytes(data, self.source)
        else:
            self.source = str(engine)
            data = read_engine_file(engine)
        self.logger = logger or self.trt.Logger(self.trt.Logger.WARNING)
        if load_plugins and DCN_PLUGIN_TYPE in data:  # a YOLACT++ engine: TensorRT's own plugin library too
            self._load_libnvinfer_plugin()
        try:
            self._runtime = self.trt.Runtime(self.logger)  # must outlive the engine
        except Exception as exc:  # noqa: BLE001 - the bindings raise TypeError when libnvinfer returns NULL
            raise EngineError(f"TensorRT could not create a runtime (is the CUDA driver working?): {exc}") from exc
        try:
            cuda_engine = self._runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # noqa: BLE001 - some versions raise instead of returning None
            cuda_engine, cause = None, f" ({type(exc).__name__}: {exc})"
        else:
            cause = ""
        if cuda_engine is None:
            version = getattr(self.trt, "__version__", "?")
            raise EngineError(
                f"TensorRT {version} could not deserialize {self.source} ({len(data)} bytes){cause}: the file "
                "is truncated or corrupt, or was built by another TensorRT version or for another GPU. "
                "Rebuild it here with python -m trtnet.build (the TensorRT log above says more).")
        self.engine = cuda_engine
        self.inputs: dict[str, np.dtype] = {}
        self.outputs: dict[str, np.dtype] = {}
        mode_input = self.trt.TensorIOMode.INPUT
        for i in range(cuda_engine.num_io_tensors):
            name = cuda_engine.get_tensor_name(i)
            dtype = numpy_dtype(cuda_engine.get_tensor_dtype(name), name)
            (self.inputs if cuda_engine.get_tensor_mode(name) == mode_input else self.outputs)[name] = dtype
        if not self.outputs:
            raise EngineError(f"{self.source} has no output tensors")
        self.context = cuda_engine.create_execution_context()
        if self.context is None:
            raise EngineError(f"TensorRT could not create an execution context for {self.source} "
                              "(out of device memory?)")
        self.stream = stream if stream is not None else self.cupy.cuda.Stream(non_blocking=True)
        self.cuda_graph = cuda_graph
        self._input_buffers: dict[str, Any] = {}
        self._output_buffers: dict[str, Any] = {}
        self._graphs: dict[tuple, Any] = {}
        # What the context is bound to now: shapes and addresses are set only when they change.
        self._bound_shapes: dict[str, tuple] = {}
        self._bound_addresses: dict[str, int] = {}
        self._outputs_current = False
        # Stream order: the producer's event, and arrays held until the stream has passed them.
        self._ready = self.cupy.cuda.Event(disable_timing=True)
        self._in_flight: deque = deque()
        self._spare_events: list = []
        self._retired: list = []
        self._declared = {n: tuple(int(d) for d in cuda_engine.get_tensor_shape(n)) for n in self.inputs}
        self._profiles: dict[str, tuple] = {}

    # -- description ---------------------------------------------------------------------
    def profile(self, name: str = names.INPUT) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shape of input ``name`` in optimization profile 0."""
        if name not in self.inputs:
            raise EngineError(f"{self.source} has no input {name!r} (inputs: {', '.join(self.inputs)})")
        if name not in self._profiles:
            lo, opt, hi = self.engine.get_tensor_profile_shape(name, 0)
            self._profiles[name] = (tuple(lo), tuple(opt), tuple(hi))
        return self._profiles[name]

    def _check_in_profile(self, name: str, shape: tuple[int, ...]) -> None:
        declared = self._declared[name]
        if len(shape) != len(declared):
            raise EngineError(f"input {name!r}: shape {shape} has rank {len(shape)}, the engine's is {declared}")
        if -1 not in declared:
            if shape != declared:
                raise EngineError(f"input {name!r}: shape {shape}, the engine needs {declared}")
            return
        lo, _, hi = self.profile(name)
        if all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return
        if name == names.INPUT and len(shape) == 4 and not lo[0] <= shape[0] <= hi[0]:
            raise EngineError(
                f"a batch of {shape[0]} frames is outside the optimization profile of {self.source}: "
                f"{lo[0]}..{hi[0]} frames; split the batch or rebuild the engine with python -m trtnet.build "
                "--max-batch")
        if name == names.INPUT and len(shape) == 4:
            raise EngineError(
                f"frame {shape[1]}x{shape[2]} (HxW) is outside the optimization profile of {self.source}: "
                f"min {lo[1]}x{lo[2]}, max {hi[1]}x{hi[2]}; resize the frame or rebuild the engine with "
                "python -m trtnet.build --min-frame/--max-frame")
        raise EngineError(f"input {name!r}: shape {shape} is outside the optimization profile of "
                          f"{self.source}: min {lo}, max {hi}")

    # -- buffers -------------------------------------------------------------------------
    def _stage_input(self, name: str, array: Any) -> Any:
        """A C-contiguous, 256-byte aligned device array of the input's dtype holding ``array``.

        Host data is copied on the engine's stream into a buffer kept while the shape stays the
        same. A device array is used in place when TensorRT can read it as it is (contiguous,
        aligned: NvInferRuntime.h setTensorAddress, 10.3 l.4003 / 11.1 l.4378, "The pointer must
        have at least 256-byte alignment."); otherwise (a camera crop, a ``[..., ::-1]`` flip, a
        row of a batch whose frame size is not a multiple of 256 bytes) it is copied on the
        engine's stream into that kept buffer, never into a temporary: "Modifying or releasing
        memory that has been registered for the tensors before stream synchronization ... results
        in undefined behavior" (NvInferRuntime.h enqueueV3, 10.3 l.4258, 11.1 l.4633), and CuPy's
        pool hands a freed block to the next allocation ("Freed memory buffers are held by the
        memory pool as free blocks, and they are reused for further memory allocations of the
        same sizes", docs.cupy.dev cupy.cuda.MemoryPool). A kept buffer also keeps its address,
        so the bindings (and a captured CUDA graph) stay valid."""
        want = self.inputs[name]
        if is_device_array(array):
            if np.dtype(array.dtype) != want:
                raise EngineError(f"input {name!r}: dtype {array.dtype}, the engine needs {want}")
            if is_c_contiguous(array) and device_pointer(array) % TENSOR_ALIGNMENT == 0:
                return array
            buf = self._kept_buffer(self._input_buffers, name, tuple(array.shape), want)
            with self.stream:  # after the producer's event (run), before the engine
                self.cupy.copyto(buf, array if isinstance(array, self.cupy.ndarray) else self.cupy.asarray(array))
            return buf
        host = np.asarray(array)
        if host.dtype != want:
            raise EngineError(f"input {name!r}: dtype {host.dtype}, the engine needs {want}")
        buf = self._kept_buffer(self._input_buffers, name, host.shape, want)
        buf.set(np.ascontiguousarray(host), stream=self.stream)
        return buf

    def _kept_buffer(self, buffers: dict, name: str, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        """``buffers[name]`` of ``shape``, reallocated only when the shape changes (the old one is
        held until the stream has passed the work that uses it)."""
        buf = buffers.get(name)
        if buf is None or tuple(buf.shape) != shape:
            if buf is not None:
                self._retired.append(buf)
            buf = buffers[name] = self.cupy.empty(shape, dtype=dtype)
        return buf

    def _output_buffer(self, name: str, shape: tuple[int, ...]) -> Any:
        if any(d < 0 for d in shape):
            raise EngineError(f"output {name!r}: TensorRT could not infer its shape {shape}; set every input")
        return self._kept_buffer(self._output_buffers, name, shape, self.outputs[name])

    # -- stream order ----------------------------------------------------------------------
    def _wait_for_producer(self) -> None:
        """Order the engine's stream after the work enqueued so far on CuPy's current stream
        (which made the device inputs: ``cupy.asarray(frame)``, ``cupy.stack`` of a batch, a
        crop). The engine's own stream is ``Stream(non_blocking=True)``, which "does not
        synchronize with the NULL stream" (docs.cupy.dev cupy.cuda.Stream), so without this its
        kernels could read a frame still being written. An event recorded on the producer and
        waited on by the engine's stream ("Makes the stream wait for an event. The future work on
        this stream will be done after the event.", cupy.cuda.Stream.wait_event): no host wait.
        Done before any capture (a capture must not depend on uncaptured work)."""
        current = self.cupy.cuda.get_current_stream()
        if current.ptr == self.stream.ptr:
            return
        self._ready.record(current)
        self.stream.wait_event(self._ready)

    def _hold(self, arrays: list) -> None:
        """Keep ``arrays`` alive until the engine's stream has passed what was just enqueued."""
        if not arrays:
            return
        event = self._spare_events.pop() if self._spare_events else self.cupy.cuda.Event(disable_timing=True)
        event.record(self.stream)
        self._in_flight.append((event, arrays))

    def _release(self, synchronized: bool = False) -> None:
        """Drop the held arrays whose work the stream has passed (all of them after a stream
        synchronize); more than a few runs in flight without a synchronize: wait for the oldest."""
        while self._in_flight and (synchronized or len(self._in_flight) > MAX_IN_FLIGHT
                                   or self._in_flight[0][0].done):
            event, _ = self._in_flight.popleft()
            if not synchronized and not event.done:
                event.synchronize()
            self._spare_events.append(event)

    # -- running -------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, Any], *, synchronize: bool = True) -> dict[str, Any]:
        """Set every input by name, enqueue the engine, return the output buffers by name.

        Device inputs are read on the engine's stream after the work enqueued so far on CuPy's
        current stream (an event recorded there, waited on by the engine's stream). A caller that
        produces its frames on another stream makes it current around the call
        (``with producer: engine(frame)``) or synchronizes it first; a caller that brought the
        engine's ``stream=`` and enqueues on it needs nothing. A device input may be reused or
        freed by the caller once the outputs are ready (the call returned with
        ``synchronize=True``, or ``engine.stream`` was synchronized); the engine itself keeps a
        reference until then. Shapes and addresses are set on the context only when they change."""
        check_input_names(self.source, self.inputs, inputs)
        self._release()
        shapes = {}
        for name in self.inputs:
            given = inputs[name]
            shape = tuple(int(d) for d in (given.shape if hasattr(given, "shape") else np.shape(given)))
            self._check_in_profile(name, shape)  # before any copy or allocation
            shapes[name] = shape
        in_place = [inputs[n] for n in self.inputs if is_device_array(inputs[n])]
        if in_place:
            self._wait_for_producer()
        ctx = self.context
        rebound = False
        for name in self.inputs:
            with profiling.stage(profiling.UPLOAD):  # host -> device copy (none for usable device arrays)
                staged = self._stage_input(name, inputs[name])
            shape = shapes[name]
            if self._bound_shapes.get(name) != shape:
                self._bound_shapes.pop(name, None)
                if not ctx.set_input_shape(name, shape):
                    raise EngineError(f"TensorRT rejected shape {shape} for input {name!r} of {self.source}")
                self._bound_shapes[name] = shape
                self._outputs_current = False
                rebound = True
            rebound |= self._set_address(name, device_pointer(staged))
        if not self._outputs_current:  # output shapes follow the input shapes only
            for name in self.outputs:
                self._output_buffer(name, tuple(int(d) for d in ctx.get_tensor_shape(name)))
            self._outputs_current = True
        for name, buf in self._output_buffers.items():
            rebound |= self._set_address(name, device_pointer(buf))
        self._enqueue(rebound)
        held, self._retired = self._retired, []
        self._hold(held + in_place)  # the caller's device inputs and buffers replaced this run
        if synchronize:
            self.stream.synchronize()
            self._release(synchronized=True)
        return dict(self._output_buffers)

    def _set_address(self, name: str, ptr: int) -> bool:
        """Point ``name`` at ``ptr`` unless it already is; True when the binding changed."""
        if self._bound_addresses.get(name) == ptr:
            return False
        self._bound_addresses.pop(name, None)
        if not self.context.set_tensor_address(name, ptr):
            raise EngineError(f"TensorRT rejected the device address {ptr:#x} of {name!r} of {self.source} "
                              f"(it must be {TENSOR_ALIGNMENT}-byte aligned)")
        self._bound_addresses[name] = ptr
        return True

    def _enqueue(self, rebound: bool) -> None:
        """execute_async_v3, or with ``cuda_graph`` a CUDA graph of it. A run that changed a
        shape or an address is plain: TensorRT reconfigures on the next enqueue after "An input
        binding is changed via setInputTensorAddress() or setTensorAddress() or setInputShape()"
        (NvInferRuntime.h 10.3 l.1033, 11.1 l.1115), work a capture must not hold; that plain run
        is the warm-up, and it drops any graph (it may have reallocated what the graph points
        at). The next run whose bindings are unchanged since that warm-up is captured, and later
        unchanged runs replay it (shapes A, A, B, A, A: A captured, B plain, A plain, A captured)."""
        if rebound:
            self._graphs.clear()
            self._execute()
            return
        key = (tuple(self._bound_shapes.items()), tuple(self._bound_addresses.items()))
        graph = self._graphs.get(key)
        if graph is not None:
            graph.launch(self.stream)
        elif self.cuda_graph:
            self._capture(key)
        else:
            self._execute()

    def _capture(self, key: tuple) -> None:
        """Capture the enqueue as a CUDA graph and launch it; when TensorRT or CUDA refuses the
        capture, end it, warn, turn graphs off for this engine and run plainly (trtexec's
        pattern: warm-up enqueue, capture, on failure end the capture and carry on)."""
        self._graphs.clear()
        self.stream.begin_capture()
        problem = None
        try:
            if not self.context.execute_async_v3(self.stream.ptr):
                problem = "TensorRT refused to enqueue under capture"
        except Exception as exc:  # noqa: BLE001 - the capture must be ended whatever happened
            problem = f"enqueue under capture raised {exc}"
        try:
            graph = self.stream.end_capture()  # also ends a capture CUDA invalidated (it raises then)
        except Exception as exc:  # noqa: BLE001 - cudaErrorStreamCaptureInvalidated and friends
            problem, graph = problem or f"ending the capture failed: {exc}", None
        if problem is None and graph is not None:
            self._graphs[key] = graph  # one graph: shapes and addresses change together
            graph.launch(self.stream)
            return
        self.cuda_graph = False
        warnings.warn(f"CUDA graph capture of {self.source} failed ({problem}); running without CUDA "
                      "graphs from now on", RuntimeWarning, stacklevel=5)
        self._execute()

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.ptr):
            raise EngineError(f"TensorRT failed to enqueue {self.source} (see the TensorRT log)")


def check_input_names(source: str, declared: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Every declared input given, nothing else (the same rule for every executor)."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise EngineError(f"{source} has no input(s) {unknown} (inputs: {', '.join(declared)})")
    missing = [n for n in declared if n not in given]
    if missing:
        raise EngineError(f"input(s) {missing} of {source} not given")


def frame_batch(frame: Any, cupy: Any = None) -> Any:
    """uint8 BGR frames as [N, H, W, 3]: a frame HxWx3, a batch NxHxWx3, or a list of HxWx3
    frames of one size (NumPy, or CuPy stacked with ``cupy``); a clear error otherwise."""
    if isinstance(frame, (list, tuple)):
        shapes = sorted({tuple(f.shape) for f in frame})
        if not frame or len(shapes) != 1 or len(shapes[0]) != 3:
            raise EngineError(f"a batch needs one or more HxWx3 frames of one size, got shapes {shapes}; "
                              "resize or pad them to one size first")
        on_device = is_device_array(frame[0])
        if on_device and cupy is None:
            raise EngineError("a list of device frames needs CuPy to stack them")
        frame = (cupy.stack if on_device else np.stack)(list(frame))
    given = tuple(frame.shape)
    shape = (1, *given) if len(given) == 3 else given
    if np.dtype(frame.dtype) != np.uint8 or len(shape) != 4 or shape[0] < 1 or shape[3] != 3:
        raise EngineError(f"expected uint8 BGR frames HxWx3, NxHxWx3 or a list of HxWx3, got {frame.dtype} {given}")
    return frame.reshape(shape) if shape != given else frame
