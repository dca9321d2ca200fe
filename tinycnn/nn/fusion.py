"""Inference fusion: a convolution, its BatchNorm and a ReLU as one convolution.

In eval mode a BatchNorm is a fixed affine map per channel, so it folds into
the convolution before it::

    scale = gamma / sqrt(running_var + eps)
    w'    = w * scale                       (over the output-channel axis)
    b'    = beta + (b - running_mean) * scale

and ``relu(bn(conv(x)))`` becomes one GEMM (no bias) plus one in-place Numba
pass that adds ``b'`` and applies the ReLU (or the Winograd output transform
does both, for 3x3 stride-1 layers).

**The pass.** :func:`fuse` walks a model and finds its *chains*: a ``Conv2d``
or ``SeparableConv2d``, the ``BatchNorm2d`` it feeds and, optionally, the
``ReLU`` after that.  It knows a chain from

- a module's ``fuse_chains`` attribute, tuples of child names such as
  ``(("conv1", "bn1", "relu"), ("conv2", "bn2"))``, with which a model says
  that its ``forward`` computes exactly ``relu(bn1(conv1(x)))`` and uses
  ``conv1``'s output nowhere else (as the lists handed to
  ``torch.ao.quantization.fuse_modules``), and
- every run of such layers among the children of a ``Sequential``.

``model.eval()`` applies the pass and ``model.train()`` removes it; call
``fuse(model)``/``unfuse(model)`` to do either by hand.  Nothing in the model
changes but how its modules are called (``Module.__call__`` hands a module
that has a role to it): parameters, state-dict keys and ``forward`` code stay
as written, so models read as the papers do.

**At each call** the chain's convolution decides: when fusion applies it runs
the fused convolution and marks its output as "BatchNorm (and ReLU) done";
the BatchNorm and the ReLU, seeing the mark meant for them, hand the tensor
on untouched.  Otherwise the three layers run as usual.  Fusion applies when
the BatchNorm is in eval mode with running statistics, the layers are exactly
``Conv2d``/``SeparableConv2d``, ``BatchNorm2d`` and ``ReLU`` (not
subclasses, no per-instance ``forward`` wrapper such as ``summary()``
installs), no gradient is needed (inside ``no_grad()``, or neither the input
nor the layers' parameters require one) and the dtypes agree.  Training, and
eval mode with gradients (fine-tuning with frozen statistics, gradient
checks), run unfused: exact gradients for every parameter.

The folded weights are cached per chain and rebuilt when any source array is
replaced (``load_state_dict``, ``to()``), written in place through tinycnn
(an optimizer step or an ``nn.init`` call bumps the parameter's ``version``),
or when the running statistics have moved on (``num_batches_tracked``).  After
editing ``param.data`` in place by hand, call ``model.eval()`` again.
"""

import contextlib

import numpy as np

from ..autograd import is_grad_enabled
from ..ops.fused import conv2d_bias_act
from .layers import BatchNorm2d, Conv2d, ReLU, SeparableConv2d, Sequential
from .module import Module, on_mode_change

_enabled = True
_CONVS = (Conv2d, SeparableConv2d)


@contextlib.contextmanager
def fusion_disabled():
    """Run the unfused layers inside this block (for comparisons and benchmarks)."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


# ------------------------------------------------------------------ the pass


def fuse(model):
    """Give every chain in ``model`` (see the module docstring) its fused
    inference path; returns ``model``.  ``model.eval()`` calls this."""
    if not isinstance(model, Module):
        raise TypeError(f"fuse: model must be a Module, got {type(model).__name__}")
    for module in model.modules():
        for names in _chains_of(module):
            conv, bn, act = (module._modules.get(n) if n is not None else None for n in names)
            _check_chain(module, names, conv, bn, act)
            conv.__dict__["_fusion"] = _Chain(module, names)
            bn.__dict__["_fusion"] = _absorb
            if act is not None:
                act.__dict__["_fusion"] = _absorb
    return model


def unfuse(model):
    """Remove the fused path of every chain whose convolution is in ``model``;
    returns ``model``.  ``model.train()`` calls this."""
    for module in model.modules():
        if isinstance(module.__dict__.get("_fusion"), _Chain):
            del module.__dict__["_fusion"]
    return model


def _chains_of(module):
    """``(conv, bn, act-or-None)`` child names of ``module``'s chains."""
    for names in getattr(module, "fuse_chains", ()):
        if len(names) not in (2, 3):
            raise ValueError(f"fuse: {type(module).__name__}.fuse_chains entries must be (conv, bn) or "
                             f"(conv, bn, relu) names, got {names!r}")
        if module._modules.get(names[0]) is not None:  # an optional part (a shortcut) may be absent
            yield tuple(names) + (None,) * (3 - len(names))
    if type(module) is Sequential:
        items = list(module._modules.items())
        i = 0
        while i + 1 < len(items):
            if type(items[i][1]) in _CONVS and type(items[i + 1][1]) is BatchNorm2d:
                has_act = i + 2 < len(items) and type(items[i + 2][1]) is ReLU
                yield items[i][0], items[i + 1][0], items[i + 2][0] if has_act else None
                i += 3 if has_act else 2
            else:
                i += 1


