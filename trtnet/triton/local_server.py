"""A real Triton Inference Server on this machine's CPU, for the CPU test mode of exported
repositories (tests, ``python -m trtnet.bench triton``), listening on loopback only.

The ``tritonserver`` binary and its Python backend come in the ``nvidia-pytriton`` wheel
(pinned: 0.7.0 ships Triton 2.51 with the Python backend only, no TensorRT backend). Its
Python-backend stub embeds the interpreter of the environment first on PATH, and needs
NumPy < 2 there, so the server runs from a venv of its own (made once, cached like the
TensorRT bindings of the tests) with trtnet importable through PYTHONPATH (a folder holding
only trtnet and weights_convert, so that this environment's NumPy 2 is not seen there). The
server listens on 127.0.0.1 on free ports and is stopped when the context exits.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import tempfile

import trtnet
import weights_convert

PYTRITON = "nvidia-pytriton==0.7.0"
ENV_DIR = Path(os.environ.get("TRTNET_TRITON_ENV", Path.home() / ".cache" / "trtnet" / "triton_env"))


def _package_path(folder: Path) -> Path:
    """A folder with links to the trtnet and weights_convert packages, for the server's PYTHONPATH."""
    for package in (trtnet, weights_convert):
        src = Path(package.__file__).resolve().parent
        link = folder / src.name
        if not link.exists():
            link.symlink_to(src, target_is_directory=True)
    return folder


class LocalServerError(RuntimeError):
    """The server environment could not be made (download, venv) or the server did not start."""


@dataclass
class TritonEnv:
    python: Path
    server: Path
    backends: Path   # a backend folder: python/ with libtriton_python.so, utils and the stub


def _venv_python(env: Path) -> Path:
    return env / "bin" / "python"


def triton_env() -> TritonEnv:
    """The server's venv (created on first use: ``nvidia-pytriton``, ``numpy<2``, safetensors)."""
    python = _venv_python(ENV_DIR)
    marker = ENV_DIR / ".complete"
    if not marker.is_file():
        shutil.rmtree(ENV_DIR, ignore_errors=True)
        ENV_DIR.parent.mkdir(parents=True, exist_ok=True)
        steps = [[sys.executable, "-m", "venv", str(ENV_DIR)],
                 [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", PYTRITON,
                  "numpy<2", "safetensors"]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                raise LocalServerError(f"{' '.join(step[:4])} failed:\n{done.stderr[-2000:]}")
        marker.write_text(PYTRITON + "\n")
    found = subprocess.run([str(python), "-c", "import pytriton, os; print(os.path.dirname(pytriton.__file__))"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise LocalServerError(f"pytriton is not importable in {ENV_DIR}: {found.stderr[-500:]}")
    root = Path(found.stdout.strip()) / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise LocalServerError(f"{PYTRITON} has no Python backend stub for Python {version}")
    # The stub finds its CUDA runtime through an $ORIGIN-relative RPATH that holds from
    # python_backend_stubs/X.Y/ and, at the same depth, from backends/python/, where Triton
    # looks for it.
    backends = root / "backends"
    if not (backends / "python" / stub.name).is_file():
        shutil.copy2(stub, backends / "python" / stub.name)
    return TritonEnv(python=python, server=root / "bin" / "tritonserver", backends=backends)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TritonServer:
    """``tritonserver`` on 127.0.0.1 serving ``repository``; use as a context manager."""

    def __init__(self, repository: Path, env: TritonEnv, log: Path, *, startup_timeout: float = 180.0) -> None:
        self.repository, self.env, self.log_path = repository, env, log
        self.http_port, self.grpc_port = free_port(), free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def __enter__(self) -> "TritonServer":
        env = dict(os.environ)
        env["PATH"] = f"{self.env.python.parent}{os.pathsep}{env.get('PATH', '')}"
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
        self._pythonpath = tempfile.TemporaryDirectory(prefix="trtnet-triton-path-")
        env["PYTHONPATH"] = str(_package_path(Path(self._pythonpath.name)))
        env.pop("VIRTUAL_ENV", None)
        args = [str(self.env.server), f"--model-repository={self.repository}",
                f"--backend-directory={self.env.backends}", "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
                f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", "--allow-metrics=false",
                "--exit-timeout-secs=5", "--log-verbose=0"]
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://127.0.0.1:{self.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            if "failed to load" in self.log() or "error while loading shared libraries" in self.log():
                self.__exit__()
                raise LocalServerError(f"a model of {self.repository} failed to load:\n{self.log()}")
            if self.process.poll() is not None:
                self.__exit__()
                raise LocalServerError(f"tritonserver exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise LocalServerError(f"tritonserver not ready after {self.startup_timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()
        if getattr(self, "_pythonpath", None):
            self._pythonpath.cleanup()
            self._pythonpath = None
