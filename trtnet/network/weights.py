"""Checkpoint weights for the network builder: loading, lookup with clear errors, BN folding.

The builder asks for weights by the upstream checkpoint key of the layer it is building
(``backbone.layers.2.5.conv2``) and says which layer needs them, so a missing or
misshapen tensor is reported as "layer X needs key Y", never as a bare KeyError deep
inside TensorRT. BatchNorm is folded into the preceding convolution here (in float64,
stored as float32), so the network has no BN layers at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np

BN_EPS = 1e-5  # torch.nn.BatchNorm2d default; upstream never changes it

WeightsSource = Union[str, os.PathLike, Mapping[str, np.ndarray], "WeightStore"]


class WeightError(Exception):
    """Base of the errors raised while looking up checkpoint weights."""


class MissingWeightError(WeightError, KeyError):
    """A key the network needs is not in the checkpoint."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class WeightFileError(WeightError, ValueError):
    """The weights file is missing, unreadable, truncated or not a checkpoint (message names it)."""


class WeightShapeError(WeightError, ValueError):
    """A checkpoint tensor has a shape the network cannot use."""


def _close_keys(key: str, keys: Iterable[str], limit: int = 3) -> list[str]:
    """A few existing keys sharing the longest dotted prefix with ``key`` (for error hints)."""
    parts = key.split(".")
    keys = list(keys)
    for n in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:n]) + "."
        hits = sorted(k for k in keys if k.startswith(prefix))
        if hits:
            return hits[:limit]
    return []


def _shape_matches(found: Sequence[int], expected: Sequence[Optional[int]]) -> bool:
    return len(found) == len(expected) and all(e is None or e == f for f, e in zip(found, expected))


