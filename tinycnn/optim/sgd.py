"""Stochastic gradient descent with momentum, Nesterov and L2 weight decay."""

from .optimizer import NONNEGATIVE, Optimizer, _split_by_ndim, check_bool, check_number


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, dampening=0, weight_decay=0,
    nesterov=False, exempt_bn_and_bias=False)``, PyTorch's update rule::

        g = grad + weight_decay * p                  (L2 decay, added to the gradient)
        buf = g                                      (first step)
        buf = momentum * buf + (1 - dampening) * g   (later steps)
        g = g + momentum * buf if nesterov else buf  (when momentum != 0)
        p -= lr * g

    ``exempt_bn_and_bias=True`` gives every parameter with ``ndim <= 1``
    (BatchNorm gamma/beta, biases) weight_decay 0 by splitting each given
    group in two (decayed first, then exempt); empty halves are dropped.
    State per parameter: ``momentum_buffer`` (only when momentum != 0).
    """

    _state_keys = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 exempt_bn_and_bias=False):
        if check_bool("SGD", "exempt_bn_and_bias", exempt_bn_and_bias):
            params = _split_by_ndim(params)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for key in ("lr", "momentum", "dampening", "weight_decay"):
            check_number("SGD", key, group[key], NONNEGATIVE)
        if check_bool("SGD", "nesterov", group["nesterov"]) and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "SGD: nesterov=True requires momentum > 0 and dampening = 0, "
                f"got momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _update(self, p, grad, group, state):
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * p.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= lr * grad
