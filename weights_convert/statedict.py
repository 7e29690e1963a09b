"""Finding the state dict inside whatever object a checkpoint pickled.

Accepted: a key -> tensor dict (``model.state_dict()``), or a dict wrapping one under a
usual key (``state_dict``, ``model``, ...; up to two levels deep, as training scripts
save ``{'model': {...}, 'optimizer': ..., 'iteration': ...}``). A ``module.`` prefix on
every key (``nn.DataParallel``) is removed. Other entries are ignored and reported.

YOLACT (not Edge) checkpoints name the FPN ``fpn.*``; as upstream's ``load_weights`` does,
``fpn.lat_layers.*`` becomes ``fpn_phase_1.lat_layers.*`` and every other ``fpn.*`` key
``fpn_phase_2.*``, so a YOLACT checkpoint loads into a yolact_edge network.
"""

from __future__ import annotations

from typing import Any

from .errors import CheckpointError
from .unpickler import TensorRef

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state", "net", "network",
                "weights", "params", "module")


def _tensor_entries(obj: Any) -> "dict[str, TensorRef] | None":
    if not isinstance(obj, dict) or not obj:
        return None
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, TensorRef)}
    # a state dict is tensors only; tolerate a few odd entries, never a dict of other things
    if not tensors or len(tensors) * 2 <= len(obj):
        return None
    return tensors


def _search(obj: Any, depth: int, trail: list[str]) -> "dict[str, TensorRef] | None":
    found = _tensor_entries(obj)
    if found is not None or depth == 0 or not isinstance(obj, dict):
        return found
    for key in WRAPPER_KEYS:
        if key in obj:
            found = _search(obj[key], depth - 1, trail + [key])
            if found is not None:
                trail.append(key)
                return found
    return None


def find_state_dict(obj: Any, where: str) -> tuple[dict[str, TensorRef], list[str]]:
    """The state dict (name -> :class:`TensorRef`) in ``obj``, and notes on what was skipped."""
    trail: list[str] = []
    found = _search(obj, 2, trail)
    if found is None:
        if isinstance(obj, dict):
            keys = ", ".join(repr(k) for k in list(obj)[:8])
            raise CheckpointError(f"{where}: no state dict found: the checkpoint is a dict with "
                                  f"keys {keys}, none of which holds a dict of tensors")
        raise CheckpointError(f"{where}: no state dict found: the checkpoint holds a "
                              f"{type(obj).__name__}, not a dict of tensors")
    notes = []
    if trail:
        notes.append(f"state dict taken from the checkpoint entry {trail[-1]!r}")
    container = obj
    for key in reversed(trail):
        container = container[key]
    skipped = [k for k in container if k not in found]
    if skipped:
        notes.append(f"ignored {len(skipped)} non-tensor entries: "
                     + ", ".join(repr(k) for k in skipped[:5]))
    if all(k.startswith("module.") for k in found):
        found = {k[len("module."):]: v for k, v in found.items()}
        notes.append("removed the 'module.' prefix (nn.DataParallel) from every key")
    if any(k.startswith("fpn.") for k in found) and not any(
            k.startswith(("fpn_phase_1.", "fpn_phase_2.")) for k in found):
        found = {_yolact_fpn_key(k): v for k, v in found.items()}
        notes.append("renamed YOLACT keys fpn.* to fpn_phase_1.lat_layers.* / fpn_phase_2.* "
                     "(as upstream's load_weights)")
    return found, notes


def _yolact_fpn_key(key: str) -> str:
    if key.startswith("fpn.lat_layers."):
        return "fpn_phase_1." + key[len("fpn."):]
    if key.startswith("fpn."):
        return "fpn_phase_2." + key[len("fpn."):]
    return key
