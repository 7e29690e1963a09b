"""C++ runtime (csrc/runtime): its logic against a fake TensorRT + CUDA, its TensorRT/CUDA
backend and example compiled against both TensorRT header sets, and the installed package
used by a consumer project through find_package(trtnet).

Nothing here runs an engine: the fake backend (csrc/runtime/tests/fake_backend.h) computes
recognisable values, and the libnvinfer the link tests use is a stub whose runtime factory
returns nullptr (csrc/runtime/tests/nvinfer_stub.cpp).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import trt_headers
from trtnet import names
from trtnet.runtime import profiling

REPO = Path(__file__).resolve().parent.parent
RUNTIME = REPO / "csrc" / "runtime"
HEADER = RUNTIME / "trtnet.h"
CORE_SOURCES = ["engine_runner.cpp", "sidecar.cpp", "segmenter.cpp"]
TEST_SOURCE = RUNTIME / "tests" / "runtime_test.cpp"
CUDA_ROOT = Path(os.environ.get("CUDA_HOME") or "/usr/local/cuda")


def _cxx() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    assert cxx, "the C++ runtime tests need a C++ compiler (g++ or clang++)"
    return cxx


def _run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def _compile_all(jobs: list[list[str]], what: str) -> None:
    """Runs compiler commands two at a time (the machine has two cores)."""
    pending = list(jobs)
    while pending:
        batch, pending = pending[:2], pending[2:]
        procs = [subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for cmd in batch]
        for cmd, proc in zip(batch, procs):
            out, err = proc.communicate()
            assert proc.returncode == 0, f"{what}: {' '.join(map(str, cmd))}\n{err[-5000:]}"


# ---- names ---------------------------------------------------------------------------------

def _constants(namespace: str) -> dict[str, str]:
    text = HEADER.read_text()
    body = re.search(rf"namespace {namespace} {{(.*?)}}  // namespace {namespace}", text, re.S)
    assert body, f"namespace {namespace} not found in {HEADER}"
    return dict(re.findall(r'constexpr char const\* (k\w+) = "([^"]+)";', body.group(1)))


def test_cpp_tensor_names_are_the_ones_of_names_py():
    expected = {"kInput": names.INPUT, "kProto": names.PROTO, "kDetCount": names.DET_COUNT,
                "kDetBoxes": names.DET_BOXES, "kDetScores": names.DET_SCORES,
                "kDetClasses": names.DET_CLASSES, "kDetCoeffs": names.DET_COEFFS, "kMaskScores": names.MASK_SCORES,
                "kFpn1Lateral3": names.FPN1_LATERAL3, "kFpn1P4": names.FPN1_P4, "kFpn1P5": names.FPN1_P5,
                "kKeyLateral3": names.KEY_LATERAL3, "kKeyFpn1P4": names.KEY_FPN1_P4,
                "kKeyFpn1P5": names.KEY_FPN1_P5, "kFlowMotion": names.FLOW_MOTION}
    assert _constants("names") == expected


def test_cpp_keyframe_state_links_are_the_networks():
    from trtnet.network.yolact_edge import STATE_INPUTS

    cpp = _constants("names")
    links = re.findall(r"\{names::(k\w+), names::(k\w+)\}", (RUNTIME / "segmenter.cpp").read_text())
    assert {cpp[a]: cpp[b] for a, b in links} == STATE_INPUTS


def test_cpp_nvtx_ranges_are_the_python_runtimes():
    expected = {"kDomain": profiling.DOMAIN, "kUpload": profiling.UPLOAD,
                "kKeyframeEngine": profiling.KEYFRAME_ENGINE, "kNonKeyframeEngine": profiling.NONKEYFRAME_ENGINE,
                "kMasks": profiling.MASKS, "kPostprocess": profiling.POSTPROCESS}
    assert _constants("nvtx") == expected


# ---- logic against the fake backend (ASan + UBSan) -------------------------------------------

FAKE_TESTS = re.findall(r"^TEST\((\w+)\)", TEST_SOURCE.read_text(), re.M)


@pytest.fixture(scope="module")
def runtime_test(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runtime_test")
    flags = ["-std=c++17", "-O0", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
             "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-Werror", "-I", RUNTIME, "-I", REPO / "plugins"]
    sources = [RUNTIME / s for s in CORE_SOURCES] + [TEST_SOURCE]
    start = time.monotonic()
    _compile_all([[_cxx(), *flags, "-c", src, "-o", out / (src.stem + ".o")] for src in sources], "runtime_test")
    binary = out / "runtime_test"
    _run([_cxx(), "-fsanitize=address,undefined", *[out / (s.stem + ".o") for s in sources], "-o", binary], "link")
    print(f"runtime_test built in {time.monotonic() - start:.1f} s")
    return binary


def test_every_fake_backend_test_is_collected(runtime_test):
    listed = _run([runtime_test, "--list"], "runtime_test --list").stdout.split()
    assert listed == FAKE_TESTS and len(FAKE_TESTS) >= 30


@pytest.mark.parametrize("name", FAKE_TESTS)
def test_runtime_logic_on_the_fake_backend(runtime_test, name):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(runtime_test), name], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and f"ok   {name}" in run.stdout, run.stdout[-3000:] + run.stderr[-6000:]


# ---- the TensorRT/CUDA side against both header sets ----------------------------------------

@trt_headers.params()
def test_backend_example_and_stub_compile_against_tensorrt_headers(major, tmp_path):
    include = trt_headers.header_set(major)  # both majors; a missing one fails in CI
    assert (CUDA_ROOT / "include" / "cuda_runtime_api.h").is_file(), f"CUDA headers missing under {CUDA_ROOT}"
    flags = ["-std=c++17", "-O0", "-fPIC", "-Wall", "-Wextra", "-Werror", "-isystem", include,
             "-isystem", CUDA_ROOT / "include", "-I", RUNTIME, "-I", REPO / "plugins", "-I", REPO / "csrc" / "masks"]
    sources = [RUNTIME / "tensorrt_backend.cpp", RUNTIME / "trtnet_segment.cpp", RUNTIME / "tests" / "nvinfer_stub.cpp"]
    _compile_all([[_cxx(), *flags, "-c", s, "-o", tmp_path / (s.stem + ".o")] for s in sources], f"TensorRT {major}")
    # The stub defines what the backend needs from libnvinfer beyond the headers' inline code.
    undefined = _run(["nm", "-C", "--undefined-only", tmp_path / "tensorrt_backend.o"], "nm").stdout
    defined = _run(["nm", "--defined-only", tmp_path / "nvinfer_stub.o"], "nm").stdout
    for symbol in ("createInferRuntime_INTERNAL", "getInferLibVersion"):
        assert symbol in undefined and symbol in defined
    assert not re.search(r"nvinfer1::(?!.*::~)", undefined), f"a TensorRT symbol the stub lacks:\n{undefined}"
    # TensorRT's own plugin library (YOLACT++'s ModulatedDeformConv2d) is dlopen'ed and its
    # initLibNvInferPlugins looked up by name when an engine needs it: never linked.
    assert "initLibNvInferPlugins" not in undefined and "dlopen" in undefined and "dlsym" in undefined
    assert b"initLibNvInferPlugins\0" in (tmp_path / "tensorrt_backend.o").read_bytes()


# ---- install tree + find_package consumer -----------------------------------------------------

def _stub_tensorrt(root: Path, major: str) -> Path:
    """TensorRT_ROOT with the real headers (linked, not copied) and a stub lib/libnvinfer.so."""
    (root / "lib").mkdir(parents=True)
    (root / "include").symlink_to(trt_headers.header_set(major))
    soname = "libnvinfer.so." + major  # as TensorRT installs it: libnvinfer.so -> .so.N
    _run([_cxx(), "-std=c++17", "-shared", "-fPIC", "-isystem", root / "include", "-isystem", CUDA_ROOT / "include",
          RUNTIME / "tests" / "nvinfer_stub.cpp", "-Wl,-soname," + soname, "-o", root / "lib" / soname],
         "stub libnvinfer")
    (root / "lib" / "libnvinfer.so").symlink_to(soname)
    return root


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """trtnet built (one CUDA architecture, PTX only: fast) and installed against TensorRT 11 headers."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake is needed to build the C++ runtime", pytrace=False)
    work = tmp_path_factory.mktemp("install")
    trt = _stub_tensorrt(work / "tensorrt", "11")
    build, prefix = work / "build", work / "prefix"
    start = time.monotonic()
    configure = _run(["cmake", "-S", REPO, "-B", build, f"-DTensorRT_ROOT={trt}", "-DTRTNET_PYTHON=OFF",
                      "-DTRTNET_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=75-virtual", "-DCMAKE_BUILD_TYPE=Debug",
                      "-DCMAKE_CXX_FLAGS=-O0", "-DCMAKE_CUDA_FLAGS=-O0", f"-DCMAKE_INSTALL_PREFIX={prefix}"],
                     "cmake configure")
    assert "trtnet: not built:" not in configure.stdout, configure.stdout
    assert ("trtnet: cmake --install installs libtrtnet_plugins.so, libtrtnet_runtime.so, include/trtnet/trtnet.h"
            in configure.stdout), configure.stdout
    _run(["cmake", "--build", build, "--target", "trtnet_runtime", "trtnet_plugins", "trtnet_segment", "-j", "2"],
         "cmake build")
    _run(["cmake", "--install", build], "cmake install")
    print(f"trtnet built and installed in {time.monotonic() - start:.1f} s")
    return prefix, trt


