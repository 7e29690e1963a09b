"""Host cost of the frame loop: Segmenter and VideoSegmenter, Python and C++, per frame.

Over fake engines (no GPU: engine time zero, trtnet/benchmarks/_fake_engine.py for Python,
csrc/runtime/tests/fake_backend.h for C++), one camera and a batch of cameras: host time
per frame (median and p99 over --frames), pool allocations and host synchronisations per
frame in steady state (after a warm-up that allocates the buffers and captures the CUDA
graphs). The Python frame loop is ``outputs(frame)`` (the engine's outputs, ready); the
mask assembly is timed apart on the NumPy path (what a CPU-only run pays; on a GPU it is
CuPy kernels). The C++ figures come from the CMake target trtnet_frame_loop_bench, built
here into --cpp-build-dir when it is not given with --cpp-bench.

Targets: Python <= 200 us, C++ <= 30 us median per frame; 0 allocations and 1 host
synchronisation per frame after warm-up. Exit 1 when one is missed (times are a machine's:
read them, a loaded machine misses them), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from trtnet import cli

EXAMPLES = (
    "python -m trtnet.bench runtime",
    "python -m trtnet.bench runtime --frames 5000 --batch 1 8 --memory host",
    "python -m trtnet.bench runtime --no-cpp --json",
    "python -m trtnet.bench runtime --cpp-bench build/trtnet_frame_loop_bench",
)

PYTHON_TARGET_US = 200.0
CPP_TARGET_US = 30.0
CPP_TARGET = "trtnet_frame_loop_bench"
DETECTIONS = 5  # for the mask assembly figure


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=cli.positive_int, default=1000, help="measured frames per case (default 1000)")
    p.add_argument("--warmup", type=cli.positive_int, default=20,
                   help="frames before measuring (default 20; at least two keyframe intervals for video)")
    p.add_argument("--batch", type=cli.positive_int, nargs="+", default=[1, 4], metavar="N",
                   help="cameras per call, one case each (default 1 4; 1..8)")
    p.add_argument("--size", type=cli.positive_int, nargs=2, default=[480, 640], metavar=("H", "W"),
                   help="frame size (default 480 640)")
    p.add_argument("--memory", choices=("host", "device"), default="device",
                   help="frames given in host memory (uploaded each call) or already on the device (default)")
    p.add_argument("--no-graphs", action="store_true", help="without CUDA graphs")
    p.add_argument("--motion-threshold", type=float, default=None,
                   help="VideoSegmenter with adaptive keyframes at this threshold (default: fixed interval)")
    p.add_argument("--no-cpp", action="store_true", help="the Python runtime only")
    p.add_argument("--cpp-bench", type=Path, default=None, help="a built trtnet_frame_loop_bench to run")
    p.add_argument("--cpp-build-dir", type=Path, default=None,
                   help=f"where to build {CPP_TARGET} with CMake (default: a folder under the temp dir)")
    p.add_argument("--source-dir", type=Path, default=None,
                   help="the trtnet source tree (CMakeLists.txt) to build the C++ bench from "
                        "(default: next to the trtnet package, when it is a source checkout)")
    p.add_argument("--json", action="store_true", help="one JSON line per case instead of the table")


# -- Python ---------------------------------------------------------------------------------
def percentile(sorted_us: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (the C++ bench's rule)."""
    return sorted_us[min(len(sorted_us) - 1, int(q * (len(sorted_us) - 1) + 0.5))]


