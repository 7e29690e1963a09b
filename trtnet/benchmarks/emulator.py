"""Time of one keyframe pass of the NumPy emulator (build, run, per-layer-kind breakdown).

``python -m trtnet.bench emulator [--config NAME] [--weights FILE] [--size H W] [--repeat N]``
Weights default to random ones with the shapes of ``trtnet.network.weight_spec.expected_shapes``
(BatchNorm statistics kept sane), so no checkpoint is needed.

``--vs OTHER`` also times config OTHER in the same run (passes interleaved, best of each) and
prints the ratio; ``--dcn`` is ``--config yolact_plus_resnet50 --vs yolact_resnet50``: what the 13
DCNv2 layers (and the 9-anchor head, mask re-scoring) cost on the emulator (target <= 2).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import numpy as np

from trtnet.network.random_weights import random_weights  # noqa: F401 (re-exported)

DEFAULT_CONFIG = "yolact_edge_vid_resnet50"
EXAMPLES = (
    "python -m trtnet.bench emulator --config yolact_edge_mobilenetv2 --profile",
    "python -m trtnet.bench emulator --weights r50.safetensors --size 480 640 --repeat 3",
    "python -m trtnet.bench emulator --dcn      # yolact_plus_resnet50 vs yolact_resnet50, same run",
)
DCN_PAIR = ("yolact_plus_resnet50", "yolact_resnet50")
DCN_RATIO_TARGET = 2.0


def build_model_network(config_name: str = DEFAULT_CONFIG, weights=None, plan=None):
    """The keyframe network of ``config_name`` on a fresh emulator Network (random weights by default)."""
    from trtnet import emulator
    from trtnet.network.yolact_edge import build_keyframe

    net = emulator.Network()
    tensors = build_keyframe(net, emulator.trt, weights if weights is not None else random_weights(config_name),
                             config_name, plan=plan)
    net._trtnet_tensors = tensors  # keep the weight store alive with the network
    return net


def _profile(net, inputs):
    """Run once through the executor, timing each layer kind (patches ``_execute`` meanwhile)."""
    times: dict[str, float] = defaultdict(float)
    originals = {}
    for cls in {type(layer) for layer in net._layers}:
        originals[cls] = cls._execute

        def timed(self, xs, _orig=originals[cls], _name=cls.__name__):
            t0 = time.perf_counter()
            try:
                return _orig(self, xs)
            finally:
                times[_name] += time.perf_counter() - t0

        cls._execute = timed
    try:
        from trtnet import emulator

        emulator.run(net, inputs)
    finally:
        for cls, fn in originals.items():
            cls._execute = fn
    return times


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"config name (default {DEFAULT_CONFIG})")
    parser.add_argument("--weights", default=None, help="checkpoint (.pth/.safetensors); default random weights")
    parser.add_argument("--size", type=int, nargs=2, default=(550, 550), metavar=("H", "W"),
                        help="input frame size (default 550 550: no resize work)")
    parser.add_argument("--precision-plan", "--plan", dest="plan", default=None, metavar="PLAN",
                        help="precision plan, e.g. fp16 (default fp32)")
    parser.add_argument("--repeat", type=int, default=2, help="timed passes (default 2)")
    parser.add_argument("--profile", action="store_true", help="also print time per layer kind")
    parser.add_argument("--vs", default=None, metavar="CONFIG",
                        help="also time CONFIG in the same run (random weights) and print the time ratio")
    parser.add_argument("--dcn", action="store_true",
                        help=f"--config {DCN_PAIR[0]} --vs {DCN_PAIR[1]}: the DCNv2 cost (target ratio <= "
                             f"{DCN_RATIO_TARGET:g})")


def compare(configs: tuple[str, str], size=(550, 550), repeat: int = 2, plan=None) -> dict[str, float]:
    """Best keyframe pass time of each config, passes interleaved in one run (random weights)."""
    from trtnet import emulator, names

    nets = {c: build_model_network(c, None, plan) for c in configs}
    frame = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    best = {c: float("inf") for c in configs}
    for _ in range(max(1, repeat)):
        for c, net in nets.items():
            t0 = time.perf_counter()
            emulator.run(net, {names.INPUT: frame})
            best[c] = min(best[c], time.perf_counter() - t0)
    return best


def _run_vs(args: argparse.Namespace) -> int:
    pair = DCN_PAIR if args.dcn else (args.config, args.vs)
    if args.weights is not None:
        print("trtnet.bench emulator: note: --vs/--dcn time random weights; --weights is ignored")
    best = compare(pair, tuple(args.size), args.repeat, args.plan)
    print(f"emulator: {pair[0]} vs {pair[1]} ({args.plan or 'fp32'}), frame {args.size[0]}x{args.size[1]}, "
          f"best of {max(1, args.repeat)} interleaved passes")
    for c in pair:
        print(f"  {c:28s} {best[c]:7.2f} s")
    ratio = best[pair[0]] / best[pair[1]]
    target = f" (target <= {DCN_RATIO_TARGET:g})" if tuple(pair) == DCN_PAIR else ""
    print(f"  ratio {pair[0]} / {pair[1]} = {ratio:.2f}{target}")
    return 0


def run(args: argparse.Namespace) -> int:
    from trtnet import emulator, names

    if getattr(args, "dcn", False) or getattr(args, "vs", None):
        return _run_vs(args)
    t0 = time.perf_counter()
    net = build_model_network(args.config, args.weights, args.plan)
    t_build = time.perf_counter() - t0
    frame = np.random.default_rng(0).integers(0, 256, (1, *args.size, 3), dtype=np.uint8)
    print(f"emulator: {args.config} ({args.plan or 'fp32'}), {len(net._layers)} layers, "
          f"frame {args.size[0]}x{args.size[1]}")
    print(f"  build       {t_build:7.2f} s")
    best = float("inf")
    for i in range(max(1, args.repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        out = emulator.run(net, {names.INPUT: frame})
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        best = min(best, dt)
        print(f"  pass {i + 1}      {dt:7.2f} s wall, {cpu:6.2f} s CPU (all threads)")
    count = out.get(names.DET_COUNT)
    print(f"  best pass   {best:7.2f} s  (detections: {int(count[0]) if count is not None else '?'})")
    try:
        import resource

        print(f"  peak RSS    {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.0f} MiB")
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall time grows with other load)")
    if args.profile:
        times = _profile(net, {names.INPUT: frame})
        for name, t in sorted(times.items(), key=lambda kv: -kv[1]):
            print(f"    {name:24s} {t:7.2f} s")
    return 0