def test_install_tree_has_the_header_libraries_example_and_package_files(installed):
    prefix, _ = installed
    lib = next(p for p in (prefix / "lib", prefix / "lib64") if p.is_dir())
    assert (prefix / "include" / "trtnet" / "trtnet.h").is_file()
    assert (prefix / "bin" / "trtnet_segment").is_file()
    assert list(lib.glob("libtrtnet_runtime.so*")) and list(lib.glob("libtrtnet_plugins.so*"))
    cmake_dir = lib / "cmake" / "trtnet"
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert f'set(PACKAGE_VERSION "{version}")' in (cmake_dir / "trtnetConfigVersion.cmake").read_text()
    targets = (cmake_dir / "trtnetTargets.cmake").read_text()
    assert "add_library(trtnet::runtime SHARED IMPORTED)" in targets
    assert "add_library(trtnet::plugins SHARED IMPORTED)" in targets
    # The public header needs neither CUDA nor TensorRT headers.
    assert not re.search(r"#include <(Nv|cuda)", (prefix / "include" / "trtnet" / "trtnet.h").read_text())


def test_a_consumer_project_builds_with_find_package_and_links_the_stub(installed, tmp_path):
    prefix, trt = installed
    build = tmp_path / "consumer"
    _run(["cmake", "-S", RUNTIME / "tests" / "consumer", "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}"],
         "consumer configure")
    _run(["cmake", "--build", build], "consumer build")
    # It loads and reaches TensorRT, which (a stub) creates no runtime: a clear error, exit 1.
    run = subprocess.run([str(build / "consumer"), str(tmp_path / "model.engine")], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "TensorRT could not create a runtime" in run.stderr


def test_the_consumer_asks_for_a_compatible_version(installed, tmp_path):
    prefix, _ = installed
    project = tmp_path / "src"
    project.mkdir()
    (project / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.18)\nproject(p LANGUAGES CXX)\n"
                                            "find_package(trtnet 9.0 CONFIG REQUIRED)\n")
    run = subprocess.run(["cmake", "-S", str(project), "-B", str(tmp_path / "b"), f"-DCMAKE_PREFIX_PATH={prefix}"],
                         capture_output=True, text=True)
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert run.returncode != 0 and f"trtnetConfig.cmake, version: {version}" in run.stderr


