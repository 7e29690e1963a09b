"""trtnet: YolactEdge as a pure TensorRT network definition, with a NumPy emulator.

Importing trtnet never needs CuPy, TensorRT or the compiled extension; those are
loaded lazily by the modules that use them.
"""

__version__ = "0.1.0"
