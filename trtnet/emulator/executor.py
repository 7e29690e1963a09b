"""Executor of an emulated network (landing soon)."""
from __future__ import annotations


def run(network, inputs, fetch=None):
    raise NotImplementedError("emulator.run: landing soon")
