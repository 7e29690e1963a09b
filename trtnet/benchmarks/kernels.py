"""Plugin and mask assembly kernels: nvcc register / spill report per kernel, CPU-twin
timings (and CUDA timings when CuPy and a GPU are present), the mask assembly's roofline.

``python -m trtnet.bench kernels [--arch 87 120] [--repeat 20] [--no-ptxas] [--no-host]``
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_ARCHS = ("75", "87", "90", "120")
EXAMPLES = (
    "python -m trtnet.bench kernels --arch 87 120 --repeat 20",
    "python -m trtnet.bench kernels --no-ptxas          # CPU-twin timings only",
)
_REPO = Path(__file__).resolve().parents[2]
_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:, used \d+ barriers)?(?:, (\d+) bytes smem)?")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS),
                        help="SM architectures for the ptxas report (default: %(default)s)")
    parser.add_argument("--source-dir", type=Path, default=_REPO / "plugins",
                        help="directory holding the plugins' .cu files; the mask assembly's are read from "
                             "../csrc/masks (default: the source tree's plugins/)")
    parser.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc",
                        help="the nvcc compiler for the register report (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per case (median is printed)")
    parser.add_argument("--no-ptxas", action="store_true", help="skip the register / spill report")
    parser.add_argument("--no-host", action="store_true", help="skip the CPU-twin timings")


def _short_name(mangled: str) -> str:
    """Readable kernel name: demangled when c++filt exists, without the anonymous namespace."""
    name = mangled
    if shutil.which("c++filt"):
        name = subprocess.run(["c++filt", mangled], capture_output=True, text=True).stdout.strip() or mangled
    name = re.sub(r"\(anonymous namespace\)::", "", name)
    name = re.sub(r"^(void )?trtnet::", "", name)
    name = name.split("(")[0]
    return name.replace("trtnet::", "").replace(", ", ",")  # one column: no spaces


def cuda_sources(source_dir: Path) -> list[Path]:
    """The plugins' .cu files under source_dir and the mask assembly's next to it (csrc/masks)."""
    return sorted(Path(source_dir).glob("*/*.cu")) + sorted((Path(source_dir).parent / "csrc" / "masks").glob("*.cu"))


def ptxas_report(nvcc: str, sources: list[Path], archs: list[str], include: Path | None = None) -> list[dict]:
    """Registers, spills, stack and static shared memory of every kernel for every arch."""
    rows = []
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            includes = ["-I", str(src.parent.parent)] + (["-I", str(include)] if include else [])
            cmd = [nvcc, "-std=c++17", "-O3", "-fmad=false", "-Xptxas", "-v", *includes,
                   *gencode, "-c", str(src), "-o", str(Path(tmp) / "k.o")]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"nvcc failed on {src}:\n{run.stderr[-3000:]}")
            current = None
            for line in run.stderr.splitlines():
                if m := _ENTRY.search(line):
                    current = {"source": src.name, "kernel": _short_name(m.group(1)), "arch": m.group(2)}
                elif current and (m := _STACK.search(line)):
                    current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
                elif current and (m := _USED.search(line)):
                    current.update(registers=int(m.group(1)), smem=int(m.group(2) or 0))
                    rows.append(current)
                    current = None
    return rows


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _nms_inputs(rng: np.random.Generator, n: int, a: int, c: int, k: int, dtype) -> tuple:
    """Detection-like inputs over 19248 priors; ~5-6k candidates (the reference images have 500-750)."""
    centre = rng.uniform(0, 1, (n, a, 2))
    size = rng.uniform(0.02, 0.4, (n, a, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1)
    logits = rng.standard_normal((n, a, c)) * 1.5
    logits[..., 0] += 7.0  # background dominates most priors
    scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    coeffs = rng.uniform(-1, 1, (n, a, k))
    return tuple(x.astype(dtype) for x in (boxes, scores, coeffs))


# Mask assembly at the target size: 100 detections on a 1280x720 frame.
MASK_FRAME = (720, 1280)
MASK_DETECTIONS = 100
PROTO_HW, NUM_PROTOS = (138, 138), 32


def _mask_inputs(rng: np.random.Generator, n: int, dtype=np.float32) -> tuple:
    """Prototypes after ReLU, tanh coefficients, boxes of 5-50 % of the frame per side."""
    protos = np.maximum(rng.standard_normal((*PROTO_HW, NUM_PROTOS)), 0)
    coeffs = np.tanh(rng.standard_normal((n, NUM_PROTOS)))
    size = rng.uniform(0.05, 0.5, (n, 2))
    corner = rng.uniform(0, 1, (n, 2)) * (1 - size)
    boxes = np.concatenate([corner, corner + size], 1)
    return tuple(x.astype(dtype) for x in (protos, coeffs, boxes))


def mask_roofline(n: int = MASK_DETECTIONS, frame_hw: tuple[int, int] = MASK_FRAME,
                  bandwidth_gbs: float = 204.8, fp32_tflops: float = 5.3) -> list[tuple[str, float]]:
    """Expected GPU cost of the mask assembly from DRAM traffic and arithmetic (worst case:
    every lowres cell computed; Orin AGX: 204.8 GB/s LPDDR5, ~5.3 FP32 TFLOPS at 1.3 GHz)."""
    cells = PROTO_HW[0] * PROTO_HW[1]
    pixels = n * frame_hw[0] * frame_hw[1]
    traffic = {
        "prototypes read (fp32)": cells * NUM_PROTOS * 4,
        "lowres masks written + read (fp32 workspace)": 2 * n * cells * 4,
        "binary masks written (uint8)": pixels,
    }
    total = sum(traffic.values())
    flops = n * cells * (2 * NUM_PROTOS + 20) + pixels * 9  # dot + sigmoid; 3 blends
    rows = [(f"  {k}: {v / 1e6:.1f} MB", float("nan")) for k, v in traffic.items()]
    rows.append((f"mask assembly roofline {n} dets {frame_hw[1]}x{frame_hw[0]}: {total / 1e6:.1f} MB at "
                 f"{bandwidth_gbs:g} GB/s", total / (bandwidth_gbs * 1e9) * 1e3))
    rows.append((f"  arithmetic {flops / 1e9:.2f} GFLOP at {fp32_tflops:g} TFLOPS (overlaps the traffic)",
                 flops / (fp32_tflops * 1e12) * 1e3))
    return rows


def host_timings(repeat: int) -> list[tuple[str, float]]:
    from trtnet.plugins import extension as _ext

    C = _ext.require()
    rng = np.random.default_rng(0)
    results = []
    for dtype in (np.float32, np.float16):
        for c, hw in ((256, 35), (256, 18)):
            feature = rng.standard_normal((1, c, hw, hw)).astype(dtype)
            flow = (rng.standard_normal((1, 2, hw, hw)) * 0.1).astype(dtype)
            scale = rng.standard_normal((1, c, hw, hw)).astype(dtype)
            bias = rng.standard_normal((1, c, hw, hw)).astype(dtype)
            ms = _median_ms(lambda: C.inverse_warp(feature, flow, scale, bias), repeat)
            results.append((f"inverse_warp {np.dtype(dtype).name} [1,{c},{hw},{hw}] + scale, bias", ms))
        for c in (41, 81):
            inputs = _nms_inputs(rng, 1, 19248, c, 32, dtype)
            ms = _median_ms(lambda: C.fast_nms(*inputs), repeat)
            cand = int((inputs[1][0, :, 1:].astype(np.float32).max(1) > 0.05).sum())
            results.append((f"fast_nms {np.dtype(dtype).name} A=19248 C={c} K=32 ({cand} candidates)", ms))
    if hasattr(C, "assemble_masks"):
        for n in (10, MASK_DETECTIONS):
            inputs = _mask_inputs(rng, n)
            ms = _median_ms(lambda: C.assemble_masks(*inputs, frame_hw=MASK_FRAME), repeat)
            results.append((f"assemble_masks float32 {n} dets {MASK_FRAME[1]}x{MASK_FRAME[0]}", ms))
    return results


def device_timings(repeat: int) -> list[tuple[str, float]]:
    """CUDA timings via CuPy events, only when CuPy, a GPU and the CUDA launchers exist."""
    try:
        import cupy
        from trtnet.plugins import extension as _ext

        _ext.require_cuda()
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - optional part
        return [(f"device timings skipped ({type(exc).__name__}: {exc})", float("nan"))]
    from trtnet.plugins import extension as _ext

    rng = np.random.default_rng(0)
    results = []

    def timed(fn) -> float:
        fn()
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(max(1, repeat)):
            fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / max(1, repeat)

    for dtype in (np.float32, np.float16):
        feature = cupy.asarray(rng.standard_normal((1, 256, 35, 35)).astype(dtype))
        flow = cupy.asarray((rng.standard_normal((1, 2, 35, 35)) * 0.1).astype(dtype))
        results.append((f"cuda inverse_warp {np.dtype(dtype).name} [1,256,35,35]",
                        timed(lambda: _ext.inverse_warp_cupy(feature, flow, feature, feature))))
        inputs = tuple(cupy.asarray(x) for x in _nms_inputs(rng, 1, 19248, 81, 32, dtype))
        results.append((f"cuda fast_nms {np.dtype(dtype).name} A=19248 C=81", timed(lambda: _ext.fast_nms_cupy(*inputs))))
        masks_in = tuple(cupy.asarray(x) for x in _mask_inputs(rng, MASK_DETECTIONS, dtype))
        out = cupy.empty((MASK_DETECTIONS, *MASK_FRAME), cupy.uint8)
        results.append((f"cuda assemble_masks {np.dtype(dtype).name} {MASK_DETECTIONS} dets "
                        f"{MASK_FRAME[1]}x{MASK_FRAME[0]}",
                        timed(lambda: _ext.assemble_masks_cupy(*masks_in, MASK_FRAME, out=out))))
    return results


def run(args: argparse.Namespace) -> int:
    status = 0
    if not args.no_ptxas:
        sources = cuda_sources(Path(args.source_dir))
        if not sources:
            print(f"kernels: no .cu files under {args.source_dir} (an installed package has none: run from "
                  "the source tree or pass --source-dir); skipping the register report")
        elif not Path(args.nvcc).exists() and shutil.which(args.nvcc) is None:
            print(f"kernels: nvcc not found ({args.nvcc}); skipping the register report")
        else:
            rows = ptxas_report(args.nvcc, sources, args.arch, include=Path(args.source_dir))
            print(f"{'kernel':58s} {'arch':7s} {'regs':>4s} {'spill st/ld':>11s} {'stack':>5s} {'smem':>5s}")
            for r in rows:
                print(f"{r['kernel'][:58]:58s} {r['arch']:7s} {r['registers']:4d} "
                      f"{r['spill_stores']:5d}/{r['spill_loads']:<5d} {r['stack']:5d} {r['smem']:5d}")
            spilling = [r for r in rows if r["spill_stores"] or r["spill_loads"]]
            print(f"kernels: {len(rows)} kernel builds, {len(spilling)} with register spills")
            status = 1 if spilling else 0
    if not args.no_host:
        print()
        for label, ms in host_timings(args.repeat):
            print(f"{label:60s} {ms:9.3f} ms (CPU twin, median of {args.repeat})")
        for label, ms in device_timings(args.repeat):
            print(f"{label:60s} {ms:9.4f} ms" if ms == ms else label)
        print()
        for label, ms in mask_roofline():
            print(f"{label:60s} {ms:9.3f} ms (expected on Orin AGX)" if ms == ms else label)
    return status
