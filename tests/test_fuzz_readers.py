"""Every file reader, fuzzed: a few seconds of coverage-guided fuzzing per
reader (atheris, where it installs), and everywhere a fixed set of
hypothesis mutations of the same seed files.

The harness is ``tests/fuzz_readers.py``; run it longer by hand with
``python tests/fuzz_readers.py TARGET CORPUS_DIR -max_total_time=600``, or
here with ``FUZZ_SECONDS=60 FUZZ_SEED=7 python -m pytest tests/test_fuzz_readers.py``
(the seed is fixed, 1, unless given).  A per-input timeout of 30 s catches a
hang, not a slow machine.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import fuzz_readers  # noqa: E402

HARNESS = Path(__file__).with_name("fuzz_readers.py")
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "4"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "1"))  # a fixed seed: CI explores the same way each run

# what each target needs beyond numpy and numba
_NEEDS = {"safetensors": "safetensors", "pth": "torch", "image": "PIL"}


def _needs(target):
    module = _NEEDS.get(target)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"the {target} reader needs {module}, which is not installed")


@pytest.mark.parametrize("target", sorted(fuzz_readers.TARGETS))
def test_coverage_guided_fuzzing(target, tmp_path):
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (Linux x86-64, Python 3.11-3.13 only); "
                    "the hypothesis mutations below still run")
    _needs(target)
    corpus = tmp_path / "corpus"
    run = subprocess.run(
        [sys.executable, str(HARNESS), target, str(corpus), f"-max_total_time={FUZZ_SECONDS}",
         f"-seed={FUZZ_SEED}", "-rss_limit_mb=2048", "-timeout=30", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=FUZZ_SECONDS + 300)
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"the fuzzer found an input the {target} reader mishandles:\n{log[-6000:]}"
    assert "Done" in log and " runs in " in log, log[-3000:]


def _mutate(blob, edits):
    """Apply hypothesis-drawn edits: overwrite, insert, delete, truncate."""
    data = bytearray(blob)
    for kind, where, value in edits:
        at = where % (len(data) + 1)
        if kind == "set" and data:
            data[min(at, len(data) - 1)] = value
        elif kind == "insert":
            data[at:at] = bytes([value]) * (1 + value % 8)
        elif kind == "delete":
            del data[at:at + 1 + value % 16]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


_EDITS = st.lists(st.tuples(st.sampled_from(["set", "set", "set", "insert", "delete", "truncate"]),
                            st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)
_SEEDS = {}


@pytest.mark.parametrize("target", sorted(fuzz_readers.TARGETS))
@settings(max_examples=40)
@given(choice=st.integers(0, 100), edits=_EDITS)
def test_mutated_seeds_load_or_are_refused(target, choice, edits):
    _needs(target)
    if target not in _SEEDS:
        _SEEDS[target] = fuzz_readers.seeds(target)
    seeds = _SEEDS[target]
    blob = _mutate(seeds[choice % len(seeds)], edits)
    fuzz_readers.check_one(target, blob, fuzz_readers.input_file(target))
