"""The house rules of docs/ARCHITECTURE.md, checked on the source.

- Imports go one way, from the layers above to the layers below:
  kernels < core (autograd, tensor) < ops < functional < nn < optim, models
  (and weights) < the rest (training, data, CLI).  The file readers sit
  where their imports put them: npz beside the kernels, serialization beside
  the ops.  The package's ``__init__`` files wire
  the layers together and are exempt.
- The core, the ops and the layers import the project's own modules at the
  top of the file, never inside a function.
- A file is at most 450 lines, unless its module docstring says why.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source directory -> the package it installs as (setup.cfg's package_dir)
PACKAGES = {"tinycnn": "tinycnn", "kernels": "tinycnn.kernels", "models": "tinycnn.models"}
MAX_LINES = 450

# The layer of each module, by its longest matching prefix; higher may import lower.
LAYERS = [
    ("tinycnn.kernels", 0),
    ("tinycnn.limits", 0), ("tinycnn.threads", 0), ("tinycnn._env", 0), ("tinycnn.random", 0),
    ("tinycnn.npz", 0),
    ("tinycnn.anomaly", 1), ("tinycnn.autograd", 1), ("tinycnn.tensor", 2),
    ("tinycnn.ops", 3), ("tinycnn.serialization", 3), ("tinycnn.functional", 4), ("tinycnn.gradcheck", 4),
    ("tinycnn.nn", 5), ("tinycnn.optim", 6), ("tinycnn.models", 6), ("tinycnn.weights", 6),
    ("tinycnn", 7),
]


def _modules():
    for directory, package in PACKAGES.items():
        for path in sorted((ROOT / directory).rglob("*.py")):
            parts = path.relative_to(ROOT / directory).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package,) + parts), path


MODULES = dict(_modules())


def _layer(module):
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def _imports(module, path):
    """``(imported module, line, inside a function)`` for each import of the project's own modules."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            if name == "tinycnn" or name.startswith("tinycnn."):
                yield name, node.lineno, id(node) in nested


def test_the_module_list_is_read():
    assert {"tinycnn.tensor", "tinycnn.autograd", "tinycnn.nn.layers", "tinycnn.kernels.conv",
            "tinycnn.models.resnet"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    path = MODULES[module]
    if path.name == "__init__.py":
        return  # the packages wire their layers together
    upward = [f"line {line}: {name} (layer {_layer(name)})" for name, line, _ in _imports(module, path)
              if _layer(name) > _layer(module)]
    assert not upward, f"{module} (layer {_layer(module)}) imports from above: " + "; ".join(upward)


# who may import the kernels: the ops (the differentiable functions), and the
# whole-model tools beside the CLI that read kernel settings (ONNX export
# reuses the padding arithmetic, so an exported model pads as the kernels do)
KERNEL_USERS = ("tinycnn.ops", "tinycnn.export", "tinycnn.kernels")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith(KERNEL_USERS)))
def test_only_the_ops_import_the_kernels(module):
    path = MODULES[module]
    if path.name == "__init__.py":
        return
    direct = [f"line {line}: {name}" for name, line, _ in _imports(module, path) if name.startswith("tinycnn.kernels")]
    assert not direct, f"{module} imports the kernels directly (go through tinycnn.ops): " + "; ".join(direct)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("tinycnn.models")))
def test_models_are_written_in_nn_and_functional(module):
    allowed = ("tinycnn.nn", "tinycnn.functional", "tinycnn.models", "tinycnn.weights")
    other = [f"line {line}: {name}" for name, line, _ in _imports(module, MODULES[module])
             if not name.startswith(allowed)]
    assert not other, f"{module} reaches below tinycnn.nn and tinycnn.functional: " + "; ".join(other)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) <= _layer("tinycnn.nn")))
def test_no_imports_inside_functions(module):
    late = [f"line {line}: {name}" for name, line, inside in _imports(module, MODULES[module]) if inside]
    assert not late, f"{module} imports inside a function: " + "; ".join(late)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_files_can_be_read_in_one_sitting(module):
    path = MODULES[module]
    lines = len(path.read_text().splitlines())
    if lines <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert f"longer than {MAX_LINES} lines" in docstring, (
        f"{path.relative_to(ROOT)} has {lines} lines; split it, or say in its docstring why it is "
        f"longer than {MAX_LINES} lines")


def test_the_rules_catch_what_they_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..nn import layers\n\ndef f():\n    from .. import functional\n")
    found = list(_imports("tinycnn.ops.bad", bad))
    assert ("tinycnn.nn.layers", 1, False) in found and ("tinycnn.functional", 4, True) in found
    assert _layer("tinycnn.nn.layers") > _layer("tinycnn.ops.bad")
