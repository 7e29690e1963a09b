"""The conversion itself: checkpoint -> (checked against a config) -> safetensors.

dtype policy (``--dtype``): by default float32 and float16 tensors keep their dtype
(lossless), bfloat16 becomes float32 (exact) and float64 becomes float32 (TensorRT has
no float64). ``fp32`` / ``fp16`` cast every floating tensor; integer and bool tensors
(``num_batches_tracked``) never change. A cast to float16 that would overflow is an
error naming the tensor, never a silent inf.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import __version__
from .checkpoint import open_checkpoint
from .dtypes import DTYPES, DType, bfloat16_to_float32
from .errors import CheckpointError, ConfigMismatchError, ConverterError
from .safetensors_io import build_header, write_atomic
from .statedict import find_state_dict

DTYPE_CHOICES = {"fp32": "float32", "fp16": "float16"}


def output_dtype(src: DType, requested: Optional[str] = None) -> DType:
    """The dtype a tensor of dtype ``src`` is written as (see the module docstring)."""
    if not src.is_float:
        return src
    if requested is not None:
        if requested not in DTYPE_CHOICES:
            raise ConverterError(f"unknown --dtype {requested!r}; choose fp32 or fp16")
        return DTYPES[DTYPE_CHOICES[requested]]
    if src.name in ("bfloat16", "float64"):
        return DTYPES["float32"]
    return src


def cast(name: str, arr: np.ndarray, src: DType, dst: DType) -> np.ndarray:
    """``arr`` (storage form of ``src``) as ``dst``; refuses overflow to inf."""
    if src.name == "bfloat16":
        arr = bfloat16_to_float32(arr)
    if arr.dtype == dst.storage:
        return arr
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(dst.storage)
    if dst.is_float and np.dtype(dst.storage).itemsize < arr.dtype.itemsize:
        bad = np.isinf(out) & np.isfinite(arr)
        if bad.any():
            worst = float(np.abs(arr[bad]).max())
            hint = ": convert with --dtype fp32 instead" if dst.name == "float16" else ""
            raise ConverterError(
                f"tensor {name!r} holds values up to {worst:g}, outside the {dst.name} "
                f"range{hint}")
    return out


@dataclass
class ConversionResult:
    """What a conversion did: the config it matched, notes and warnings, sizes."""

    source: str
    output: str
    source_format: str
    source_sha256: str
    config: Optional[str]            # matched (or given) config; None if none matched
    closest_config: Optional[str]    # set when no config matched
    tensors: int = 0
    bytes_written: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _check_config(shapes: dict[str, tuple[int, ...]], config: Optional[str],
                  result: ConversionResult, where: str, fpn_naming: Optional[str] = None) -> None:
    """Check ``shapes`` against ``config``, or recognise the config (ties: FPN naming, then the
    file name ``where``, see trtnet.network.weight_spec.recognise)."""
    from trtnet.config import get_config, UnknownConfigError
    from trtnet.network.weight_spec import (AmbiguousConfigError, compare, describe_blocking,
                                            expected_shapes, recognise)

    if config is not None:
        try:
            cfg = get_config(config)
        except UnknownConfigError as exc:
            raise ConverterError(str(exc)) from None
        diffs = compare(expected_shapes(cfg), shapes)
        blocking = [d for d in diffs if d.blocking]
        if blocking:
            more = f" (and {len(blocking) - 1} more differences)" if len(blocking) > 1 else ""
            parts = describe_blocking([d for d in blocking if d.kind == "extra"])
            parts = f"; the checkpoint has parts config {cfg.name} lacks: {parts}" if parts else ""
            raise ConfigMismatchError(f"{where} does not match config {cfg.name}: "
                                      f"{blocking[0]}{more}{parts}")
        result.config = cfg.name
    else:
        try:
            found = recognise(shapes, filename=where, fpn_naming=fpn_naming)
        except AmbiguousConfigError as exc:
            raise ConfigMismatchError(f"{where}: {exc}") from None
        name, diffs = found.closest, found.diffs
        blocking = [d for d in diffs if d.blocking]
        if len(found.fitting) > 1:
            result.notes.append(f"config {name} chosen by its {found.chosen_by} among "
                                f"{', '.join(found.fitting)} (same keys and shapes)")
        if blocking:
            result.closest_config = name
            listed = "; ".join(str(d) for d in blocking[:3])
            more = f"; and {len(blocking) - 3} more" if len(blocking) > 3 else ""
            result.warnings.append(
                f"the checkpoint matches no yolact_edge config; closest is {name}, which "
                f"differs in {len(blocking)} keys: {listed}{more}")
        else:
            result.config = name
    extras = [d for d in diffs if not d.blocking]
    if extras and result.config:
        listed = ", ".join(d.key for d in extras[:5])
        more = f" and {len(extras) - 5} more" if len(extras) > 5 else ""
        result.warnings.append(f"{len(extras)} keys are not part of config {result.config} "
                               f"and are kept unused: {listed}{more}")


def convert(src: "str | os.PathLike", dst: "str | os.PathLike", config: Optional[str] = None,
            dtype: Optional[str] = None, durable: bool = True) -> ConversionResult:
    """Convert checkpoint ``src`` to safetensors ``dst`` (atomically; see module docstring).

    ``config`` (a yolact_edge config name) must match the checkpoint's keys and shapes,
    else :class:`ConfigMismatchError`; without it the config is recognised, and a
    checkpoint matching none still converts with a warning naming the closest one.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if dtype is not None and dtype not in DTYPE_CHOICES:
        raise ConverterError(f"unknown dtype {dtype!r}; choose fp32 or fp16")
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise ConverterError(f"output {dst} is the input file")
    if not os.path.isfile(src):
        raise CheckpointError(f"{src}: no such file")
    with open_checkpoint(src) as ckpt, ThreadPoolExecutor(1) as pool:
        # The source's sha256 (for the metadata) is computed on another core while the
        # tensors stream out; hashlib releases the GIL, and the header is written last.
        digest_job = pool.submit(ckpt.sha256)
        tensors, notes = find_state_dict(ckpt.obj, src)
        result = ConversionResult(src, dst, ckpt.format, "", None, None, notes=notes)
        # statedict renames dbolya/yolact's fpn.* keys and says so in a note
        naming = "yolact" if any(n.startswith("renamed YOLACT keys fpn.*") for n in notes) else "yolact_edge"
        _check_config({k: t.shape for k, t in tensors.items()}, config, result, src, naming)
        plan = [(k, t, output_dtype(t.dtype, dtype)) for k, t in tensors.items()]
        changed = Counter((t.dtype.name, out.name) for _, t, out in plan if t.dtype != out)
        result.notes += [f"{n} {a} tensors written as {b}" for (a, b), n in changed.items()]
        entries = [(k, out.safetensors, t.shape, t.numel * out.itemsize) for k, t, out in plan]
        metadata = {
            "format": "pt",
            "config": result.config or "",
            "source_sha256": "0" * 64,  # placeholder of the digest's length, filled in below
            "source_format": ckpt.format,
            "converter_version": f"weights_convert {__version__}",
        }
        if result.closest_config:
            metadata["closest_config"] = result.closest_config
        header_size = len(build_header(entries, metadata))
        ckpt.plan(tensors)
        size = sum(e[3] for e in entries)

        def arrays():
            for key, t, out in plan:
                yield cast(key, ckpt.read(key, t, copy=False), t.dtype, out)

        def header() -> bytes:
            try:
                result.source_sha256 = metadata["source_sha256"] = digest_job.result()
            except OSError as exc:
                raise CheckpointError(f"{src}: cannot read: {exc.strerror or exc}") from None
            return build_header(entries, metadata)

        write_atomic(dst, header, arrays(), size, durable=durable, header_size=header_size)
    result.tensors, result.bytes_written = len(plan), header_size + size
    return result