def python_case(kind: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """Per-frame host time, allocations and syncs of ``kind`` (Segmenter | VideoSegmenter)."""
    from trtnet.benchmarks import _fake_engine
    from trtnet.runtime import Engine, Segmenter, VideoSegmenter

    cupy, trt = _fake_engine.fake_cupy(), _fake_engine.fake_tensorrt()
    h, w = args.size
    keyframe, nonkeyframe = _fake_engine.trtnet_engines(max_batch=max(args.batch), max_hw=(max(h, 64), max(w, 64)))
    graphs = not args.no_graphs
    key = Engine(keyframe, trt=trt, cupy=cupy, load_plugins=False, cuda_graph=graphs)
    if kind == "Segmenter":
        runner = Segmenter(key)
        warmup = args.warmup
    else:
        nonkey = Engine(nonkeyframe, trt=trt, cupy=cupy, load_plugins=False, cuda_graph=graphs, stream=key.stream)
        runner = VideoSegmenter(key, nonkey, motion_threshold=args.motion_threshold)
        warmup = max(args.warmup, 2 * runner.keyframe_interval)
    host = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    frames = cupy.asarray(host) if args.memory == "device" else host
    device = cupy.device
    for _ in range(warmup):
        runner.outputs(frames)
    allocations, syncs = device.allocations, device.syncs
    us = []
    clock = time.perf_counter_ns
    for _ in range(args.frames):
        t0 = clock()
        runner.outputs(frames)
        us.append((clock() - t0) / 1000.0)
    n = float(args.frames)
    us.sort()
    return {"bench": "python_frame_loop", "runtime": f"Python {kind}", "batch": batch, "memory": args.memory,
            "cuda_graphs": graphs, "height": h, "width": w, "frames": args.frames,
            "median_us": round(percentile(us, 0.5), 2), "p99_us": round(percentile(us, 0.99), 2),
            "allocations_per_frame": (device.allocations - allocations) / n,
            "syncs_per_frame": (device.syncs - syncs) / n, "hazards": len(device.hazards),
            "target_us": PYTHON_TARGET_US}


def mask_assembly(args: argparse.Namespace, repeat: int = 50) -> dict[str, Any]:
    """Median time of one frame's mask assembly (NumPy path, DETECTIONS detections)."""
    from trtnet import names
    from trtnet.benchmarks import _fake_engine
    from trtnet.runtime.segmenter import instances_from_outputs

    rng = np.random.default_rng(0)
    m, side, dim = _fake_engine.MAX_DETECTIONS, _fake_engine.PROTO_SIDE, _fake_engine.MASK_DIM
    xy = rng.uniform(0.0, 0.5, (1, m, 2)).astype(np.float32)
    outputs = {names.DET_COUNT: np.array([DETECTIONS], np.int32),
               names.DET_BOXES: np.concatenate([xy, xy + 0.4], -1),
               names.DET_SCORES: np.sort(rng.uniform(0.3, 1.0, (1, m)).astype(np.float32))[:, ::-1].copy(),
               names.DET_CLASSES: rng.integers(0, 80, (1, m)).astype(np.int32),
               names.DET_COEFFS: rng.uniform(-1, 1, (1, m, dim)).astype(np.float32),
               names.PROTO: rng.uniform(0, 1, (1, side, side, dim)).astype(np.float32)}
    h, w = args.size
    us = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        instances_from_outputs(outputs, (h, w))
        us.append((time.perf_counter_ns() - t0) / 1000.0)
    us.sort()
    return {"bench": "mask_assembly", "runtime": "Python mask assembly (NumPy)", "detections": DETECTIONS,
            "height": h, "width": w, "frames": repeat, "median_us": round(percentile(us, 0.5), 2),
            "p99_us": round(percentile(us, 0.99), 2)}


# -- C++ ------------------------------------------------------------------------------------
def source_tree(given: Optional[Path]) -> Optional[Path]:
    """The source checkout holding CMakeLists.txt and the bench, or None."""
    import trtnet

    root = given if given is not None else Path(trtnet.__file__).resolve().parent.parent
    return root if (root / "CMakeLists.txt").is_file() and (root / "csrc/runtime/bench").is_dir() else None


def cpp_bench(args: argparse.Namespace) -> tuple[Optional[Path], str]:
    """(the bench executable, "") or (None, why it cannot be run)."""
    if args.cpp_bench is not None:
        if not (args.cpp_bench.is_file() and os.access(args.cpp_bench, os.X_OK)):
            return None, f"--cpp-bench {args.cpp_bench} is not an executable file"
        return args.cpp_bench, ""
    src = source_tree(args.source_dir)
    if src is None:
        where = args.source_dir or "next to the installed trtnet package"
        return None, (f"no trtnet source tree (CMakeLists.txt, csrc/) {where}; pass --source-dir or --cpp-bench")
    cmake = shutil.which("cmake")
    if cmake is None:
        return None, "cmake is not installed (the C++ bench is built with CMake)"
    if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c):
        return None, "no C++ compiler (c++, g++ or clang++; or set CXX) to build the C++ bench"
    build = args.cpp_build_dir or Path(tempfile.gettempdir()) / f"trtnet_frame_loop_bench_{os.getuid()}"
    build.mkdir(parents=True, exist_ok=True)
    steps = []
    if not (build / "CMakeCache.txt").is_file():
        steps.append([cmake, "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"])
    steps.append([cmake, "--build", str(build), "--target", CPP_TARGET])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            return None, f"building {CPP_TARGET} failed ({' '.join(step[1:3])}): " + " | ".join(tail)
    exe = build / CPP_TARGET
    return (exe, "") if exe.is_file() else (None, f"{CPP_TARGET} was not produced in {build}")