def _check_chain(module, names, conv, bn, act):
    where = f"fuse: {type(module).__name__} chain {names[:3] if act is not None else names[:2]}"
    if type(conv) not in _CONVS:
        raise TypeError(f"{where}: {names[0]} must be a Conv2d or SeparableConv2d, got {type(conv).__name__}")
    if type(bn) is not BatchNorm2d:
        raise TypeError(f"{where}: {names[1]} must be a BatchNorm2d, got {type(bn).__name__}")
    if act is not None and type(act) is not ReLU:
        raise TypeError(f"{where}: {names[2]} must be a ReLU, got {type(act).__name__}")
    if _target(conv).out_channels != bn.num_features:
        raise ValueError(f"{where}: {names[0]} has {_target(conv).out_channels} output channels, "
                         f"{names[1]} normalises {bn.num_features}")


def _target(conv):
    """The convolution the BatchNorm folds into (a separable one's 1x1)."""
    return conv.pointwise if type(conv) is SeparableConv2d else conv


# ---------------------------------------------------------------- at each call


def _absorb(module, x, *args, **kwargs):
    """The role of a chain's BatchNorm and ReLU: hand on a tensor whose
    convolution already applied them, run as usual otherwise."""
    pending = getattr(x, "_fusion_pending", ())
    if pending and pending[0] is module:
        x._fusion_pending = pending[1:]
        return x
    return module.forward(x, *args, **kwargs)


class _Chain:
    """The role of a chain's convolution: its members are looked up in
    ``parent`` at each call, so replacing one of them unfuses the chain."""

    def __init__(self, parent, names):
        self.parent, self.names = parent, names
        self.cache = None  # (source arrays, source versions, folded weight, folded bias)

    def __call__(self, conv, x, *args, **kwargs):
        members = self.parent._modules
        bn = members.get(self.names[1])
        act = None if self.names[2] is None else members.get(self.names[2])
        if args or kwargs or not self._applies(conv, bn, act, x):
            return conv.forward(x, *args, **kwargs)
        if type(conv) is SeparableConv2d:  # depthwise first, fold the BatchNorm into the 1x1
            x = conv.conv1(x)
        target = _target(conv)
        target.check_input(x)
        weight, bias = self._folded(target, bn)
        y = conv2d_bias_act(x, weight, bias, act is not None, target.stride, target.padding, target.dilation,
                            target.groups)
        y._fusion_pending = (bn,) if act is None else (bn, act)
        return y

    def _applies(self, conv, bn, act, x):
        if not _enabled or self.parent._modules.get(self.names[0]) is not conv:
            return False
        if type(bn) is not BatchNorm2d or bn.training or bn.running_mean is None:
            return False
        if self.names[2] is not None and type(act) is not ReLU:
            return False
        absorbed = [bn] if act is None else [bn, act]
        if any(m.__dict__.get("_fusion") is not _absorb for m in absorbed):
            return False  # replaced since fuse()
        if any("forward" in m.__dict__ for m in [conv, *conv.children(), *absorbed]):
            return False  # wrapped per instance (as summary() does)
        target = _target(conv)
        dtype = target.weight.dtype
        if getattr(x, "dtype", None) != dtype or bn.running_mean.dtype != dtype or \
                (bn.weight is not None and bn.weight.dtype != dtype):
            return False
        if target.out_channels != bn.num_features:
            return False
        if not is_grad_enabled():
            return True
        tensors = [x, *conv.parameters(), *bn.parameters()]
        return not any(getattr(t, "requires_grad", False) for t in tensors)

    def _folded(self, conv, bn):
        params = [conv.weight, conv.bias, bn.weight, bn.bias]
        sources = tuple(None if p is None else p.data for p in params) + (bn.running_mean, bn.running_var)
        versions = tuple(None if p is None else p.version for p in params) + \
            (int(bn.num_batches_tracked), bn.eps)
        hit = self.cache
        if hit is not None and hit[1] == versions and all(a is b for a, b in zip(hit[0], sources)):
            return hit[2], hit[3]
        weight, bias = fold(*sources, bn.eps)
        self.cache = (sources, versions, weight, bias)
        return weight, bias


def fold(conv_weight, conv_bias, gamma, beta, running_mean, running_var, eps):
    """Fold a BatchNorm into the convolution before it; returns ``(weight, bias)``
    in the convolution's dtype, computed in float64.  ``conv_weight`` has its
    output channels last; ``conv_bias``, ``gamma``, ``beta`` may be None."""
    dtype = conv_weight.dtype
    scale = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    if gamma is not None:
        scale = scale * gamma
    shift = -running_mean.astype(np.float64)
    if conv_bias is not None:
        shift = shift + conv_bias
    bias = shift * scale
    if beta is not None:
        bias = bias + beta
    return (conv_weight * scale).astype(dtype), bias.astype(dtype)


on_mode_change(lambda module, training: unfuse(module) if training else fuse(module))
