"""The benchmark cases: ResNet-34 (CIFAR) and Xception layer shapes, float32, channels-last.

A ``Case`` knows its input shape, its cost (FLOPs, bytes moved) and how to
build the callables that tinycnn's kernels, their NumPy twins and PyTorch run.
"""

import types

import numpy as np

ITEM = 4  # bytes per float32


class Case:
    """A benchmark case: ``prepare(N, rng)`` allocates the arrays and returns
    ``(make, make_torch)``; ``make(K)`` gives ``(fwd, fwdbwd)`` callables for a
    kernel namespace ``K`` (tinycnn's kernels or ``reference``), ``make_torch(torch,
    channels_last)`` the same for PyTorch.  ``cost(N)`` gives the forward FLOPs
    (None for memory-bound ops, which report GB/s only) and the bytes each pass
    moves."""

    def __init__(self, name, group, x_shape, cost, prepare, compute_bound):
        self.name, self.group = name, group
        self.x_shape = x_shape          # function N -> (N, H, W, C)
        self.cost = cost                # function N -> (flops_fwd, bytes_fwd, bytes_bwd)
        self.prepare = prepare
        self.compute_bound = compute_bound


def rand(rng, shape, scale=1.0):
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))


def _out(hw, k, stride, pad):
    return (hw + 2 * pad - k) // stride + 1


def _to_torch(torch, a, channels_last):
    """An NHWC array as an NCHW torch tensor in the default or channels_last layout."""
    t = torch.from_numpy(a).permute(0, 3, 1, 2)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return t.contiguous(memory_format=fmt)


def _torch_pair(torch, module, x, gy, channels_last):
    """``(fwd, fwdbwd)`` for a torch module: forward under no_grad; forward then
    backward of ``gy`` w.r.t. the input and the module's parameters."""
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    xt = _to_torch(torch, x, channels_last)
    gyt = _to_torch(torch, gy, channels_last)
    xg = xt.detach().requires_grad_()
    params = list(module.parameters())

    def fwd():
        with torch.no_grad():
            module(xt)

    def fwdbwd():
        xg.grad = None
        for p in params:
            p.grad = None
        module(xg).backward(gyt)

    return fwd, fwdbwd


def conv_case(name, group, cin, cout, hw, k, stride, pad):
    oh = _out(hw, k, stride, pad)

    def cost(N):
        x, w, y = N * hw * hw * cin, k * k * cin * cout, N * oh * oh * cout
        flops = 2 * N * oh * oh * cout * cin * k * k
        return flops, ITEM * (x + w + y), ITEM * ((y + w + x) + (x + y + w))

    def prepare(N, rng):
        x = rand(rng, (N, hw, hw, cin))
        w = rand(rng, (k, k, cin, cout), (k * k * cin) ** -0.5)
        gy = rand(rng, (N, oh, oh, cout))

        def make(K):
            def fwd():
                K.conv2d_forward(x, w, None, stride, pad)

            def fwdbwd():
                K.conv2d_forward(x, w, None, stride, pad)
                K.conv2d_backward_input(gy, w, x.shape, stride, pad)
                K.conv2d_backward_weight(x, gy, w.shape, stride, pad)
            return fwd, fwdbwd

        def make_torch(torch, channels_last):
            m = torch.nn.Conv2d(cin, cout, k, stride, pad, bias=False)
            return _torch_pair(torch, m, x, gy, channels_last)
        return make, make_torch

    return Case(name, group, lambda N: (N, hw, hw, cin), cost, prepare, True)


def depthwise_case(name, c, hw, k=3, stride=1, pad=1):
    oh = _out(hw, k, stride, pad)

    def cost(N):
        x, w, y = N * hw * hw * c, k * k * c, N * oh * oh * c
        return 2 * N * oh * oh * c * k * k, ITEM * (x + w + y), ITEM * ((y + w + x) + (x + y + w))

    def prepare(N, rng):
        x = rand(rng, (N, hw, hw, c))
        w = rand(rng, (k, k, c, 1), 1 / k)
        gy = rand(rng, (N, oh, oh, c))

        def make(K):
            def fwd():
                K.depthwise_conv2d_forward(x, w, None, stride, pad)

            both = getattr(K, "depthwise_conv2d_backward", None)  # one pass for both gradients

            def fwdbwd():
                K.depthwise_conv2d_forward(x, w, None, stride, pad)
                if both is not None:  # what DepthwiseConv2d.backward calls in training
                    both(x, gy, w, stride, pad)
                else:  # the NumPy reference has only the separate gradients
                    K.depthwise_conv2d_backward_input(gy, w, x.shape, stride, pad)
                    K.depthwise_conv2d_backward_weight(x, gy, w.shape, stride, pad)
            return fwd, fwdbwd

        def make_torch(torch, channels_last):
            m = torch.nn.Conv2d(c, c, k, stride, pad, groups=c, bias=False)
            return _torch_pair(torch, m, x, gy, channels_last)
        return make, make_torch

    return Case(name, "depthwise", lambda N: (N, hw, hw, c), cost, prepare, False)


