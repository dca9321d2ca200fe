"""Export: a standard NCHW ONNX graph (``to_onnx``) and a PyTorch-layout
state dict in safetensors (``to_torch``).

``import tinycnn.export``; it is not imported by ``import tinycnn``, so
onnx and safetensors stay optional (``pip install 'tinycnn[onnx]'``,
``'tinycnn[safetensors]'``).

How the ONNX graph is built: a small exporter walks the model's modules
and emits, for each known module type, the nodes of its eval-mode forward
(for the bundled models' blocks, their ``forward`` written out again in
ONNX nodes).  This is explicit rather than traced: a node is only emitted
for a structure we know, and any other module raises TypeError naming it,
instead of a graph that silently differs.  Supported: Sequential, Conv2d,
DepthwiseConv2d (a grouped Conv), SeparableConv2d, BatchNorm2d, ReLU,
LeakyReLU, Sigmoid, Tanh, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Flatten,
Linear, Dropout and Identity (eval mode: nothing), SEModule, ResNet's
BasicBlock and Bottleneck, Xception's Block, ResNet and Xception.

Ops: Conv (BatchNorm folded into the convolution before it, or
BatchNormalization with ``fold_bn=False`` or where no convolution
precedes), Relu, LeakyRelu, Sigmoid, Tanh, MaxPool, AveragePool,
GlobalAveragePool, Flatten, Transpose (before a Flatten of feature maps, as
ours flattens in NHWC order), Add, Mul, Gemm.  SE units are
GlobalAveragePool, 1x1 Conv, Relu, 1x1 Conv, Sigmoid, Mul, as timm writes
them.  The graph takes ``input`` (N, C, H, W) float32 with a symbolic batch
size and returns ``output``.
"""

import os

import numpy as np

from . import nn
from .serialization import atomic_write
from .kernels._args import conv_output_size, pair, resolve_padding
from .weights import torch_state_dict

OPSET = 17


# ------------------------------------------------------------------ to_torch
def to_torch(model, path, se_as_conv=True):
    """Write the model's state dict in PyTorch's layouts (OIHW convolutions,
    (out, in) dense weights, depthwise (C*M, 1, KH, KW); SE dense layers as
    1x1 convolutions as timm) to ``path`` as safetensors, atomically.
    Load it in PyTorch with ``safetensors.torch.load_file(path)`` and
    ``model.load_state_dict(...)``.  Returns the path."""
    try:
        from safetensors.numpy import save
    except ImportError:
        raise ImportError("to_torch needs the safetensors package: pip install 'tinycnn[safetensors]'") from None
    path = os.fspath(path)
    state = {k: np.array(v, order="C") for k, v in torch_state_dict(model, se_as_conv).items()}  # keeps 0-d
    data = save(state, metadata={"format": "pt", "producer": "tinycnn", "model": type(model).__name__})
    atomic_write(path, lambda f: f.write(data))
    return path


# ------------------------------------------------------------------- to_onnx
def to_onnx(model, path, input_shape, fold_bn=True, opset=OPSET, check=True):
    """Write ``model`` (its eval-mode forward) as an NCHW ONNX graph to ``path``.

    ``input_shape``: one input in tinycnn's layout, ``(N, H, W, C)``; the
    graph's input is ``(N, C, H, W)`` with a symbolic batch size (N only
    fixes the shapes used to check the graph).  ``fold_bn``: fold each
    BatchNorm into the convolution before it (else emit
    BatchNormalization).  ``check``: run ``onnx.checker`` on the result.
    Returns the ``onnx.ModelProto``.
    """
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        raise ImportError("to_onnx needs the onnx package: pip install 'tinycnn[onnx]'") from None
    shape = tuple(input_shape)
    if len(shape) != 4 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in shape):
        raise ValueError(f"to_onnx: input_shape must be (N, H, W, C) positive ints, got {input_shape!r}")
    N, H, W, C = (int(v) for v in shape)
    in_chans = getattr(model, "in_chans", None)
    if in_chans is not None and C != in_chans:
        hint = " (input_shape is tinycnn's (N, H, W, C), not NCHW)" if H == in_chans else ""
        raise ValueError(f"to_onnx: {type(model).__name__} takes {in_chans} channels, "
                         f"input_shape {shape} has {C}{hint}")

    g = _Graph(fold_bn)
    out_name, out_shape = g.emit(model, ("input", (C, H, W)), "")
    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", C, H, W])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", *out_shape])],
        initializer=g.initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="tinycnn")
    proto.ir_version = min(proto.ir_version, 9)  # readable by onnxruntime releases of the last years
    if check:
        onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    atomic_write(os.fspath(path), lambda f: f.write(data))
    return proto