def test_the_example_reports_usage_and_errors_with_exit_codes(installed, tmp_path):
    prefix, _ = installed
    example = prefix / "bin" / "trtnet_segment"
    usage = subprocess.run([str(example), "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "examples:" in usage.stdout and "--nonkey-engine" in usage.stdout
    missing = subprocess.run([str(example), "photo.ppm"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--engine is required" in missing.stderr
    args = [str(example), "--engine", str(tmp_path / "m.engine"), "-o", str(tmp_path / "o.ppm"),
            str(tmp_path / "in.ppm")]
    absent = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert absent.returncode == 1 and f"SOURCE {tmp_path / 'in.ppm'} not found" in absent.stderr
    (tmp_path / "in.ppm").write_bytes(b"P6\n4 2\n255\n" + bytes(24))
    stub = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert stub.returncode == 1 and "TensorRT could not create a runtime" in stub.stderr
    assert not (tmp_path / "o.ppm").exists()


def _readme_cpp_section() -> str:
    text = (REPO / "README.md").read_text()
    section = re.search(r"^## C\+\+\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert section, "README.md has no '## C++' section"
    return section.group(1)


def test_the_readme_includes_the_header_as_the_tested_consumer_does():
    consumer = (RUNTIME / "tests" / "consumer" / "main.cpp").read_text()
    documented = set(re.findall(r"#include <(trtnet[^>]*)>", _readme_cpp_section()))
    tested = set(re.findall(r"#include <(trtnet[^>]*)>", consumer))
    assert tested == {"trtnet/trtnet.h"} and documented == tested


def test_headers_only_tensorrt_says_what_is_built_and_installs_the_plugin_library(tmp_path):
    """TensorRT_ROOT with headers and no libnvinfer: configure names what is not built and why,
    the default build and the install succeed, the plugin library is installed, and asking for
    the runtime target says why it is not built (not "No rule to make target")."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake is needed to build the C++ runtime", pytrace=False)
    root = tmp_path / "tensorrt"
    root.mkdir()
    (root / "include").symlink_to(trt_headers.header_set("11"))  # headers only: no lib/
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    configure = _run(["cmake", "-S", REPO, "-B", build, f"-DTensorRT_ROOT={root}", "-DTRTNET_PYTHON=OFF",
                      "-DTRTNET_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=75-virtual", "-DCMAKE_BUILD_TYPE=Debug",
                      "-DCMAKE_CXX_FLAGS=-O0", "-DCMAKE_CUDA_FLAGS=-O0", f"-DCMAKE_INSTALL_PREFIX={prefix}"],
                     "cmake configure (headers only)")
    why = f"libnvinfer not found under TensorRT_ROOT ({root}): headers only?"
    assert f"trtnet: not built: libtrtnet_runtime.so, trtnet_segment, find_package(trtnet) files ({why}" \
        in configure.stdout, configure.stdout
    assert "trtnet: cmake --install installs libtrtnet_plugins.so\n" in configure.stdout, configure.stdout
    _run(["cmake", "--build", build, "-j", "2"], "cmake build (headers only)")
    _run(["cmake", "--install", build], "cmake install (headers only)")
    lib = next(p for p in (prefix / "lib", prefix / "lib64") if p.is_dir())
    assert [p.name for p in lib.iterdir()] == ["libtrtnet_plugins.so"]
    asked = subprocess.run(["cmake", "--build", str(build), "--target", "trtnet_runtime"], check=False,
                           capture_output=True, text=True)
    assert asked.returncode != 0 and f"trtnet_runtime is not built: {why}" in asked.stdout + asked.stderr
    assert "No rule to make target" not in asked.stdout + asked.stderr


# ---- host cost of the frame loop (csrc/runtime/bench/frame_loop_bench.cpp) ---------------------

@pytest.fixture(scope="module")
def frame_loop_bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "frame_loop_bench"
    _run([_cxx(), "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-I", RUNTIME, "-I", REPO / "plugins",
          *[RUNTIME / s for s in CORE_SOURCES], RUNTIME / "bench" / "frame_loop_bench.cpp", "-o", out],
         "frame_loop_bench")
    return out


@pytest.mark.parametrize("mode", ["image", "video"])
def test_the_frame_loop_costs_little_host_time_no_allocation_and_one_wait_per_frame(frame_loop_bench, mode):
    import json

    run = subprocess.run([str(frame_loop_bench), "--frames", "400", "--mode", mode], check=False,
                         capture_output=True, text=True, timeout=120)
    result = json.loads(run.stdout)
    assert result["cuda_allocs_per_frame"] == 0 and result["host_waits_per_frame"] == 1, result
    assert result["detections"] == 5 and result["frames"] == 400, result
    # Issue 15's target (<= 30 us median host time per frame, device frames, steady state).
    assert result["median_us"] <= 30, result
    assert run.returncode == 0 and result["pass"] is True, run.stderr


def test_the_frame_loop_bench_refuses_bad_options_with_exit_code_2(frame_loop_bench):
    for args in (["--frames", "0"], ["--memory", "gpu"], ["--width"], ["--detections", "9"]):
        run = subprocess.run([str(frame_loop_bench), *args], check=False, capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and "usage: frame_loop_bench" in run.stderr, (args, run.stderr)
