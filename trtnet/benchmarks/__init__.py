"""Benchmarks run by ``python -m trtnet.bench NAME`` (one module per NAME): each prints
figures (times, counts, ratios), never asserts on them; tests pin behaviour, benchmarks measure.

The machinery of the bench command, just below the commands: it may import every room
(network, precision, builder, runtime, triton, verification), never a command module.
"""
