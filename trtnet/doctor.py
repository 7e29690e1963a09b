"""``python -m trtnet.doctor`` (``trtnet doctor``): check a machine before anything else.

The first command on a new Jetson or desktop, and the one to run the day a GPU is lent to us.
It reports the versions (TensorRT, CUDA driver and runtime, CuPy, the TensorRT major the plugin
library was compiled against), the GPU (name, compute capability, memory), the plugin creators
in TensorRT's registry (trtnet's FastNMS and InverseWarp, libnvinfer_plugin's
ModulatedDeformConv2d for DCN), then runs on the GPU: a tiny engine per trtnet plugin against
its host twin (:mod:`trtnet.plugins.reference`), the mask kernels against their CPU twin
(:mod:`trtnet.runtime.masks`, csrc/masks), a CUDA-graph replay against a plain run, inputs
produced on another stream, and with ``--reference CASE_DIR`` an fp16 engine of the case's
network against the emulator. A table of pass / fail / skipped with timings; exit 1 when a
check fails. Without a GPU every GPU check is skipped with the reason, and the exit is 0.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtnet import __version__, cli, names
from trtnet.plugins import FAST_NMS, INVERSE_WARP
from trtnet.plugins.reference import fast_nms as fast_nms_twin
from trtnet.plugins.reference import inverse_warp as inverse_warp_twin

PROG = "python -m trtnet.doctor"
EXAMPLES = (
    "python -m trtnet.doctor",
    "trtnet doctor --reference ../shared/reference/mobilenetv2",
    "python -m trtnet.doctor --plugin-library build/libtrtnet_plugins.so",
)

# libnvinfer_plugin's deformable convolution (NVIDIA/TensorRT plugin/modulatedDeformConvPlugin/
# modulatedDeformConvPlugin.cpp: PLUGIN_NAME "ModulatedDeformConv2d", PLUGIN_VERSION "2" for the
# IPluginV3 one; "1" is the IPluginV2DynamicExt one it replaced), default namespace "".
DCN_PLUGIN = ("ModulatedDeformConv2d", ("2", "1"), "")

# fp16 engine vs the emulator's fp16 network: trtnet.verify's fp32 targets scaled by 20, the
# factor its --help gives for fp16 plans (the emulator rounds each layer to fp16, TensorRT
# fuses layers and may accumulate in fp32: the two differ by fp16 rounding, not more).
FP16_FACTOR = 20.0

PASS, FAIL, SKIP = "pass", "fail", "skipped"


class Skipped(Exception):
    """The check cannot run here; the message says why (not a failure)."""


class Failed(Exception):
    """The check ran and its result is wrong; the message says how."""


@dataclass
class Row:
    name: str
    status: str
    seconds: float
    detail: str


@dataclass
class Machine:
    """What the checks share: the modules found, the GPU, the plugin library (found once)."""

    plugin_library: Path | None = None
    reference: Path | None = None
    trt: Any = None
    trt_reason: str = ""
    cupy: Any = None
    gpu_reason: str = ""
    loaded: str | None = None  # None: not tried; "": loaded; else why not
    engines: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            import cupy  # optional dependency

            count = int(cupy.cuda.runtime.getDeviceCount())
            if count < 1:
                raise RuntimeError("CUDA reports 0 devices")
            self.cupy = cupy
        except Exception as exc:  # noqa: BLE001 - no CuPy, no driver, no device: all say "no GPU"
            self.gpu_reason = f"no CUDA GPU ({_reason(exc)})"
        try:
            import tensorrt as trt  # optional dependency

            self.trt = trt
        except Exception as exc:  # noqa: BLE001
            self.trt_reason = f"TensorRT is not installed ({_reason(exc)})"

    def need_trt(self) -> Any:
        """TensorRT: without it a machine with a GPU fails, one without skips."""
        if self.trt is None:
            if self.cupy is None:
                raise Skipped(self.trt_reason)
            raise Failed(f"{self.trt_reason}: this machine has a GPU but cannot run engines; pip install tensorrt")
        return self.trt

    def need_gpu(self) -> Any:
        if self.cupy is None:
            raise Skipped(self.gpu_reason)
        return self.cupy

    def need_plugins(self) -> Any:
        """TensorRT with trtnet's creators registered (plugins.load, tried once)."""
        trt = self.need_trt()
        if self.loaded is None:
            from trtnet import plugins

            try:
                plugins.load(self.plugin_library)
                self.loaded = ""
            except (OSError, ImportError, RuntimeError) as exc:
                self.loaded = _reason(exc)
        if self.loaded:
            text = f"the plugin library could not be loaded: {self.loaded}"
            if self.cupy is None:  # no GPU: nothing this machine is meant to run
                raise Skipped(f"{self.gpu_reason}; {text}")
            raise Failed(text)
        return trt


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {cli.message_of(exc)}".splitlines()[0][:300]


