"""TensorRT runtime: :class:`Engine` (CuPy buffers, stream, optional CUDA graph) and
:class:`Segmenter` (frames -> instances), :class:`VideoSegmenter` (keyframe + non-keyframe engines). Needs ``tensorrt`` and ``cupy`` only when used."""

from .engine import NUMPY_DTYPES, Engine, EngineError, numpy_dtype
from .segmenter import Segmenter, instances_from_outputs, to_host
from .video import VideoSegmenter

__all__ = ["NUMPY_DTYPES", "Engine", "EngineError", "Segmenter", "instances_from_outputs", "numpy_dtype",
           "to_host", "VideoSegmenter"]
