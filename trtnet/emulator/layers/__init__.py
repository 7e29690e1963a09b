"""Emulated layer classes, named and shaped like TensorRT's (``IConvolutionLayer``...).

Each layer knows three things: its attributes (the real attribute names and
defaults), how to infer output dtypes and shapes (``-1`` = dynamic, resolved at
run time) and the strongly typed rules TensorRT enforces, and how to execute
itself on NumPy arrays. Attribute reads and writes from model code are recorded
in ``network.usage`` for the conformance tests; the emulator's own code reads
attributes through ``_get`` so it records nothing.

One module per layer family: :mod:`.base` (``ILayer``, attributes), :mod:`.shape`,
:mod:`.conv`, :mod:`.elementwise`, :mod:`.quantize`, :mod:`.plugin`; this package re-exports
them, so ``from trtnet.emulator import layers as L; L.IConvolutionLayer`` keeps working.
"""

from __future__ import annotations

from .base import DT, FLOATS, NUMERIC, EmulatorTypeError, ILayer, _Attr  # noqa: F401
from .shape import (IConcatenationLayer, IConstantLayer, IGatherLayer, IIdentityLayer,  # noqa: F401
                    IResizeLayer, IShapeLayer, IShuffleLayer, ISliceLayer)
from .conv import IConvolutionLayer, IPoolingLayer, IMatrixMultiplyLayer  # noqa: F401
from .elementwise import IActivationLayer, IElementWiseLayer, IUnaryLayer, ISoftMaxLayer, IReduceLayer  # noqa: F401
from .quantize import ICastLayer, IQuantizeLayer, IDequantizeLayer  # noqa: F401
from .plugin import IPluginV2Layer, IPluginV3Layer  # noqa: F401