# -- versions and the GPU -----------------------------------------------------------------


def check_tensorrt(m: Machine) -> str:
    trt = m.need_trt()
    return f"TensorRT {getattr(trt, '__version__', '?')}"


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"  # cudaDriverGetVersion: 1000 * major + 10 * minor


def check_cuda(m: Machine) -> str:
    cupy = m.need_gpu()
    driver = int(cupy.cuda.runtime.driverGetVersion())
    runtime = int(cupy.cuda.runtime.runtimeGetVersion())
    text = f"driver {_cuda_version(driver)}, runtime {_cuda_version(runtime)}"
    # A driver older than the runtime's major cannot run it (CUDA minor-version compatibility
    # covers only minors within a major).
    if driver // 1000 < runtime // 1000:
        raise Failed(f"{text}: the driver is older than the CUDA runtime's major; update the driver")
    return text


def check_cupy(m: Machine) -> str:
    cupy = m.need_gpu()
    return f"CuPy {getattr(cupy, '__version__', '?')}"


_HEADERS_MAJOR = (re.compile(rb"compiled against TensorRT (\d+)\.x headers"), re.compile(rb"libnvinfer\.so\.(\d+)"))


def headers_major(library: Path) -> int | None:
    """The TensorRT major libtrtnet_plugins.so was compiled against, read from its own strings
    (plugins/trtnet_plugins.cpp embeds NV_TENSORRT_MAJOR in its mismatch message and in the
    libnvinfer soname it looks up); None when neither is there."""
    data = library.read_bytes()
    for pattern in _HEADERS_MAJOR:
        found = pattern.search(data)
        if found:
            return int(found.group(1))
    return None


def check_plugin_library(m: Machine) -> str:
    from trtnet import plugins

    try:
        path = m.plugin_library or plugins.library_path()
    except FileNotFoundError as exc:
        text = cli.message_of(exc).splitlines()[0].removesuffix(" Looked in:")
        if m.cupy is None:
            raise Skipped(f"not built here: {text}") from None
        raise Failed(text) from None
    if not Path(path).is_file():
        raise Failed(f"{path}: no such file")
    major = headers_major(Path(path))
    text = f"{path}, TensorRT {major if major is not None else '?'}.x headers"
    if m.trt is not None and major is not None:
        found = re.match(r"(\d+)\.", str(getattr(m.trt, "__version__", "")))
        runtime_major = int(found.group(1)) if found else None
        if runtime_major is not None and runtime_major != major:
            raise Failed(f"{text}, but this TensorRT is {m.trt.__version__}: rebuild the library against it")
    return text


def check_gpu(m: Machine) -> str:
    cupy = m.need_gpu()
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return (f"{name}, compute capability {props['major']}.{props['minor']}, "
            f"{int(props['totalGlobalMem']) / 2**30:.1f} GiB")


# -- the plugin registry --------------------------------------------------------------------


def _registered(trt: Any, name: str, versions: Sequence[str], namespace: str) -> str:
    registry = trt.get_plugin_registry()
    for version in versions:
        creator = registry.get_creator(name, version, namespace)
        if creator is not None:
            return f"{name} version {version} in namespace {namespace!r}"
    raise Failed(f"no creator {name} (version {' or '.join(versions)}, namespace {namespace!r}) in TensorRT's "
                 "plugin registry")


