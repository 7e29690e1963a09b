"""Native part of trtnet: ``trtnet._C`` (plugin CPU twins, CUDA launchers) and
``libtrtnet_plugins.so`` (TensorRT plugins), built by CMake from here.

``pip install .`` and ``pip install -e .`` work with only PyPI reachable and no GPU:

1. CMake (>= 3.18 on PATH) builds the CPU twins, the CUDA kernels when nvcc is found,
   and the plugin library when TensorRT's headers are found (``TensorRT_ROOT``).
2. Without CMake (or when it fails), setuptools compiles the CPU-twin module directly.
3. Without a C++17 compiler the package installs as pure Python; ``trtnet.plugins.extension`` then
   says the extension is missing and how to build it.

Environment: ``TRTNET_BUILD_EXT`` (``auto`` default, ``0`` skip, ``1`` fail when the
build fails), ``TRTNET_CUDA`` (``AUTO``/``ON``/``OFF``), ``TRTNET_CUDA_ARCHITECTURES``
(e.g. ``87`` for Orin only), ``TensorRT_ROOT`` (a TensorRT root with ``include/``; the one
setting name CMake, setup.py, the tests and .ci share), ``CMAKE_BUILD_PARALLEL_LEVEL``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
HOST_SOURCES = [
    "csrc/bindings.cpp",
    "plugins/inverse_warp/inverse_warp_host.cpp",
    "plugins/fast_nms/fast_nms_host.cpp",
    "csrc/masks/mask_assembly_host.cpp",
]


def _log(msg: str) -> None:
    print(f"trtnet build: {msg}", file=sys.stderr, flush=True)


class CMakeBuild(build_ext):
    """Builds trtnet._C with CMake, falling back to a plain host-only compile."""

    def run(self) -> None:
        mode = os.environ.get("TRTNET_BUILD_EXT", "auto").lower()
        if mode in ("0", "off", "no", "false"):
            _log("TRTNET_BUILD_EXT=0: skipping the native extension")
            return
        try:
            self._build()
        except Exception as exc:  # noqa: BLE001 - any failure leaves a pure-Python install
            if mode in ("1", "on", "yes", "true"):
                raise
            _log(f"native extension NOT built ({exc}); trtnet works without it "
                 "(the emulator uses the NumPy reference). Set TRTNET_BUILD_EXT=1 to make this an error.")

    # -- helpers -------------------------------------------------------------------------
    def _output_dir(self) -> Path:
        return Path(self.get_ext_fullpath("trtnet._C")).resolve().parent

    def _build(self) -> None:
        out_dir = self._output_dir()
        out_dir.mkdir(parents=True, exist_ok=True)
        cmake = shutil.which("cmake")
        errors = []
        if cmake:
            cuda = os.environ.get("TRTNET_CUDA", "AUTO").upper()
            attempts = [cuda] if cuda == "OFF" else [cuda, "OFF"]
            for attempt in attempts:
                try:
                    self._cmake(cmake, out_dir, attempt)
                    return
                except subprocess.CalledProcessError as exc:
                    errors.append(f"cmake (TRTNET_CUDA={attempt}) failed with exit code {exc.returncode}")
                    _log(errors[-1])
        else:
            errors.append("cmake not found on PATH")
            _log("cmake not found: building the CPU twins only (no CUDA, no plugin library)")
        try:
            self._plain(out_dir)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"direct compile failed: {exc}")
            raise RuntimeError("; ".join(errors)) from exc

    def _cmake(self, cmake: str, out_dir: Path, cuda: str) -> None:
        build_dir = Path(self.build_temp).resolve() / f"cmake-cuda-{cuda.lower()}"
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [
            cmake, "-S", str(ROOT), "-B", str(build_dir),
            f"-DTRTNET_CUDA={cuda}",
            f"-DTRTNET_PYTHON_OUTPUT_DIR={out_dir}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DCMAKE_BUILD_TYPE=Release",
        ]
        archs = os.environ.get("TRTNET_CUDA_ARCHITECTURES")
        if archs:
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
        trt_roots = [p for p in os.environ.get("TensorRT_ROOT", "").split(os.pathsep) if p]
        if trt_roots:  # one root, or several (as the tests take them): CMake uses the first with headers
            args.append(f"-DTensorRT_ROOT={';'.join(trt_roots)}")
        _log(" ".join(args[1:]))
        subprocess.run(args, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        subprocess.run([cmake, "--build", str(build_dir), "--target", "_C", "-j", jobs], check=True)
        # The plugin library exists only with CUDA + TensorRT headers; build it if configured.
        # (a placeholder target of that name explains why it is not built: read the cache instead)
        cache = (build_dir / "CMakeCache.txt").read_text(errors="replace")
        if "TRTNET_BUILDS_PLUGINS:INTERNAL=ON" in cache:
            subprocess.run([cmake, "--build", str(build_dir), "--target", "trtnet_plugins", "-j", jobs], check=True)
        built = list(out_dir.glob("_C*.so")) + list(out_dir.glob("_C*.pyd"))
        if not built:
            raise subprocess.CalledProcessError(1, "cmake: trtnet._C was not produced (pybind11 missing?)")

    def _plain(self, out_dir: Path) -> None:
        """Host-only build with setuptools' own compiler driver (no CMake, no CUDA)."""
        import pybind11

        # Fill in the declared extension (build_ext's finalize_options already gave it the
        # bookkeeping attributes it needs) rather than replacing it.
        ext = self.extensions[0]
        ext.sources = list(HOST_SOURCES)
        ext.include_dirs = [pybind11.get_include(), str(ROOT / "plugins"), str(ROOT / "csrc" / "masks")]
        ext.language = "c++"
        ext.extra_compile_args = ["-std=c++17", "-O2", "-ffp-contract=off", "-fvisibility=hidden"]
        self.extensions = [ext]
        super().run()


setup(
    ext_modules=[Extension("trtnet._C", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
