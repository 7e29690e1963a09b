"""Errors of the converter: one family, each message naming the problem (no traceback soup)."""

from __future__ import annotations


class ConverterError(Exception):
    """Base of every error the converter raises on bad input or a failed conversion."""


class CheckpointError(ConverterError):
    """The checkpoint file cannot be read: truncated, corrupted, or an unsupported layout."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle asks for a global outside the state-dict allowlist.

    Raised while unpickling, at the moment the global is looked up, so nothing the
    pickle would call has run (and no torch or other module is ever imported).
    """

    def __init__(self, global_name: str, path: str = ""):
        self.global_name = global_name
        where = f"{path}: " if path else ""
        super().__init__(
            f"{where}refusing to load: the pickle references {global_name}, which a tensor "
            "state dict never needs (only tensor rebuild functions, storage types and "
            "OrderedDict are allowed); the file may be malicious. If you trust it, re-save "
            "only its state dict with torch (torch.save(model.state_dict(), path))"
        )


class UnsupportedDtypeError(CheckpointError):
    """A tensor uses a dtype the converter does not handle (complex, quantized, float8...)."""


class ConfigMismatchError(ConverterError):
    """The checkpoint does not hold the keys/shapes of the config it was said to belong to."""