def registry_check(spec: Any) -> Callable[[Machine], str]:
    def check(m: Machine) -> str:
        return _registered(m.need_plugins(), spec.name, (spec.version,), spec.namespace)
    return check


def check_dcn_registry(m: Machine) -> str:
    trt = m.need_trt()
    init = getattr(trt, "init_libnvinfer_plugins", None)
    if init is None:
        raise Failed("this tensorrt module has no init_libnvinfer_plugins (libnvinfer_plugin missing?)")
    if not init(trt.Logger(trt.Logger.WARNING), ""):
        text = "init_libnvinfer_plugins failed: libnvinfer_plugin could not register its creators"
        if m.cupy is None:
            raise Skipped(f"{m.gpu_reason}; {text}")
        raise Failed(text)
    name, versions, namespace = DCN_PLUGIN
    return _registered(trt, name, versions, namespace) + " (libnvinfer_plugin, for DCNv2)"


# -- tiny engines -----------------------------------------------------------------------------


def build_tiny(trt: Any, define: Callable[[Any, Any], None], shapes: dict[str, tuple]) -> bytes:
    """A serialized engine of a network ``define(network, trt)`` adds layers to; ``shapes``:
    input name -> its one shape (the profile's min = opt = max). TF32 off, as trtnet.build."""
    from trtnet.builder.engine import BuilderSettings, configure_builder

    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    define(network, trt)
    profile = builder.create_optimization_profile()
    for name, shape in shapes.items():
        profile.set_shape(name, shape, shape, shape)
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    configure_builder(trt, config, BuilderSettings())
    data = builder.build_serialized_network(network, config)
    if data is None:
        raise Failed("TensorRT could not build the engine (its log above says why)")
    return bytes(memoryview(data))


def _engine(m: Machine, data: bytes, **kwargs: Any) -> Any:
    from trtnet.runtime import Engine

    return Engine(data, load_plugins=False, trt=m.trt, cupy=m.cupy, **kwargs)


