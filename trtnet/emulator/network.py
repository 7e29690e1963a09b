"""Emulated INetworkDefinition (landing soon)."""
from __future__ import annotations


class ITensor:
    pass


class Network:
    pass
