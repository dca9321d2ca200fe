"""``tinycnn.summary(model, input_shape)``: a Keras-style table of a model's layers.

For every leaf module called during one forward pass (and every module that
owns parameters directly): its name, type, output shape, parameter count and
multiply-accumulates, then the totals.
"""

import math
from dataclasses import dataclass

import numpy as np

from .autograd import no_grad
from .nn import Conv2d, DepthwiseConv2d, Linear, Module
from .tensor import Tensor


@dataclass
class LayerInfo:
    name: str          # dotted name in the model ("layer1.0.conv1")
    type: str          # class name ("Conv2d")
    output_shape: tuple
    params: int        # parameters the module owns (0 on a repeated call)
    macs: int          # multiply-accumulates of this call, for the whole batch


class ModelSummary:
    """What :func:`summary` returns: ``layers`` (a list of :class:`LayerInfo`
    in call order), ``total_params``, ``trainable_params``, ``total_macs``,
    ``input_shape``, ``output_shape``; ``str()`` (and ``repr()``) is the table."""

    def __init__(self, model_name, input_shape, output_shape, layers, total_params, trainable_params):
        self.model_name = model_name
        self.input_shape, self.output_shape = input_shape, output_shape
        self.layers = layers
        self.total_params, self.trainable_params = total_params, trainable_params
        self.total_macs = sum(layer.macs for layer in layers)

    def __str__(self):
        head = ("Layer (type)", "Output Shape", "Param #", "MACs")
        rows = [(f"{layer.name} ({layer.type})", _shape_str(layer.output_shape), f"{layer.params:,}",
                 f"{layer.macs:,}") for layer in self.layers]
        widths = [max(len(row[i]) for row in rows + [head]) for i in range(4)]

        def line(row):  # names and shapes left-aligned, numbers right-aligned
            return "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

        total_width = sum(widths) + 6
        out = [f'Model: "{self.model_name}"', "_" * total_width, line(head), "=" * total_width]
        out += [line(r) for r in rows]
        out += [
            "=" * total_width,
            f"Input shape: {_shape_str(self.input_shape)}",
            f"Output shape: {_shape_str(self.output_shape)}",
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"Total MACs: {self.total_macs:,}",
            "_" * total_width,
        ]
        return "\n".join(out)

    __repr__ = __str__


def summary(model, input_shape, dtype=np.float32, print_fn=None):
    """Run ``model`` once on zeros of ``input_shape`` and tabulate its layers.

    ``input_shape`` is (N, H, W, C), or (H, W, C) for a batch of one.  The
    pass runs under ``no_grad`` in eval mode (so BatchNorm's running
    statistics are not touched); every module's training flag is restored
    afterwards, and the per-instance ``forward`` wrappers are removed even
    if the forward pass raises.

    MACs (multiply-accumulates) are counted for the given batch, for
    convolutions (``OH*OW*C_out*KH*KW*C_in/groups`` per image), depthwise
    convolutions (``OH*OW*C*M*KH*KW``) and dense layers (``in*out`` per
    row); biases, BatchNorm, activations, pooling and additions count 0.
    ``Total params`` is ``model.num_parameters()``.  A module called twice
    is listed twice, its parameters counted on the first row only.

    Returns a :class:`ModelSummary` (``print(summary(...))`` shows the
    table; its fields hold the numbers); ``print_fn`` (e.g. ``print``), if
    given, is also called with the table.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a tinycnn.nn.Module, got {type(model).__name__}")
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(f"summary: input_shape must be (N, H, W, C) or (H, W, C) of positive ints, got {input_shape}")

    layers, seen = [], set()
    wrapped = []
    modes = [(m, m.training) for m in model.modules()]
    for name, module in model.named_modules():
        is_leaf = not any(True for _ in module.children())
        owns_params = any(p is not None for p in module._parameters.values())
        if name and (is_leaf or owns_params):
            wrapped.append(module)
            module.__dict__["forward"] = _recorder(module, name, type(module).forward, layers, seen)
    try:
        model.eval()
        with no_grad():
            y = model(Tensor(np.zeros(shape, dtype=dtype)))
    finally:
        for module in wrapped:
            module.__dict__.pop("forward", None)
        for module, mode in modes:
            object.__setattr__(module, "training", mode)

    result = ModelSummary(type(model).__name__, shape, _shape_of(y), layers,
                          model.num_parameters(), model.num_parameters(trainable_only=True))
    if print_fn is not None:
        print_fn(str(result))
    return result


def _recorder(module, name, forward, layers, seen):
    def recording_forward(*args, **kwargs):
        out = forward(module, *args, **kwargs)
        first = id(module) not in seen
        seen.add(id(module))
        params = sum(p.size for p in module._parameters.values() if p is not None) if first else 0
        layers.append(LayerInfo(name, type(module).__name__, _shape_of(out), params, _macs(module, out)))
        return out

    return recording_forward


def _macs(module, out):
    shape = getattr(out, "shape", None)
    if shape is None:
        return 0
    if isinstance(module, Conv2d):
        KH, KW, C_in_per_group, _ = module.weight.shape
        return math.prod(shape) * KH * KW * C_in_per_group
    if isinstance(module, DepthwiseConv2d):
        KH, KW, _, _ = module.weight.shape
        return math.prod(shape) * KH * KW
    if isinstance(module, Linear):
        return math.prod(shape) * module.in_features
    return 0


def _shape_of(out):
    if isinstance(out, (tuple, list)):
        return tuple(_shape_of(o) for o in out)
    return tuple(getattr(out, "shape", ()))


def _shape_str(shape):
    return str(tuple(shape))