def _host(outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    from trtnet.runtime.segmenter import host_array

    return {k: np.array(host_array(v)) for k, v in outputs.items()}  # a copy: engines reuse their buffers


def _plugin_network(spec: Any, inputs: dict[str, np.ndarray], fields: dict[str, Any],
                    outputs: Sequence[str]) -> Callable[[Any, Any], None]:
    def define(network: Any, trt: Any) -> None:
        creator = trt.get_plugin_registry().get_creator(spec.name, spec.version, spec.namespace)
        if creator is None:
            raise Failed(f"no {spec.name} creator in the registry")
        plugin = spec.create_plugin(trt, creator, f"doctor_{spec.name}", fields)
        tensors = [network.add_input(n, trt.DataType.FLOAT, (-1, *a.shape[1:])) for n, a in inputs.items()]
        layer = network.add_plugin_v3(tensors, [], plugin)
        layer.name = f"doctor_{spec.name}"
        for i, name in enumerate(outputs):
            out = layer.get_output(i)
            out.name = name
            network.mark_output(out)
    return define


def nms_inputs(seed: int = 0, anchors: int = 96, classes: int = 5, k: int = 8) -> dict[str, np.ndarray]:
    """Boxes with area, softmax scores, tanh coefficients: a small Fast NMS case."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 0.8, (1, anchors, 2)).astype(np.float32)
    wh = rng.uniform(0.05, 0.3, (1, anchors, 2)).astype(np.float32)
    logits = rng.normal(0, 2, (1, anchors, classes)).astype(np.float32)
    scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return {"boxes": np.concatenate([xy, xy + wh], -1).astype(np.float32), "scores": scores.astype(np.float32),
            "coeffs": np.tanh(rng.normal(0, 1, (1, anchors, k))).astype(np.float32)}


NMS_FIELDS = {"top_k": 10, "conf_thresh": 0.4, "nms_thresh": 0.3, "max_det": 64, "background_class": 0}
NMS_OUTPUTS = ("count", "det_boxes", "det_scores", "det_classes", "det_coeffs")


def check_fast_nms_engine(m: Machine) -> str:
    m.need_gpu()
    trt = m.need_plugins()
    inputs = nms_inputs()
    data = build_tiny(trt, _plugin_network(FAST_NMS, inputs, NMS_FIELDS, NMS_OUTPUTS),
                      {n: a.shape for n, a in inputs.items()})
    got = _host(_engine(m, data).run(inputs))
    want = dict(zip(NMS_OUTPUTS, fast_nms_twin(inputs["boxes"], inputs["scores"], inputs["coeffs"], **NMS_FIELDS)))
    # Exact: the kept boxes, scores and coefficients are copies of the inputs, the count and the
    # classes integers; the random case has no ties and no IoU on the threshold.
    bad = [n for n in NMS_OUTPUTS if got[n].shape != want[n].shape or not np.array_equal(got[n], want[n])]
    if bad:
        raise Failed(f"differs from the host twin in {', '.join(bad)} (count {got['count'].tolist()} vs "
                     f"{want['count'].tolist()})")
    return f"{int(want['count'][0])} detections equal to the host twin's"


WARP_RTOL = 1e-5  # x max|twin|: float32 bilinear taps summed in another order (and FMA on the GPU)


def warp_inputs(seed: int = 1, c: int = 8, h: int = 12, w: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"feature": rng.normal(0, 1, (1, c, h, w)).astype(np.float32),
            "flow": rng.normal(0, 2, (1, 2, h, w)).astype(np.float32),
            "scale": rng.uniform(0.5, 1.5, (1, c, h, w)).astype(np.float32),
            "bias": rng.normal(0, 0.1, (1, c, h, w)).astype(np.float32)}


def check_inverse_warp_engine(m: Machine) -> str:
    m.need_gpu()
    trt = m.need_plugins()
    inputs = warp_inputs()
    fields = {"flow_divisor": 8.0, "num_inputs": 4}
    data = build_tiny(trt, _plugin_network(INVERSE_WARP, inputs, fields, ("warped",)),
                      {n: a.shape for n, a in inputs.items()})
    got = _host(_engine(m, data).run(inputs))["warped"]
    want = inverse_warp_twin(inputs["feature"], inputs["flow"], inputs["scale"], inputs["bias"], flow_divisor=8.0)
    if got.shape != want.shape:
        raise Failed(f"shape {got.shape}, the host twin's {want.shape}")
    err, bound = float(np.abs(got - want).max()), WARP_RTOL * float(np.abs(want).max())
    if not err <= bound:
        raise Failed(f"max |engine - host twin| {err:.3g} > {bound:.3g} ({WARP_RTOL:g} x max|twin|)")
    return f"max |engine - host twin| {err:.2g} <= {bound:.2g}"


# -- masks, CUDA graphs, streams -------------------------------------------------------------


MASK_ATOL = 1e-5  # probabilities in [0, 1]: a few float32 ulps between the kernels and the twin


def mask_inputs(seed: int = 2, d: int = 6, k: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    protos = rng.normal(0, 1, (138, 138, k)).astype(np.float32)
    coeffs = np.tanh(rng.normal(0, 1, (d, k))).astype(np.float32)
    xy = rng.uniform(0, 0.6, (d, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(0.1, 0.4, (d, 2)).astype(np.float32)], 1)
    return protos, coeffs, boxes


def check_masks(m: Machine) -> str:
    cupy = m.need_gpu()
    from trtnet.plugins import extension as ext
    from trtnet.runtime import masks

    protos, coeffs, boxes = mask_inputs()
    hw = (240, 320)
    dev = [cupy.asarray(a) for a in (protos, coeffs, boxes)]
    kernels = ext.HAS_CUDA and hasattr(getattr(ext, "_C", None), "assemble_masks") and \
        all(hasattr(getattr(a, "data", None), "ptr") for a in dev)
    path = "CUDA kernels (csrc/masks)" if kernels else \
        "CuPy array code (the kernels need trtnet._C built with CUDA and CuPy device arrays)"
    prob = np.asarray(cupy.asnumpy(masks.assemble_masks(*dev, frame_hw=hw, threshold=None)))
    mask = np.asarray(cupy.asnumpy(masks.assemble_masks(*dev, frame_hw=hw)))
    twin_prob = masks.assemble_masks(protos, coeffs, boxes, frame_hw=hw, threshold=None)
    twin_mask = masks.assemble_masks(protos, coeffs, boxes, frame_hw=hw)
    err = float(np.abs(prob - twin_prob).max())
    if not err <= MASK_ATOL:
        raise Failed(f"{path}: max |probability - twin| {err:.3g} > {MASK_ATOL:g}")
    # A mask pixel may differ only where the twin's probability is within the tolerance of 0.5.
    flipped = (mask != twin_mask) & (np.abs(twin_prob - 0.5) > MASK_ATOL)
    if flipped.any():
        raise Failed(f"{path}: {int(flipped.sum())} mask pixels differ from the twin away from the threshold")
    return f"{path}: {len(coeffs)} masks at {hw[0]}x{hw[1]}, max |probability - twin| {err:.2g}"


SUMS = "doctor/frame_sums"


def _sums_network(network: Any, trt: Any) -> None:
    """frame uint8 [1,H,W,3] -> per-channel sums float32 [1,3] (exact: integers below 2^24)."""
    frame = network.add_input(names.INPUT, trt.DataType.UINT8, (1, -1, -1, 3))
    as_float = network.add_cast(frame, trt.DataType.FLOAT)
    as_float.name = "doctor/to_float"
    total = network.add_reduce(as_float.get_output(0), trt.ReduceOperation.SUM, 0b0110, False)
    total.name = SUMS
    total.get_output(0).name = SUMS
    network.mark_output(total.get_output(0))


def _frames(count: int, hw: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (1, *hw, 3), dtype=np.uint8) for _ in range(count)]


def _sums(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).sum(0, dtype=np.int64).astype(np.float32)[None]


def _sums_engine(m: Machine) -> bytes:
    if "sums" not in m.engines:
        m.engines["sums"] = build_tiny(m.trt, _sums_network, {names.INPUT: (1, 48, 64, 3)})
    return m.engines["sums"]


def check_cuda_graph(m: Machine) -> str:
    m.need_gpu()
    m.need_trt()
    data = _sums_engine(m)
    plain, graphed = _engine(m, data), _engine(m, data, cuda_graph=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, frame in enumerate(_frames(4)):  # run 1 plain, 2 captured + launched, 3-4 replayed
            a = _host(graphed.run({names.INPUT: frame}))[SUMS]
            b = _host(plain.run({names.INPUT: frame}))[SUMS]
            if not (np.array_equal(a, b) and np.array_equal(b, _sums(frame))):
                raise Failed(f"run {i + 1}: graph {a.tolist()}, plain {b.tolist()}, expected {_sums(frame).tolist()}")
    if caught:
        raise Failed(f"the capture failed: {caught[0].message}")
    graphs = list(getattr(graphed, "_graphs", {}).values())  # kept only while replayed (runtime.engine)
    if not graphs:
        raise Failed("no CUDA graph was captured in 4 runs of one shape")
    launches = [getattr(g, "launches", None) for g in graphs]  # counted by the test fakes only
    counted = f", {sum(launches)} graph launches" if None not in launches else ""
    return f"4 runs (plain, capture, 2 replays){counted}, equal to the plain runs"


def check_stream_order(m: Machine, elements: int = 1 << 22, steps: int = 20) -> str:
    """The frame is made on a side stream by a long chain of kernels and handed to the engine
    while that stream is current and still busy: the engine must read the finished frame."""
    cupy = m.need_gpu()
    m.need_trt()
    engine = _engine(m, _sums_engine(m))
    frame = _frames(1)[0]
    side = cupy.cuda.Stream(non_blocking=True)
    with side:
        busy = cupy.zeros((elements,), cupy.float32)
        for _ in range(steps):
            busy = busy * np.float32(0.5) + np.float32(1)
        zero = (busy[: frame.size] * np.float32(0)).astype(cupy.uint8).reshape(frame.shape)
        device_frame = zero + cupy.asarray(frame)  # ready only once the chain is done
        got = _host(engine.run({names.INPUT: device_frame}))[SUMS]
    side.synchronize()
    if not np.array_equal(got, _sums(frame)):
        raise Failed(f"the engine read its input before the producing stream finished (sums {got.tolist()}, "
                     f"expected {_sums(frame).tolist()}): the runtime must order its stream after the caller's")
    return "a frame made on another stream was read after that stream finished it"


# -- the reference network in fp16 ------------------------------------------------------------


def check_reference_fp16(m: Machine) -> str:
    if m.reference is None:
        raise Skipped("no --reference CASE_DIR given")
    m.need_gpu()
    m.need_plugins()
    from trtnet.builder.engine import build_engine
    from trtnet.config import get_config
    from trtnet.network.weights import WeightStore
    from trtnet.precision import as_plan
    from trtnet.runtime import EmulatedEngine
    from trtnet.verification.compare import FP32
    from trtnet.verification.reference_data import ReferenceCase

    ref = ReferenceCase(m.reference)
    config = get_config(ref.config_name)
    store = WeightStore.load(ref.weights_path)
    key = next(p for p in ref.passes if not ref.is_video_nonkey(p))
    frame = np.ascontiguousarray(ref.image(key)[None])
    hw = frame.shape[1:3]  # a one-shape profile: the least memory and build time
    engine = _engine(m, build_engine(m.trt, store, config, plan=as_plan("fp16"), min_frame=hw, opt_frame=hw,
                                     max_frame=hw))  # with the plugins m loaded
    got = _host(engine.run({names.INPUT: frame}))
    want = EmulatedEngine(store, config, plan="fp16").run({names.INPUT: frame})
    tol = FP32.scaled(FP16_FACTOR)
    proto_err = float(np.abs(got[names.PROTO].astype(np.float32) - want[names.PROTO]).max())
    proto_bound = tol.feature_rtol * float(np.abs(want[names.PROTO]).max())
    problems = [] if proto_err <= proto_bound else [f"protos max error {proto_err:.3g} > {proto_bound:.3g}"]
    matched, score_err, box_err, missing = match_detections(got, want, tol.score_atol, tol.box_atol,
                                                            float(config.detect.conf_thresh))
    if missing:
        problems.append(f"{len(missing)} detections without a match (engine/emulator index {missing[:5]})")
    figures = (f"{config.name} pass {key}: {matched} detections matched, proto error {proto_err:.2g} "
               f"(<= {proto_bound:.2g}), score error {score_err:.2g}, box error {box_err:.2g} "
               f"(<= {tol.score_atol:g}, {tol.box_atol:g})")
    if problems:
        raise Failed(f"{figures}: {'; '.join(problems)}")
    return figures


def match_detections(got: dict[str, np.ndarray], want: dict[str, np.ndarray], score_atol: float,
                     box_atol: float, conf_thresh: float) -> tuple[int, float, float, list[str]]:
    """One-to-one matching of two detection sets (same class, score and box within the
    tolerances): (matched, worst score error, worst box error, the unmatched ones). A detection
    may go unmatched only at an edge a rounding can move it over: its score within
    ``score_atol`` of the confidence threshold or of the last kept score (the capacity's cut)."""
    sets = []
    for out in (got, want):
        n = int(out[names.DET_COUNT][0])
        sets.append((out[names.DET_CLASSES][0, :n], out[names.DET_SCORES][0, :n].astype(np.float32),
                     out[names.DET_BOXES][0, :n].astype(np.float32)))
    (gc, gs, gb), (wc, ws, wb) = sets
    used: set[int] = set()
    score_err = box_err = 0.0
    unmatched_want = []
    for i in range(len(wc)):
        errors = [(float(np.abs(gb[j] - wb[i]).max()), j) for j in range(len(gc))
                  if j not in used and gc[j] == wc[i] and abs(float(gs[j] - ws[i])) <= score_atol]
        errors = [(e, j) for e, j in errors if e <= box_atol]
        if not errors:
            unmatched_want.append(i)
            continue
        e, j = min(errors)
        used.add(j)
        score_err, box_err = max(score_err, abs(float(gs[j] - ws[i]))), max(box_err, e)

    def at_edge(scores: np.ndarray, k: int) -> bool:
        cut = float(scores[-1]) if len(scores) else conf_thresh
        return min(abs(float(scores[k]) - conf_thresh), abs(float(scores[k]) - cut)) <= score_atol

    missing = [f"emulator {i}" for i in unmatched_want if not at_edge(ws, i)]
    missing += [f"engine {j}" for j in range(len(gc)) if j not in used and not at_edge(gs, j)]
    return len(used), score_err, box_err, missing


CHECKS: tuple[tuple[str, Callable[[Machine], str]], ...] = (
    ("TensorRT", check_tensorrt),
    ("CUDA driver / runtime", check_cuda),
    ("CuPy", check_cupy),
    ("plugin library", check_plugin_library),
    ("GPU", check_gpu),
    (f"registry: {FAST_NMS.name}", registry_check(FAST_NMS)),
    (f"registry: {INVERSE_WARP.name}", registry_check(INVERSE_WARP)),
    (f"registry: {DCN_PLUGIN[0]}", check_dcn_registry),
    (f"engine: {FAST_NMS.name} vs host twin", check_fast_nms_engine),
    (f"engine: {INVERSE_WARP.name} vs host twin", check_inverse_warp_engine),
    ("mask kernels vs twin", check_masks),
    ("CUDA graph replay = plain run", check_cuda_graph),
    ("stream order of inputs", check_stream_order),
    ("fp16 reference engine vs emulator", check_reference_fp16),
)


def run_checks(machine: Machine, checks: Sequence[tuple[str, Callable[[Machine], str]]] = CHECKS) -> list[Row]:
    """Every check, timed; a check's own error is its row's failure, never the end of the run."""
    rows = []
    for name, check in checks:
        start = time.perf_counter()
        try:
            status, detail = PASS, check(machine)
        except Skipped as exc:
            status, detail = SKIP, str(exc)
        except Failed as exc:
            status, detail = FAIL, str(exc)
        except Exception as exc:  # noqa: BLE001 - an unexpected error is a failed check, with its cause
            status, detail = FAIL, _reason(exc)
        rows.append(Row(name, status, time.perf_counter() - start, detail))
    return rows


def format_rows(rows: Sequence[Row]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"{'check':<{width}}  {'result':<7}  {'time':>7}  detail"]
    lines += [f"{r.name:<{width}}  {r.status:<7}  {r.seconds:>6.2f}s  {r.detail}" for r in rows]
    counts = {s: sum(r.status == s for r in rows) for s in (PASS, FAIL, SKIP)}
    lines.append(f"\n{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped "
                 f"in {sum(r.seconds for r in rows):.1f} s")
    why: dict[str, list[str]] = {}
    for r in rows:
        if r.status == SKIP:
            why.setdefault(r.detail, []).append(r.name)
    if why:
        lines.append("not checked here:")
        lines += [f"  {', '.join(checks)}: {reason}" for reason, checks in why.items()]
    return "\n".join(lines)


def make_parser():
    p = cli.make_parser(PROG, "Check a machine: versions, the GPU, the plugin registry, then tiny engines, "
                              "the mask kernels, CUDA graphs and stream order on the GPU. Without a GPU the "
                              "GPU checks are skipped (with the reason) and the exit status is 0.", EXAMPLES)
    p.add_argument("--version", action="version", version=f"trtnet {__version__}")
    p.add_argument("--plugin-library", type=Path, default=None, metavar="FILE",
                   help="libtrtnet_plugins.so to check (default: found by trtnet.plugins.library_path())")
    p.add_argument("--reference", type=Path, default=None, metavar="CASE_DIR",
                   help="a reference case folder (manifest.json, inputs.npz, outputs.npz, weights): also build "
                        "an fp16 engine of its network and compare it with the emulator")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)

    def body() -> int:
        if args.reference is not None:
            cli.input_dir(args.reference, "reference case folder")
        if args.plugin_library is not None:
            cli.input_file(args.plugin_library, "plugin library")
        rows = run_checks(Machine(plugin_library=args.plugin_library, reference=args.reference))
        print(format_rows(rows))
        return cli.EXIT_FAILURE if any(r.status == FAIL for r in rows) else cli.EXIT_OK

    return cli.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
