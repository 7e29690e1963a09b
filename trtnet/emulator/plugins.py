"""Plugin registry of the emulator (filled in below)."""
from __future__ import annotations


def get_plugin_registry():
    raise NotImplementedError("emulator plugin registry: landing soon")
