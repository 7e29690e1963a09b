"""Reading a reference case folder (the format of ``../shared/reference/<case>/``).

A case folder holds ``manifest.json`` (config name, passes, and in ``outputs_npz``
the shape/layout/stored slice of every array), ``inputs.npz`` (``<frame>/image_bgr``),
``outputs.npz`` (``<pass>/<tensor>``) and ``weights.pth``. Anyone can save their own
PyTorch model's outputs in this format and check an engine against them with
``python -m trtnet.verify``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

_SLICE_RE = re.compile(r"(last-dim )?channels \[(\d+):(\d+)\]")


@dataclass(frozen=True)
class StoredArray:
    """What ``manifest.json`` says about one array of outputs.npz."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    layout: str
    meaning: str
    stored_slice: str | None = None
    full_shape: tuple[int, ...] | None = None

    @property
    def channels_last(self) -> bool:
        return self.layout.upper().startswith("NHWC")

    def channel_slice(self) -> tuple[int, slice] | None:
        """(axis, slice) of the stored channels, or None when the array is stored whole."""
        if not self.stored_slice:
            return None
        match = _SLICE_RE.search(self.stored_slice)
        if not match:
            raise ValueError(f"{self.key}: cannot read stored_slice {self.stored_slice!r}")
        axis = -1 if (match.group(1) or self.channels_last) else 1
        return axis, slice(int(match.group(2)), int(match.group(3)))

    def take(self, full: np.ndarray) -> np.ndarray:
        """The part of a full-size tensor that the reference stores (checks the shape)."""
        full = np.asarray(full)
        expected = self.full_shape or self.shape
        if tuple(full.shape) != tuple(expected):
            raise ValueError(f"{self.key}: expected full shape {tuple(expected)}, got {tuple(full.shape)}")
        sl = self.channel_slice()
        if sl is None:
            return full
        axis, s = sl
        index = [slice(None)] * full.ndim
        index[axis] = s
        return full[tuple(index)]


