"""Runtime: :class:`Engine` (TensorRT on CuPy buffers, stream, optional CUDA graph) or
:class:`EmulatedEngine` (the same interface on trtnet's NumPy emulator), :class:`Segmenter`
(frames -> instances), :class:`VideoSegmenter` (keyframe + non-keyframe engines), the mask
assembler (:mod:`.masks`, CuPy or NumPy) and the NVTX ranges (:mod:`.profiling`). Needs
``tensorrt`` and ``cupy`` only when a TensorRT engine is used.

May import builder (to build an engine for a checkpoint), precision, network, emulator,
plugins and media; never verification, triton or a command."""

from .backends import open_engines
from .emulated import EmulatedEngine, HostStream
from .engine import NUMPY_DTYPES, Engine, EngineError, EngineInterface, numpy_dtype
from .segmenter import Segmenter, instances_from_outputs, is_engine, to_host
from .video import VideoSegmenter

__all__ = ["NUMPY_DTYPES", "EmulatedEngine", "Engine", "EngineError", "EngineInterface", "HostStream", "Segmenter",
           "VideoSegmenter", "instances_from_outputs", "is_engine", "numpy_dtype", "open_engines", "to_host"]