def _fmt_shape(shape: Sequence[Optional[int]]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def fold_batchnorm(
    kernel: np.ndarray,
    bias: Optional[np.ndarray],
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = BN_EPS,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``BN(conv(x))`` into one convolution: float64 arithmetic, float32 result.

    ``scale = gamma / sqrt(var + eps)``; ``kernel' = kernel * scale`` per output channel,
    ``bias' = (bias - mean) * scale + beta``.
    """
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    k = kernel.astype(np.float64) * scale.reshape((-1,) + (1,) * (kernel.ndim - 1))
    b0 = np.zeros_like(scale) if bias is None else bias.astype(np.float64)
    b = (b0 - mean.astype(np.float64)) * scale + beta.astype(np.float64)
    return k.astype(np.float32), b.astype(np.float32)


class WeightStore:
    """Named float32 arrays of one checkpoint, looked up by the layer that needs them.

    Arrays handed to TensorRT through ``trt.Weights`` are not copied by TensorRT until the
    engine is built, so the store keeps every array it returns alive (:meth:`keep`) for as
    long as the store itself lives: keep the store until the build is done.
    """

    def __init__(self, tensors: Mapping[str, np.ndarray], source: str = "<dict>"):
        self.source = source
        self._tensors: dict[str, np.ndarray] = {}
        for key, value in tensors.items():
            arr = np.asarray(value)
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float32, copy=False)
            self._tensors[str(key)] = arr
        self._alive: list[np.ndarray] = []

    # -- construction ---------------------------------------------------------------
    @classmethod
    def load(cls, source: WeightsSource) -> "WeightStore":
        """A store from a ``.safetensors`` file, a ``.pth`` (via the torch-free converter),
        a dict of arrays, or an existing store (returned as is)."""
        if isinstance(source, WeightStore):
            return source
        if isinstance(source, Mapping):
            return cls(source)
        path = Path(source)
        if not path.is_file():
            raise WeightFileError(f"weights file not found: {path}")
        if path.suffix not in (".safetensors", ".pth", ".pt"):
            raise WeightFileError(
                f"unsupported weights file {path}: expected .safetensors or .pth "
                "(convert a .pth with `python -m weights_convert`)"
            )
        from weights_convert import load_state_dict
        from weights_convert.errors import ConverterError

        try:  # one reader for both formats: its errors name the file and what is wrong
            return cls(load_state_dict(str(path)), source=str(path))
        except ConverterError as exc:
            if path.suffix == ".safetensors" and "not a PyTorch checkpoint" in str(exc):
                raise WeightFileError(f"{path}: not a safetensors file (no valid header) nor a PyTorch "
                                      "checkpoint: truncated or corrupted?") from None
            raise WeightFileError(str(exc)) from None
        except OSError as exc:
            raise WeightFileError(f"cannot read weights file {path}: {exc.strerror or exc}") from None

    # -- plain lookup ---------------------------------------------------------------
    def __contains__(self, key: str) -> bool:
        return key in self._tensors

    def __len__(self) -> int:
        return len(self._tensors)

    def keys(self) -> list[str]:
        return list(self._tensors)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """key -> shape of every tensor (for config recognition, trtnet.network.weight_spec)."""
        return {k: tuple(v.shape) for k, v in self._tensors.items()}

    def keep(self, arr: np.ndarray) -> np.ndarray:
        """Keep ``arr`` alive as long as this store (TensorRT holds only a pointer)."""
        self._alive.append(arr)
        return arr

    def get(
        self,
        key: str,
        shape: Optional[Sequence[Optional[int]]] = None,
        *,
        layer: str,
    ) -> np.ndarray:
        """The float32 tensor ``key``, needed by ``layer``; ``shape`` may use None for any."""
        try:
            arr = self._tensors[key]
        except KeyError:
            hint = _close_keys(key, self._tensors)
            near = f"; nearby keys: {', '.join(hint)}" if hint else ""
            raise MissingWeightError(
                f"layer {layer!r} needs weight {key!r}, which is not in {self.source}{near}"
            ) from None
        if shape is not None and not _shape_matches(arr.shape, shape):
            raise WeightShapeError(
                f"layer {layer!r}: weight {key!r} has shape {tuple(arr.shape)}, "
                f"expected {_fmt_shape(shape)}"
            )
        if arr.dtype != np.float32:
            raise WeightShapeError(
                f"layer {layer!r}: weight {key!r} has dtype {arr.dtype}, expected a float tensor"
            )
        return arr

    # -- layer-shaped lookups ---------------------------------------------------------
    def conv(
        self,
        prefix: str,
        *,
        in_channels: int,
        groups: int = 1,
        out_channels: Optional[int] = None,
        kernel: Optional[int] = None,
        bias: bool = True,
        layer: Optional[str] = None,
    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Kernel [out, in/groups, k, k] and bias [out] (None when ``bias`` is False)."""
        layer = layer or prefix
        if in_channels % groups:
            raise WeightShapeError(
                f"layer {layer!r}: {in_channels} input channels do not split into {groups} groups"
            )
        w = self.get(
            f"{prefix}.weight",
            (out_channels, in_channels // groups, kernel, kernel),
            layer=layer,
        )
        b = self.get(f"{prefix}.bias", (w.shape[0],), layer=layer) if bias else None
        return w, b

    def batchnorm(self, prefix: str, channels: int, *, layer: Optional[str] = None):
        """(gamma, beta, running_mean, running_var) of a BatchNorm2d with ``channels``."""
        layer = layer or prefix
        return tuple(
            self.get(f"{prefix}.{name}", (channels,), layer=layer)
            for name in ("weight", "bias", "running_mean", "running_var")
        )

    def conv_bn(
        self,
        conv_prefix: str,
        bn_prefix: str,
        *,
        in_channels: int,
        groups: int = 1,
        out_channels: Optional[int] = None,
        kernel: Optional[int] = None,
        eps: float = BN_EPS,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Kernel and bias of a bias-free conv followed by BatchNorm, folded together."""
        w, _ = self.conv(
            conv_prefix, in_channels=in_channels, groups=groups,
            out_channels=out_channels, kernel=kernel, bias=False,
        )
        gamma, beta, mean, var = self.batchnorm(bn_prefix, w.shape[0], layer=conv_prefix)
        return fold_batchnorm(w, None, gamma, beta, mean, var, eps)


def load_weights(source: WeightsSource) -> WeightStore:
    """Shorthand for :meth:`WeightStore.load`."""
    return WeightStore.load(source)


class WeightConfigError(WeightError, ValueError):
    """The checkpoint does not fit the config asked for (or any known config)."""


def resolve_config(store: "WeightStore", name: Optional[str] = None):
    """The config to build: ``name``, or the one the checkpoint's keys and shapes match.

    A checkpoint that cannot build the config (missing or misshapen keys) is refused here,
    before any network is built, listing the first differences.
    """
    from trtnet.config import get_config
    from trtnet.network.weight_spec import (
        AmbiguousConfigError,
        compare,
        expected_shapes,
        recognise,
    )

    shapes = store.shapes()
    if name is None:
        # configs sharing every key and shape (yolact_base / im400 / im700): the config the
        # converter recorded in the file, else the file name (weight_spec.recognise)
        try:
            found = recognise(shapes, filename=_recorded_config(store.source) or store.source)
        except AmbiguousConfigError as exc:
            raise WeightConfigError(f"{store.source}: {exc}") from None
        name, diffs = found.closest, found.diffs
    else:
        diffs = compare(expected_shapes(get_config(name)), shapes)
    blocking = [d for d in diffs if d.blocking]
    if blocking:
        listed = "\n  ".join(str(d) for d in blocking[:8])
        more = f"\n  ... and {len(blocking) - 8} more" if len(blocking) > 8 else ""
        raise WeightConfigError(
            f"the weights do not fit config {name} ({len(blocking)} differences):\n  {listed}{more}"
        )
    return get_config(name)


def _recorded_config(source: str) -> str | None:
    """The ``config`` weights_convert wrote into a .safetensors file's metadata, if any."""
    if not source.endswith(".safetensors") or not os.path.isfile(source):
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(source, "np") as f:
            return (f.metadata() or {}).get("config") or None
    except (SafetensorError, OSError, ValueError):  # unreadable: the shapes alone decide
        return None
