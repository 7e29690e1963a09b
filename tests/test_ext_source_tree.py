"""``python -m trtnet.X`` from the repository root imports the source tree, which has no compiled
trtnet._C after a plain ``pip install .``: the installed build is found instead (so
``python -m trtnet.bench kernels`` works from the README's directory)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trtnet.plugins import extension as _ext

REPO = Path(__file__).resolve().parent.parent


def test_a_source_tree_without_the_extension_uses_the_installed_build(tmp_path):
    if _ext._C is None or not getattr(_ext._C, "__file__", None):
        pytest.skip("trtnet._C is not built here")
    source = tmp_path / "checkout"
    shutil.copytree(REPO / "trtnet", source / "trtnet", ignore=shutil.ignore_patterns("_C*", "*.so", "__pycache__"))
    installed = tmp_path / "site" / "trtnet"
    installed.mkdir(parents=True)
    shutil.copy2(_ext._C.__file__, installed)
    # -S: no site-packages (so no editable install of this repo); NumPy's folder appended by hand.
    code = ("import sys; sys.path[:0] = ['', sys.argv[1]]; sys.path.append(sys.argv[2]); "
            "import trtnet.plugins.extension as e; "
            "print(e.__file__); print(e._C.__file__ if e.AVAILABLE else e.IMPORT_ERROR)")
    numpy_dir = str(Path(np.__file__).resolve().parents[1])
    run = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path / "site"), numpy_dir], cwd=source,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    ext_file, c_file = run.stdout.split("\n")[:2]
    assert Path(ext_file).resolve().is_relative_to(source.resolve())  # the source tree was imported
    assert Path(c_file).resolve().parent == installed.resolve()       # with the installed extension