def _is_safetensors(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def load_state_dict(path: "str | os.PathLike", dtype: Optional[str] = None
                    ) -> dict[str, np.ndarray]:
    """Every tensor of a ``.pth`` checkpoint or ``.safetensors`` file, as numpy arrays.

    Same dtype policy as :func:`convert` (``dtype`` None, 'fp32' or 'fp16'); no config
    check. Arrays never alias each other, even when the checkpoint shares storages.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        try:
            loaded = load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: unreadable safetensors file: {exc}") from None
        if dtype is None:
            return loaded
        want = DTYPES[DTYPE_CHOICES[dtype]].storage
        return {k: (cast(k, v, DTYPES["float32"], DTYPES[DTYPE_CHOICES[dtype]])
                    if v.dtype.kind == "f" and v.dtype != want else v)
                for k, v in loaded.items()}
    with open_checkpoint(path) as ckpt:
        tensors, _notes = find_state_dict(ckpt.obj, path)
        ckpt.plan(tensors)
        return {k: cast(k, ckpt.read(k, t), t.dtype, output_dtype(t.dtype, dtype))
                for k, t in tensors.items()}


def checkpoint_shapes(path: "str | os.PathLike") -> dict[str, tuple[int, ...]]:
    """Key -> shape of a ``.pth`` or ``.safetensors`` file without reading any tensor data
    (e.g. to recognise its config with :func:`trtnet.network.weight_spec.match_config`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    if _is_safetensors(path):
        from safetensors import SafetensorError, safe_open
        try:
            with safe_open(path, "np") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: unreadable safetensors file: {exc}") from None
    with open_checkpoint(path) as ckpt:
        tensors, _notes = find_state_dict(ckpt.obj, path)
        return {k: t.shape for k, t in tensors.items()}
