"""Reverse-mode automatic differentiation: the Function base class, grad mode
and the backward pass.

A differentiable operation is a subclass of :class:`Function` whose
``forward`` (ndarrays in, one ndarray out) and ``backward`` (the output's
gradient in, one gradient per input out) sit next to each other.  ``forward``
stores on ``self`` only what ``backward`` needs; ``self.needs_input_grad``
tells ``backward`` which gradients it may skip (return ``None`` for those).

The backward pass orders the graph iteratively (no recursion: ResNet-152's
graph is deep), sums the gradients of tensors used more than once, reduces a
broadcast gradient back to its input's shape, and frees each node once it has
been used unless ``retain_graph=True``.

This module sits below ``tinycnn.tensor`` and does not import it: it knows a
tensor by what it carries (``data``, ``requires_grad``, ``grad`` and ``_ctx``,
the Function that computed it), and ``Function.apply`` makes its output
through its first input's ``_from_op``.
"""

import threading

import numpy as np

from . import anomaly

_state = threading.local()


def is_grad_enabled():
    """True unless inside a ``no_grad()`` block (per thread)."""
    return getattr(_state, "enabled", True)


class _GradMode:
    """Context manager and decorator that sets grad mode, restoring it after."""

    enabled = True

    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc):
        _state.enabled = self._previous
        return False

    def __call__(self, func):
        def wrapper(*args, **kwargs):
            with self.__class__():
                return func(*args, **kwargs)

        wrapper.__name__ = getattr(func, "__name__", "wrapper")
        wrapper.__doc__ = getattr(func, "__doc__", None)
        wrapper.__wrapped__ = func
        return wrapper


class no_grad(_GradMode):
    """Build no graph inside this block (inference, optimizer updates).

    Usable as ``with tinycnn.no_grad(): ...`` or as a decorator ``@no_grad()``.
    Results created inside have ``requires_grad=False`` and keep no
    activations alive.
    """

    enabled = False


class enable_grad(_GradMode):
    """Re-enable graph building inside a ``no_grad`` block."""

    enabled = True


class Function:
    """One differentiable operation.

    Subclasses implement ``forward(*arrays, **kwargs) -> ndarray`` and
    ``backward(gy) -> gradient or tuple of gradients`` (one per tensor input,
    ``None`` where ``needs_input_grad`` is False), and are called through
    :meth:`apply`.  Non-tensor arguments (axes, strides, integer targets) are
    passed as keyword arguments.
    """

    def __init__(self, *inputs):
        # The graph links this node to the nodes that made its inputs (or to
        # the leaf tensors themselves), never to intermediate tensors: an
        # intermediate's data is freed as soon as nothing else needs it, so
        # only what ``forward`` chose to save stays alive until backward.
        self.parents = tuple(_edge(t) for t in inputs)
        self.needs_input_grad = tuple(t.requires_grad for t in inputs)
        self.freed = False

    def forward(self, *arrays, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, gy):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run ``forward`` on the inputs' arrays; record the node if needed."""
        if not inputs:
            raise TypeError(f"{cls.__name__}.apply: needs at least one input tensor")
        fn = cls(*inputs)
        data = fn.forward(*(t.data for t in inputs), **kwargs)
        if not isinstance(data, np.ndarray):  # ufuncs and x[i, j] give NumPy scalars for 0-d results
            data = np.asarray(data)
        if anomaly.is_anomaly_enabled():
            anomaly.check_forward(fn, data)
        make = inputs[0]._from_op  # the tensor class makes its outputs: autograd does not import it
        return make(data, fn if is_grad_enabled() and any(fn.needs_input_grad) else None)

    def free(self):
        """Drop everything saved for backward and the links to the inputs."""
        name = type(self).__name__
        self.__dict__.clear()
        self.freed = True
        self.name = name

    @property
    def op_name(self):
        return getattr(self, "name", type(self).__name__)


def _edge(tensor):
    """``(node, shape, dtype)`` for an input that needs a gradient, else None.

    The node is the Function that computed the tensor, or the tensor itself
    for a leaf (whose ``.grad`` receives the gradient)."""
    if not tensor.requires_grad:
        return None
    node = tensor._ctx if tensor._ctx is not None else tensor
    return node, tensor.shape, tensor.dtype


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting expanded to reach ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _topological_order(start):
    """Nodes reachable from ``start`` (Functions, and leaf tensors), inputs first.

    Iterative depth-first search: each node is appended after all of the
    nodes that computed its inputs.
    """
    order, visited = [], set()
    stack = [(start, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if not isinstance(node, Function):  # a leaf tensor
            continue
        if node.freed:
            raise RuntimeError(
                f"backward: the graph through {node.op_name} was already freed by an "
                "earlier backward(); call backward(retain_graph=True) the first time "
                "to backpropagate through the same graph twice"
            )
        for edge in node.parents:
            if edge is not None and id(edge[0]) not in visited:
                stack.append((edge[0], False))
    return order


def backward(root, grad=None, retain_graph=False):
    """Backpropagate from the tensor ``root``, seeded with the ndarray ``grad``
    (None: 1 for a single-element root); accumulate into the leaves' ``.grad``."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no graph "
            "(was it computed under no_grad(), or from inputs without requires_grad=True?)"
        )
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be omitted only for a single-element output; "
                f"this output has shape {root.shape}, so pass grad of that shape"
            )
        grad = np.ones_like(root.data)
    else:
        grad = np.asarray(grad)
        if grad.shape != root.shape:
            raise ValueError(
                f"backward: grad must have the output's shape {root.shape}, got {grad.shape}"
            )
        grad = grad.astype(root.dtype, copy=False)

    start = root._ctx if root._ctx is not None else root
    order = _topological_order(start)
    grads = {id(start): grad}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if not isinstance(node, Function):  # a leaf: its gradient is complete
            if node.grad is None:
                node.grad = np.array(g, dtype=node.dtype, copy=True)
            else:
                node.grad = node.grad + g
            continue
        fn = node
        input_grads = fn.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if anomaly.is_anomaly_enabled():
            anomaly.check_backward(fn, input_grads)
        for edge, pg in zip(fn.parents, input_grads):
            if pg is None or edge is None:
                continue
            parent, shape, dtype = edge
            pg = unbroadcast(np.asarray(pg), shape)
            if pg.dtype != dtype:
                pg = pg.astype(dtype)
            previous = grads.get(id(parent))
            grads[id(parent)] = pg if previous is None else previous + pg
        if not retain_graph:
            fn.free()
