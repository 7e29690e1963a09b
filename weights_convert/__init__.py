"""Torch-free reader and converter of PyTorch checkpoints (``python -m weights_convert``).

Reads ``torch.save`` files (zip and legacy formats) without importing torch, through an
unpickler that only knows the handful of globals a tensor state dict needs, and writes
safetensors (streamed, atomic) after checking the keys and shapes against a yolact_edge
config. :func:`load_state_dict` gives the tensors as numpy arrays, from a ``.pth`` or a
``.safetensors`` file.
"""

__version__ = "1.0"

from .errors import (CheckpointError, ConfigMismatchError, ConverterError,  # noqa: E402
                     UnsafeCheckpointError, UnsupportedDtypeError)
from .checkpoint import open_checkpoint  # noqa: E402
from .converter import (ConversionResult, checkpoint_shapes, convert,  # noqa: E402
                        load_state_dict)

__all__ = [
    "CheckpointError", "ConfigMismatchError", "ConversionResult", "ConverterError",
    "UnsafeCheckpointError", "UnsupportedDtypeError", "checkpoint_shapes", "convert",
    "load_state_dict",
    "open_checkpoint", "__version__",
]
