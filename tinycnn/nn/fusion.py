"""Inference fusion: a convolution, its BatchNorm and a ReLU as one convolution.

In eval mode a BatchNorm is a fixed affine map per channel, so it folds into
the convolution before it::

    scale = gamma / sqrt(running_var + eps)
    w'    = w * scale                       (over the output-channel axis)
    b'    = beta + (b - running_mean) * scale

and ``relu(bn(conv(x)))`` becomes one GEMM (no bias) plus one in-place Numba
pass that adds ``b'`` and applies the ReLU.  ``conv_bn_act`` does this when
fusion applies and otherwise runs the three layers as usual, so models call it
unconditionally; ``Sequential`` calls it for every Conv2d/SeparableConv2d,
BatchNorm2d (, ReLU) run it holds.

Fusion applies when the BatchNorm is in eval mode with running statistics,
the layers are exactly ``Conv2d``/``SeparableConv2d``, ``BatchNorm2d`` and
``ReLU`` (not subclasses, no per-instance ``forward`` wrapper such as
``summary()`` installs), no gradient is needed (inside ``no_grad()``, or neither the input nor the
layers' parameters require one) and the dtypes agree.  Training, and eval
mode with gradients (fine-tuning with frozen statistics, gradient checks),
run unfused: exact gradients for every parameter.

The folded weights are cached per convolution and rebuilt when any source
array is replaced, or when the parameters may have changed in place: an
optimizer step, ``load_state_dict``, ``train()``/``eval()``, ``to()`` or an
``nn.init`` call (``module.state_changed()``).  After editing ``param.data``
in place by hand, call ``model.eval()`` again.
"""

import contextlib
import weakref

import numpy as np

from ..autograd import is_grad_enabled
from ..ops.fused import conv2d_bias_act
from . import module as _module
from .layers import BatchNorm2d, Conv2d, ReLU, SeparableConv2d

_enabled = True
_cache = weakref.WeakKeyDictionary()  # conv module -> (sources, folded weight, folded bias)


@contextlib.contextmanager
def fusion_disabled():
    """Run the unfused layers inside this block (for comparisons and benchmarks)."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def conv_bn_act(x, conv, bn, relu=None):
    """``relu(bn(conv(x)))`` for a ``Conv2d`` or ``SeparableConv2d`` ``conv``, a
    ``BatchNorm2d`` ``bn`` and a ``ReLU`` module ``relu`` (None: ``bn(conv(x))``);
    one fused convolution when fusion applies (see the module docstring), the
    three modules called in turn otherwise."""
    if _can_fuse(x, conv, bn, relu):
        if type(conv) is SeparableConv2d:   # depthwise first, fold the BatchNorm into the 1x1
            x = conv.conv1(x)
            conv = conv.pointwise
        conv._check(x)
        weight, bias = _folded(conv, bn)
        return conv2d_bias_act(x, weight, bias, relu is not None, conv.stride, conv.padding, conv.dilation,
                               conv.groups)
    out = bn(conv(x))
    return out if relu is None else relu(out)


def _can_fuse(x, conv, bn, relu):
    if not _enabled or type(bn) is not BatchNorm2d or bn.training or bn.running_mean is None:
        return False
    if type(conv) not in (Conv2d, SeparableConv2d) or (relu is not None and type(relu) is not ReLU):
        return False
    modules = [conv, bn, *conv.children()] + ([] if relu is None else [relu])
    if any("forward" in m.__dict__ for m in modules):   # wrapped per instance (as summary() does)
        return False
    target = conv.pointwise if type(conv) is SeparableConv2d else conv
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


def _sources(conv, bn):
    return (conv.weight.data, None if conv.bias is None else conv.bias.data,
            None if bn.weight is None else bn.weight.data, None if bn.bias is None else bn.bias.data,
            bn.running_mean, bn.running_var)


def _folded(conv, bn):
    """The folded ``(weight, bias)`` of ``conv`` followed by ``bn``, cached."""
    sources = _sources(conv, bn)
    key = (_module.state_version(), bn.eps, id(bn))
    hit = _cache.get(conv)
    if hit is not None and hit[0] == key and all(a is b for a, b in zip(hit[1], sources)):
        return hit[2], hit[3]
    weight, bias = fold(*sources, bn.eps)
    _cache[conv] = (key, sources, weight, bias)
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
