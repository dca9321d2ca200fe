"""Every script in examples/ runs with --quick and writes valid PNG files."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"


def mnist_folder():
    shared = os.environ.get("TINYCNN_SHARED_DATA")
    return Path(shared) / "mnist" if shared else ROOT.parent / "shared" / "data" / "mnist"


HAVE_MNIST = (mnist_folder() / "t10k-images-idx3-ubyte.gz").exists() or \
    (mnist_folder() / "t10k-images-idx3-ubyte").exists()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST t10k files not found in {mnist_folder()}")

CASES = [
    pytest.param("train_mnist_resnet.py", ["curves.png", "first_layer_filters.png"], marks=needs_mnist),
    pytest.param("degradation.py", ["degradation.png"], marks=needs_mnist),
    pytest.param("se_weights.py", ["se_weights.png"], marks=needs_mnist),
    pytest.param("gradcheck_your_op.py", ["silu_gradcheck.png"]),
]


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {c.values[0] for c in CASES}


@pytest.mark.parametrize("script, pngs", CASES)
def test_example_runs_quick(script, pngs, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    for name in pngs:
        path = tmp_path / name
        assert path.is_file(), f"{script} did not write {name}"
        data = path.read_bytes()
        assert data[:8] == PNG and len(data) > 1000, f"{name} is not a valid PNG"
    if script == "gradcheck_your_op.py":
        assert "WrongSiLU caught" in result.stdout