def cpp_case(exe: Path, mode: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    h, w = args.size
    cmd = [str(exe), "--frames", str(args.frames), "--warmup", str(max(args.warmup, 2)), "--mode", mode,
           "--batch", str(batch), "--width", str(w), "--height", str(h), "--memory", args.memory]
    if args.no_graphs:
        cmd.append("--no-graphs")
    done = subprocess.run(cmd, capture_output=True, text=True)
    line = done.stdout.strip().splitlines()[-1:] or [""]
    try:
        row = json.loads(line[0])
    except json.JSONDecodeError:
        raise RuntimeError(f"{exe} gave no figures (exit {done.returncode}): {done.stderr.strip()}") from None
    kind = "VideoSegmenter" if mode == "video" else "Segmenter"
    return {"bench": "cpp_frame_loop", "runtime": f"C++ {kind}", "batch": batch, "memory": row["memory"],
            "cuda_graphs": row["cuda_graphs"], "height": row["height"], "width": row["width"],
            "frames": row["frames"], "median_us": row["median_us"], "p99_us": row["p99_us"],
            "allocations_per_frame": row["cuda_allocs_per_frame"], "syncs_per_frame": row["host_waits_per_frame"],
            "heap_allocs_per_frame": row["heap_allocs_per_frame"], "target_us": CPP_TARGET_US}


# -- report ---------------------------------------------------------------------------------
def meets(row: dict[str, Any]) -> bool:
    return (row["median_us"] <= row["target_us"] and row["allocations_per_frame"] == 0
            and row["syncs_per_frame"] == 1 and row.get("hazards", 0) == 0)


def run(args: argparse.Namespace) -> int:
    from trtnet.cli import CliError, EXIT_USAGE

    if max(args.batch) > 8:
        raise CliError(f"--batch {max(args.batch)}: at most 8 cameras per call", EXIT_USAGE)
    if args.motion_threshold is not None and not args.motion_threshold >= 0:
        raise CliError(f"--motion-threshold must be >= 0, got {args.motion_threshold}", EXIT_USAGE)
    if min(args.size) < 64:
        raise CliError(f"--size {args.size[0]} {args.size[1]}: frames of at least 64x64", EXIT_USAGE)
    rows = [python_case(kind, b, args) for kind in ("Segmenter", "VideoSegmenter") for b in args.batch]
    extra = [mask_assembly(args)]
    cpp_note = "not measured (--no-cpp)"
    if not args.no_cpp:
        exe, why = cpp_bench(args)
        if exe is None:
            cpp_note = f"not measured: {why}"
        else:
            cpp_note = f"measured with {exe}"
            rows += [cpp_case(exe, mode, b, args) for mode in ("image", "video") for b in args.batch]
    if args.json:
        for row in rows + extra:
            print(json.dumps({**row, **({"meets_targets": meets(row)} if "target_us" in row else {})}))
        if args.no_cpp or "not measured" in cpp_note:
            print(json.dumps({"bench": "cpp_frame_loop", "note": cpp_note}))
    else:
        print(f"frame loop host cost over fake engines (engine time zero), {args.size[0]}x{args.size[1]} frames "
              f"in {args.memory} memory, CUDA graphs {'off' if args.no_graphs else 'on'}, {args.frames} frames "
              "after warm-up")
        print(f"{'runtime':<30}{'batch':>6}{'median us':>11}{'p99 us':>9}{'allocs/frame':>14}{'syncs/frame':>13}"
              f"{'target us':>11}  ok")
        for row in rows:
            print(f"{row['runtime']:<30}{row['batch']:>6}{row['median_us']:>11.1f}{row['p99_us']:>9.1f}"
                  f"{row['allocations_per_frame']:>14.3f}{row['syncs_per_frame']:>13.3f}{row['target_us']:>11.0f}"
                  f"  {'yes' if meets(row) else 'NO'}")
        for row in extra:
            print(f"{row['runtime']:<30}{'1':>6}{row['median_us']:>11.1f}{row['p99_us']:>9.1f}   "
                  f"(apart from the loop: {row['detections']} detections, {row['height']}x{row['width']})")
        print(f"C++: {cpp_note}")
        print("targets: Python <= 200 us, C++ <= 30 us median; 0 allocations and 1 host synchronisation per "
              "frame after warm-up (times depend on the machine and its load)")
    return 0 if all(meets(row) for row in rows) else 1