def pool_case(name, op, hw, c, k, stride, pad):
    oh = _out(hw, k, stride, pad)

    def cost(N):
        x, y = N * hw * hw * c, N * oh * oh * c
        if op == "max":  # plus the int64 argmax, written forward and read backward
            return None, ITEM * (x + y) + 8 * y, ITEM * (y + x) + 8 * y
        return None, ITEM * (x + y), ITEM * (y + x)

    def prepare(N, rng):
        x = rand(rng, (N, hw, hw, c))
        gy = rand(rng, (N, oh, oh, c))

        def make(K):
            if op == "max":
                def fwd():
                    K.max_pool2d_forward(x, k, stride, pad)

                def fwdbwd():
                    _, argmax = K.max_pool2d_forward(x, k, stride, pad)
                    K.max_pool2d_backward(gy, argmax, x.shape)
            else:
                def fwd():
                    K.avg_pool2d_forward(x, k, stride, pad)

                def fwdbwd():
                    K.avg_pool2d_forward(x, k, stride, pad)
                    K.avg_pool2d_backward(gy, x.shape, k, stride, pad)
            return fwd, fwdbwd

        def make_torch(torch, channels_last):
            cls = torch.nn.MaxPool2d if op == "max" else torch.nn.AvgPool2d
            return _torch_pair(torch, cls(k, stride, pad), x, gy, channels_last)
        return make, make_torch

    return Case(name, "pool", lambda N: (N, hw, hw, c), cost, prepare, False)


def global_avg_case(name, hw, c):
    def cost(N):
        x, y = N * hw * hw * c, N * c
        return None, ITEM * (x + y), ITEM * (y + x)

    def prepare(N, rng):
        x = rand(rng, (N, hw, hw, c))
        gy = rand(rng, (N, c))

        def make(K):
            def fwd():
                K.global_avg_pool2d_forward(x)

            def fwdbwd():
                K.global_avg_pool2d_forward(x)
                K.global_avg_pool2d_backward(gy, x.shape)
            return fwd, fwdbwd

        def make_torch(torch, channels_last):
            m = torch.nn.AdaptiveAvgPool2d(1)
            return _torch_pair(torch, m, x, gy.reshape(N, 1, 1, c), channels_last)
        return make, make_torch

    return Case(name, "pool", lambda N: (N, hw, hw, c), cost, prepare, False)


def batchnorm_case(name, hw, c, eps=1e-5):
    def cost(N):
        x = N * hw * hw * c
        return None, ITEM * 2 * x, ITEM * 3 * x  # fwd: x -> y; bwd: gy, x -> gx

    def prepare(N, rng):
        x = rand(rng, (N, hw, hw, c))
        gy = rand(rng, (N, hw, hw, c))
        weight = 1 + rand(rng, (c,), 0.1)
        bias = rand(rng, (c,), 0.1)

        def make(K):
            def fwd():
                K.batch_norm_forward_train(x, weight, bias, eps)

            def fwdbwd():
                _, mean, _, invstd = K.batch_norm_forward_train(x, weight, bias, eps)
                K.batch_norm_backward(gy, x, mean, invstd, weight)
            return fwd, fwdbwd

        def make_torch(torch, channels_last):
            m = torch.nn.BatchNorm2d(c, eps=eps).train()
            return _torch_pair(torch, m, x, gy, channels_last)
        return make, make_torch

    return Case(name, "batchnorm", lambda N: (N, hw, hw, c), cost, prepare, False)


def all_cases():
    """The benchmark cases, in report order."""
    cases = []
    for c, hw in ((64, 32), (128, 16), (256, 8), (512, 4)):
        cases.append(conv_case(f"conv3x3 {c}@{hw}x{hw}", "conv", c, c, hw, 3, 1, 1))
    for c, hw in ((64, 32), (128, 16), (256, 8)):
        cases.append(conv_case(f"conv3x3 s2 {c}->{2 * c} @{hw}x{hw}", "conv", c, 2 * c, hw, 3, 2, 1))
    for c, hw in ((64, 32), (128, 16), (256, 8)):
        cases.append(conv_case(f"conv1x1 s2 {c}->{2 * c} @{hw}x{hw}", "conv", c, 2 * c, hw, 1, 2, 0))
    for c, hw in ((128, 32), (728, 19), (728, 8)):
        cases.append(depthwise_case(f"depthwise3x3 {c}@{hw}x{hw}", c, hw))
    for c, hw in ((128, 32), (728, 19), (728, 8)):
        cases.append(conv_case(f"pointwise1x1 {c}->{c} @{hw}x{hw}", "pointwise", c, c, hw, 1, 1, 0))
    cases.append(pool_case("maxpool 3x3 s2 p1", "max", 32, 64, 3, 2, 1))
    cases.append(pool_case("maxpool 2x2 s2", "max", 32, 64, 2, 2, 0))
    cases.append(pool_case("avgpool 3x3 s2 p1", "avg", 32, 64, 3, 2, 1))
    cases.append(pool_case("avgpool 2x2 s2", "avg", 32, 64, 2, 2, 0))
    cases.append(global_avg_case("global avgpool", 8, 512))
    cases.append(batchnorm_case("batchnorm 64@32x32", 32, 64))
    cases.append(batchnorm_case("batchnorm 128@16x16", 16, 128))
    return cases


def fast_kernels():
    """tinycnn's kernels as one namespace with the names ``reference`` uses."""
    from tinycnn.kernels import batchnorm, conv, depthwise, pool

    ns = types.SimpleNamespace()
    for module in (conv, depthwise, pool, batchnorm):
        for name in module.__all__:
            setattr(ns, name, getattr(module, name))
    return ns