class ReferenceCase:
    """One case folder; arrays are loaded lazily from the npz files."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{self.path} is not a reference case folder: no manifest.json "
                "(expected manifest.json, inputs.npz, outputs.npz, weights.pth)"
            )
        self.manifest: dict = json.loads(manifest.read_text())
        for name in ("inputs.npz", "outputs.npz"):
            if not (self.path / name).is_file():
                raise FileNotFoundError(f"reference case {self.path}: missing {name}")

    @property
    def name(self) -> str:
        return self.manifest.get("case", self.path.name)

    @property
    def config_name(self) -> str:
        try:
            return self.manifest["config_name"]
        except KeyError:
            raise KeyError(f"{self.path}/manifest.json has no 'config_name'") from None

    @property
    def weights_path(self) -> Path:
        name = self.manifest.get("weights", {}).get("file", "weights.pth")
        return self.path / name

    @cached_property
    def outputs(self):
        return np.load(self.path / "outputs.npz")

    @cached_property
    def inputs(self):
        return np.load(self.path / "inputs.npz")

    @cached_property
    def stored(self) -> dict[str, StoredArray]:
        """Manifest description of every output array (falls back to the npz itself)."""
        described = self.manifest.get("outputs_npz", {})
        result = {}
        for key in self.outputs.files:
            d = described.get(key, {})
            if "shape" in d:
                shape, dtype = tuple(d["shape"]), d.get("dtype", "")
            else:  # undescribed array: read its .npy header only
                shape, dtype = self._npy_header(key)
            result[key] = StoredArray(
                key=key,
                shape=shape,
                dtype=dtype,
                layout=d.get("layout", ""),
                meaning=d.get("meaning", ""),
                stored_slice=d.get("stored_slice"),
                full_shape=tuple(d["full_shape"]) if "full_shape" in d else None,
            )
        return result

    def _npy_header(self, key: str) -> tuple[tuple[int, ...], str]:
        with self.outputs.zip.open(key + ".npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
        return tuple(shape), str(dtype)

    @cached_property
    def passes(self) -> list[str]:
        """Pass names in manifest order (``key``, ``nonkey``, ``fullB`` / ``img0``...)."""
        listed = list(self.manifest.get("frames", {}).get("passes", {}))
        if listed:
            return listed
        seen: list[str] = []
        for key in self.outputs.files:
            head = key.split("/", 1)[0]
            if "/" in key and head not in seen and key != head:
                seen.append(head)
        return [p for p in seen if p != "priors"]

    def frame_of(self, pass_name: str) -> str:
        """Input frame tag a pass ran on (``A`` for ``key``, ``img0`` for ``img0``...)."""
        tags = sorted({k.split("/", 1)[0] for k in self.inputs.files})
        if pass_name in tags:
            return pass_name
        desc = self.manifest.get("frames", {}).get("passes", {}).get(pass_name, "")
        match = re.search(r"pass on (\w+)", desc)
        if match and match.group(1) in tags:
            return match.group(1)
        for tag in tags:  # e.g. fullB -> B
            if pass_name.endswith(tag):
                return tag
        raise KeyError(f"cannot tell which input frame pass {pass_name!r} used (frames: {tags})")

    def image(self, pass_name: str) -> np.ndarray:
        """uint8 HxWx3 BGR frame of a pass."""
        return self.inputs[f"{self.frame_of(pass_name)}/image_bgr"]

    def keys(self, pass_name: str) -> list[str]:
        """Output keys of a pass, without the prefix."""
        prefix = pass_name + "/"
        return [k[len(prefix):] for k in self.outputs.files if k.startswith(prefix)]

    def has(self, pass_name: str, name: str) -> bool:
        return f"{pass_name}/{name}" in self.stored

    def get(self, pass_name: str, name: str) -> np.ndarray:
        key = f"{pass_name}/{name}" if pass_name else name
        if key not in self.stored:
            raise KeyError(f"reference {self.path.name} has no array {key!r}")
        return self.outputs[key]

    def spec(self, pass_name: str, name: str) -> StoredArray:
        return self.stored[f"{pass_name}/{name}" if pass_name else name]

    @property
    def priors(self) -> np.ndarray:
        return self.outputs["priors"]

    def is_video_nonkey(self, pass_name: str) -> bool:
        """True for passes that need the non-keyframe (flow warp) path."""
        return any(k.startswith(("warp/", "flow/", "partial_backbone/")) for k in self.keys(pass_name))

    def fastnms_inputs(self, pass_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fast NMS inputs rebuilt from the stored head outputs: raw loc [1,A,4], scores [1,A,C], coeffs [1,A,K].

        Candidate priors get their full stored softmax rows and coefficients; the others
        get background and best-foreground probability only (their best foreground score
        is <= conf_thresh, so they never enter Fast NMS) and zero coefficients.
        """
        g = lambda n: self.get(pass_name, n)  # noqa: E731
        loc = g("head/loc").astype(np.float32)
        idx = g("head/candidate_idx").astype(np.int64)
        rows, coeffs = g("head/conf_candidates"), g("head/mask_candidates")
        if len(rows) < len(idx) or len(coeffs) < len(idx):
            raise KeyError(f"reference {self.path.name} stores the softmax rows and coefficients of only the "
                           f"first {min(len(rows), len(coeffs))} of its {len(idx)} candidates in pass "
                           f"{pass_name}: Fast NMS's input cannot be rebuilt from it (the reference backend "
                           "needs every candidate); check the case with --backend emulator")
        num = loc.shape[1]
        scores = np.zeros((1, num, rows.shape[1]), np.float32)
        scores[0, :, 0] = g("head/conf_bg")[0]
        scores[0, np.arange(num), g("head/conf_argmaxfg")[0].astype(np.int64) + 1] = g("head/conf_maxfg")[0]
        scores[0, idx] = rows
        full_coeffs = np.zeros((1, num, coeffs.shape[1]), np.float32)
        full_coeffs[0, idx] = coeffs
        return loc, scores, full_coeffs

    def detections(self, pass_name: str, method: str = "fastnms") -> dict[str, np.ndarray]:
        """Reference detections of a pass: det_* (relative) and postprocessed arrays, by short name."""
        prefix = f"{method}/"
        return {k[len(prefix):]: self.get(pass_name, k) for k in self.keys(pass_name) if k.startswith(prefix)}


def find_cases(root: str | Path) -> list[ReferenceCase]:
    """Every case folder (with a manifest.json) directly under ``root``."""
    root = Path(root)
    return [ReferenceCase(p) for p in sorted(root.iterdir()) if (p / "manifest.json").is_file()]


def default_case_dir(case: str) -> Path:
    """Folder of the shared reference case ``case``: under $TRTNET_REFERENCE_DIR, else
    ../shared/reference beside the source tree, else beside the current directory (the first
    that exists; the last candidate otherwise, so errors name a path)."""
    env = os.environ.get("TRTNET_REFERENCE_DIR")
    bases = [Path(env)] if env else [
        Path(__file__).resolve().parents[1].parent / "shared" / "reference",
        Path.cwd().parent / "shared" / "reference",
    ]
    paths = [b / case for b in bases]
    return next((p for p in paths if p.is_dir()), paths[0])
