"""Benchmarks run by ``python -m trtnet.bench NAME`` (one module per NAME)."""