class _Graph:
    """Collects nodes and initialisers; ``emit`` returns ``(name, shape)``
    with ``shape`` the per-sample shape: (C, H, W) for maps, (F,) for vectors."""

    def __init__(self, fold_bn):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.fold_bn = fold_bn
        self.nodes, self.initializers = [], []
        self.count = 0

    def _name(self, hint):
        self.count += 1
        return f"{hint or 'node'}_{self.count}"

    def const(self, hint, array):
        name = self._name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op, inputs, hint, **attrs):
        out = self._name(f"{hint}.{op}" if hint else op)
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    # ------------------------------------------------------------- dispatch
    def emit(self, module, x, prefix):
        from .models import BasicBlock, Bottleneck, ResNet, SEModule, Xception, XceptionBlock
        handlers = [
            (nn.Sequential, self._sequential), (nn.SeparableConv2d, self._separable),
            (nn.Conv2d, self._conv), (nn.DepthwiseConv2d, self._conv), (nn.BatchNorm2d, self._batchnorm),
            (nn.ReLU, self._unary("Relu")), (nn.Sigmoid, self._unary("Sigmoid")), (nn.Tanh, self._unary("Tanh")),
            (nn.LeakyReLU, self._leaky_relu), (nn.MaxPool2d, self._pool), (nn.AvgPool2d, self._pool),
            (nn.GlobalAvgPool2d, self._global_pool), (nn.Flatten, self._flatten), (nn.Linear, self._linear),
            (nn.Dropout, self._identity), (nn.Identity, self._identity), (SEModule, self._se),
            ((BasicBlock, Bottleneck), self._resnet_block), (XceptionBlock, self._xception_block),
            (ResNet, self._resnet), (Xception, self._xception),
        ]
        for types, handler in handlers:
            if type(module) in (types if isinstance(types, tuple) else (types,)):
                return handler(module, x, prefix)
        raise TypeError(f"to_onnx: cannot export {type(module).__name__} at {prefix or 'the top level'!r}; "
                        "supported: " + ", ".join(
                            t.__name__ if not isinstance(t, tuple) else ", ".join(c.__name__ for c in t)
                            for t, _ in handlers))

    def _child(self, module, name, x, prefix):
        return self.emit(getattr(module, name), x, f"{prefix}.{name}" if prefix else name)

    def _conv_bn(self, module, conv, bn, x, prefix):
        """``module.bn(module.conv(x))``, the BN folded into the convolution
        (or a BatchNormalization after it when not folding)."""
        if not self.fold_bn:
            return self._child(module, bn, self._child(module, conv, x, prefix), prefix)
        path = f"{prefix}.{conv}" if prefix else conv
        return self._conv_layer(getattr(module, conv), x, path, bn=getattr(module, bn))

    def _identity(self, module, x, prefix):
        return x

    def _unary(self, op):
        return lambda module, x, prefix: (self.node(op, [x[0]], prefix), x[1])

    def _leaky_relu(self, module, x, prefix):
        return self.node("LeakyRelu", [x[0]], prefix, alpha=float(module.negative_slope)), x[1]

    # --------------------------------------------------------------- layers
    def _sequential(self, module, x, prefix):
        items = list(module.named_children())
        i = 0
        while i < len(items):
            name, child = items[i]
            nxt = items[i + 1][1] if i + 1 < len(items) else None
            path = f"{prefix}.{name}" if prefix else name
            if (self.fold_bn and isinstance(nxt, nn.BatchNorm2d)
                    and type(child) in (nn.Conv2d, nn.DepthwiseConv2d, nn.SeparableConv2d)):
                x = self._conv_layer(child, x, path, bn=nxt)
                i += 2
            else:
                x = self.emit(child, x, path)
                i += 1
        return x

    def _conv(self, module, x, prefix):
        return self._conv_layer(module, x, prefix)

    def _separable(self, module, x, prefix):
        return self._conv_layer(module, x, prefix)

    def _conv_layer(self, conv, x, prefix, bn=None):
        """Conv2d, DepthwiseConv2d or SeparableConv2d, with ``bn`` folded in."""
        if isinstance(conv, nn.SeparableConv2d):
            x = self._conv_layer(conv.conv1, x, f"{prefix}.conv1")
            return self._conv_layer(conv.pointwise, x, f"{prefix}.pointwise", bn=bn)
        name, (C, H, W) = x
        weight = conv.weight.data.astype(np.float64)
        if isinstance(conv, nn.DepthwiseConv2d):
            KH, KW, Cw, M = weight.shape
            w = weight.transpose(2, 3, 0, 1).reshape(Cw * M, 1, KH, KW)
            groups, out_c = Cw, Cw * M
        else:
            w = weight.transpose(3, 2, 0, 1)
            groups, out_c = conv.groups, conv.out_channels
        b = conv.bias.data.astype(np.float64) if conv.bias is not None else None
        if bn is not None:
            scale, shift = _bn_affine(bn)
            w = w * scale[:, None, None, None]
            b = shift if b is None else b * scale + shift
        (KH, KW), (SH, SW), (DH, DW) = conv.kernel_size, conv.stride, conv.dilation
        PT, PB, PL, PR = resolve_padding(conv.padding, (KH, KW), (DH, DW), (SH, SW), (H, W), f"{prefix}: padding")
        OH = conv_output_size(H, KH, SH, PT, PB, DH, f"{prefix}: kernel_size")
        OW = conv_output_size(W, KW, SW, PL, PR, DW, f"{prefix}: kernel_size")
        inputs = [name, self.const(f"{prefix}.weight", w)]
        if b is not None:
            inputs.append(self.const(f"{prefix}.bias", b))
        out = self.node("Conv", inputs, prefix, kernel_shape=[KH, KW], strides=[SH, SW], dilations=[DH, DW],
                        pads=[PT, PL, PB, PR], group=groups)
        return out, (out_c, OH, OW)

    def _batchnorm(self, module, x, prefix):
        name, shape = x
        C = shape[0]
        if module.track_running_stats:
            mean, var = module.running_mean, module.running_var
        else:
            raise TypeError(f"to_onnx: {prefix}: BatchNorm2d without running statistics has no eval-mode form")
        gamma = module.weight.data if module.weight is not None else np.ones(C)
        beta = module.bias.data if module.bias is not None else np.zeros(C)
        inputs = [name] + [self.const(f"{prefix}.{k}", v) for k, v in
                           (("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var))]
        return self.node("BatchNormalization", inputs, prefix, epsilon=float(module.eps)), shape

    def _pool(self, module, x, prefix):
        name, (C, H, W) = x
        KH, KW = pair(module.kernel_size, f"{prefix}: kernel_size")
        SH, SW = pair(module.stride if module.stride is not None else module.kernel_size, f"{prefix}: stride")
        PT, PB, PL, PR = resolve_padding(module.padding, (KH, KW), 1, (SH, SW), (H, W), f"{prefix}: padding")
        OH = conv_output_size(H, KH, SH, PT, PB, 1, f"{prefix}: kernel_size")
        OW = conv_output_size(W, KW, SW, PL, PR, 1, f"{prefix}: kernel_size")
        attrs = dict(kernel_shape=[KH, KW], strides=[SH, SW], pads=[PT, PL, PB, PR])
        if isinstance(module, nn.AvgPool2d):
            out = self.node("AveragePool", [name], prefix, count_include_pad=int(bool(module.count_include_pad)),
                            **attrs)
        else:
            out = self.node("MaxPool", [name], prefix, **attrs)
        return out, (C, OH, OW)

    def _global_pool(self, module, x, prefix):
        name, (C, _, _) = x
        pooled = self.node("GlobalAveragePool", [name], prefix)
        return self.node("Flatten", [pooled], prefix, axis=1), (C,)

    def _flatten(self, module, x, prefix):
        name, shape = x
        if (module.start_dim, module.end_dim) != (1, -1):
            raise TypeError(f"to_onnx: {prefix}: only Flatten(1, -1) is supported, got "
                            f"start_dim={module.start_dim}, end_dim={module.end_dim}")
        if len(shape) == 3:  # ours flattens (H, W, C) order: go to NHWC first
            name = self.node("Transpose", [name], prefix, perm=[0, 2, 3, 1])
        return self.node("Flatten", [name], prefix, axis=1), (int(np.prod(shape)),)

    def _linear(self, module, x, prefix):
        name, shape = x
        if len(shape) != 1:
            raise TypeError(f"to_onnx: {prefix}: Linear on feature maps of shape {shape} is not supported "
                            "(pool or flatten first)")
        inputs = [name, self.const(f"{prefix}.weight", module.weight.data.T)]
        if module.bias is not None:
            inputs.append(self.const(f"{prefix}.bias", module.bias.data))
        return self.node("Gemm", inputs, prefix, transB=1), (module.out_features,)

    # --------------------------------------------------------------- blocks
    def _se(self, module, x, prefix):
        """timm's form: GlobalAveragePool, 1x1 Conv, Relu, 1x1 Conv, Sigmoid, Mul."""
        name, shape = x
        s = self.node("GlobalAveragePool", [name], prefix)
        for i, fc in enumerate((module.fc1, module.fc2)):
            path = f"{prefix}.fc{i + 1}"
            w = self.const(f"{path}.weight", fc.weight.data.T[:, :, None, None])
            b = self.const(f"{path}.bias", fc.bias.data)
            s = self.node("Conv", [s, w, b], path, kernel_shape=[1, 1])
            s = self.node("Relu" if i == 0 else "Sigmoid", [s], path)
        return self.node("Mul", [name, s], prefix), shape

    def _add(self, a, b, prefix):
        if a[1] != b[1]:
            raise ValueError(f"to_onnx: {prefix}: residual shapes differ, {a[1]} and {b[1]}")
        return self.node("Add", [a[0], b[0]], prefix), a[1]

    def _resnet_block(self, block, x, prefix):
        names = ["1", "2"] if not hasattr(block, "conv3") else ["1", "2", "3"]
        out = x
        for i, n in enumerate(names):
            out = self._conv_bn(block, f"conv{n}", f"bn{n}", out, prefix)
            if i < len(names) - 1:
                out = self._child(block, "relu", out, prefix)
        if block.se is not None:
            out = self._child(block, "se", out, prefix)
        identity = x if block.downsample is None else self._child(block, "downsample", x, prefix)
        out = self._add(out, identity, prefix)
        return self._child(block, "relu", out, prefix)

    def _xception_block(self, block, x, prefix):
        out = self._child(block, "rep", x, prefix)
        if block.se is not None:
            out = self._child(block, "se", out, prefix)
        identity = x if block.skip is None else self._conv_bn(block, "skip", "skipbn", x, prefix)
        return self._add(out, identity, prefix)

    def _resnet(self, model, x, prefix):
        x = self._conv_bn(model, "conv1", "bn1", x, prefix)
        x = self._child(model, "relu", x, prefix)
        if model.maxpool is not None:
            x = self._child(model, "maxpool", x, prefix)
        for name in model.stage_names:
            x = self._child(model, name, x, prefix)
        x = self._child(model, "avgpool", x, prefix)
        return self._child(model, "fc", x, prefix)

    def _xception(self, model, x, prefix):
        for i in (1, 2):
            x = self._conv_bn(model, f"conv{i}", f"bn{i}", x, prefix)
            x = self._child(model, f"act{i}", x, prefix)
        for name in model.block_names:
            x = self._child(model, name, x, prefix)
        for i in (3, 4):
            x = self._conv_bn(model, f"conv{i}", f"bn{i}", x, prefix)
            x = self._child(model, f"act{i}", x, prefix)
        x = self._child(model, "global_pool", x, prefix)
        return self._child(model, "fc", x, prefix)


def _bn_affine(bn):
    """Eval-mode BatchNorm as ``y = scale * x + shift`` per channel (float64)."""
    if not bn.track_running_stats:
        raise TypeError("to_onnx: cannot fold a BatchNorm2d without running statistics")
    scale = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.data.astype(np.float64)
    shift = -bn.running_mean.astype(np.float64) * scale
    if bn.bias is not None:
        shift = shift + bn.bias.data.astype(np.float64)
    return scale, shift


__all__ = ["to_onnx", "to_torch"]
