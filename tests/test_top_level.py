"""``import tinycnn`` as a PyTorch user expects it: the subpackages are
attributes of the package (``tinycnn.optim.SGD`` as ``torch.optim.SGD``),
imported on first use so that ``import tinycnn`` does not pay for them; and
the names that moved to other modules are still importable where they were."""

import json
import os
import subprocess
import sys

import pytest

LAZY = ("tinycnn.data", "tinycnn.models", "tinycnn.optim")


def _run(code):
    """``code``'s stdout as JSON, run in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_tinycnn_does_not_import_the_lazy_subpackages():
    loaded = _run(f"import json, sys, tinycnn; print(json.dumps([m for m in {LAZY!r} if m in sys.modules]))")
    assert loaded == []


def test_subpackages_are_reached_from_the_package():
    found = _run(
        "import json, sys, tinycnn\n"
        "names = [tinycnn.optim.SGD.__name__, tinycnn.data.DataLoader.__name__, tinycnn.models.resnet18.__name__]\n"
        f"print(json.dumps([names, [m in sys.modules for m in {LAZY!r}],\n"
        "                   sorted({'data', 'models', 'optim'} & set(dir(tinycnn)))]))")
    assert found == [["SGD", "DataLoader", "resnet18"], [True, True, True], ["data", "models", "optim"]]


def test_the_lazy_attribute_is_the_imported_module():
    import tinycnn
    import tinycnn.optim

    assert tinycnn.optim is sys.modules["tinycnn.optim"]
    assert "optim" in tinycnn.__all__ and "models" in dir(tinycnn)


def test_an_unknown_attribute_is_an_attribute_error():
    import tinycnn

    with pytest.raises(AttributeError, match="module 'tinycnn' has no attribute 'optimizers'"):
        tinycnn.optimizers  # noqa: B018


def test_summary_is_the_function():
    import tinycnn
    from tinycnn.model_summary import summary

    assert tinycnn.summary is summary


def test_moved_names_are_importable_where_they_were():
    from tinycnn import builders, checkpoint, evaluation, train
    from tinycnn.data import images, pickles, readers

    assert train.build_model is builders.build_model and train.model_from_checkpoint is builders.model_from_checkpoint
    assert train.load_datasets is builders.load_datasets and train.evaluate is evaluation.evaluate
    assert train.load_checkpoint is checkpoint.load_checkpoint and train.DEFAULTS is checkpoint.DEFAULTS
    assert readers.safe_pickle_load is pickles.safe_pickle_load
    assert readers.open_image is images.open_image and readers.IMAGE_FORMATS is images.IMAGE_FORMATS
    assert readers.load_image_folder is images.load_image_folder
