"""kernels/ and models/ are installed as tinycnn.kernels and tinycnn.models,
never as top-level packages, both by the editable install and in a wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code, cwd):
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )


def test_installed_package_exposes_kernels_and_models_under_tinycnn(tmp_path):
    # From a neutral folder, so the repository root is not on sys.path.
    code = (
        "import importlib.util, tinycnn.kernels, tinycnn.models\n"
        "print(tinycnn.kernels.__name__, tinycnn.models.__name__)\n"
        "print(importlib.util.find_spec('kernels'), importlib.util.find_spec('models'))\n"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "tinycnn.kernels tinycnn.models"
    assert lines[1] == "None None", "a top-level 'kernels' or 'models' package is installed"


def test_wheel_holds_only_the_tinycnn_package(tmp_path):
    pytest.importorskip("setuptools")
    out = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = out.glob("tinycnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"tinycnn", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for module in ("tinycnn/kernels/__init__.py", "tinycnn/kernels/_config.py", "tinycnn/models/__init__.py"):
        assert module in names
    assert not any(n.startswith(("kernels/", "models/")) for n in names)
