"""Argument normalisation shared by every kernel wrapper and the functional layer.

Each helper turns a user-facing argument (an int, a pair, ``'same'``...) into
plain Python ints, or raises a ``TypeError``/``ValueError`` whose message names
the argument, the expected and the actual value.  Nothing here imports Numba.
"""

import math
import numbers

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def pair(value, name, minimum=1):
    """Return ``value`` as a pair of ints ``(a, b)``, each ``>= minimum``.

    Accepts an int (used for both) or a sequence of exactly two ints.  Bools,
    floats and strings are refused with a TypeError; a wrong length or a value
    below ``minimum`` with a ValueError.
    """
    if _is_int(value):
        items = (int(value), int(value))
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r} "
                        f"({type(value).__name__})")
    else:
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got a sequence "
                             f"of length {len(value)}: {value!r}")
        if not all(_is_int(v) for v in value):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        items = (int(value[0]), int(value[1]))
    if min(items) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return items


def resolve_padding(padding, kernel_size, dilation, stride, in_hw, name="padding"):
    """Return explicit padding ``(PT, PB, PL, PR)`` (top, bottom, left, right).

    ``padding`` may be an int, a pair ``(PH, PW)``, an explicit 4-tuple
    ``(top, bottom, left, right)``, ``'valid'`` (no padding) or ``'same'``:
    the output is ``ceil(in / stride)`` along each axis, and when the total
    padding is odd the extra pixel goes bottom/right (as in TensorFlow).
    ``kernel_size``, ``dilation`` and ``stride`` are ints or pairs; ``in_hw``
    is the input's ``(H, W)``.  Negative padding raises ValueError.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode != "same":
            raise ValueError(f"{name} must be an int, a pair, 'same' or 'valid', "
                             f"got {padding!r}")
        KH, KW = pair(kernel_size, "kernel_size")
        DH, DW = pair(dilation, "dilation")
        SH, SW = pair(stride, "stride")
        H, W = in_hw
        pads = []
        for size, k, d, s in ((H, KH, DH, SH), (W, KW, DW, SW)):
            out = -(-size // s)  # ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    if hasattr(padding, "__len__") and not isinstance(padding, bytes) and len(padding) == 4:
        if not all(_is_int(v) for v in padding):
            raise TypeError(f"{name} must hold ints, got {padding!r}")
        pads = tuple(int(v) for v in padding)
        if min(pads) < 0:
            raise ValueError(f"{name} must be >= 0, got {padding!r}")
        return pads
    PH, PW = pair(padding, name, minimum=0)
    return (PH, PH, PW, PW)


def conv_output_size(in_size, k, stride, pad_lo, pad_hi, dilation, name="kernel_size"):
    """Output length of a sliding window along one axis.

    ``(in_size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1``.
    Raises ValueError (naming ``name``) when the dilated kernel
    ``dilation * (k - 1) + 1`` is larger than the padded input.
    """
    padded = in_size + pad_lo + pad_hi
    span = dilation * (k - 1) + 1
    if span > padded:
        raise ValueError(f"{name}: the dilated kernel spans {span} pixels but the padded "
                         f"input is only {padded} (input {in_size} + padding {pad_lo}+{pad_hi}); "
                         f"expected a kernel span <= {padded}")
    return (padded - span) // stride + 1


def conv_output_hw(in_hw, kernel_size, stride, pads, dilation, name="kernel_size"):
    """Return ``(OH, OW)`` for input ``(H, W)`` and explicit ``pads`` (PT, PB, PL, PR).

    Validates that the dilated kernel fits in the padded input (ValueError).
    """
    KH, KW = pair(kernel_size, "kernel_size")
    SH, SW = pair(stride, "stride")
    DH, DW = pair(dilation, "dilation")
    PT, PB, PL, PR = pads
    H, W = in_hw
    OH = conv_output_size(H, KH, SH, PT, PB, DH, name=f"{name} (height)")
    OW = conv_output_size(W, KW, SW, PL, PR, DW, name=f"{name} (width)")
    return OH, OW


class ConvGeometry:
    """The normalised arguments of a sliding window over an input ``(N, H, W, C)``.

    Attributes: ``N, H, W, C``; kernel ``KH, KW``; stride ``SH, SW``; dilation
    ``DH, DW``; explicit padding ``pads = (PT, PB, PL, PR)``, also as ``PT, PB,
    PL, PR``; output size ``OH, OW``.  ``kernel_size`` is an int or a pair (a
    weight's ``w.shape[:2]`` serves), ``padding`` anything ``resolve_padding``
    takes.  Raises as ``pair``, ``resolve_padding`` and ``conv_output_hw`` do.

    The one place where the convolution, depthwise and pooling wrappers and
    their NumPy twins in ``reference`` turn user arguments into ints.
    """

    def __init__(self, x_shape, kernel_size, stride, padding, dilation):
        self.N, self.H, self.W, self.C = x_shape
        self.KH, self.KW = pair(kernel_size, "kernel_size")
        self.SH, self.SW = pair(stride, "stride")
        self.DH, self.DW = pair(dilation, "dilation")
        self.pads = resolve_padding(padding, (self.KH, self.KW), (self.DH, self.DW),
                                    (self.SH, self.SW), (self.H, self.W))
        self.PT, self.PB, self.PL, self.PR = self.pads
        self.OH, self.OW = conv_output_hw((self.H, self.W), (self.KH, self.KW), (self.SH, self.SW),
                                          self.pads, (self.DH, self.DW))


def pool_geometry(x_shape, kernel_size, stride, padding):
    """``ConvGeometry`` of a pooling window: ``stride`` defaults to ``kernel_size``
    (when None), ``padding`` is an int or a pair ``(PH, PW)``, used on both sides
    and at most half the kernel, dilation 1.  So ``OH = floor((H + 2*PH - KH) / SH) + 1``
    (no ceil mode), and ``PT = PB = PH``, ``PL = PR = PW``."""
    KH, KW = pair(kernel_size, "kernel_size")
    SH, SW = (KH, KW) if stride is None else pair(stride, "stride")
    PH, PW = pair(padding, "padding", minimum=0)
    if PH > KH // 2 or PW > KW // 2:
        raise ValueError(f"padding must be at most half the kernel size, i.e. <= "
                         f"({KH // 2}, {KW // 2}) for kernel_size ({KH}, {KW}); got "
                         f"padding ({PH}, {PW})")
    return ConvGeometry(x_shape, (KH, KW), (SH, SW), (PH, PW), 1)


def check_groups(groups, C, KH, KW, CG_w, O, x_name="x"):
    """``groups`` as an int, checked against the input channels ``C`` and a grouped
    convolution's weight ``(KH, KW, CG_w, O)``: it must divide ``C`` and ``O``, and
    ``CG_w`` must be ``C // groups``."""
    if not _is_int(groups):
        raise TypeError(f"groups must be an int, got {groups!r} ({type(groups).__name__})")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    if C % groups != 0:
        raise ValueError(f"groups={groups} must divide the input channels: {x_name} has "
                         f"C={C} channels")
    if O % groups != 0:
        raise ValueError(f"groups={groups} must divide the output channels: weight has "
                         f"C_out={O} channels")
    if CG_w != C // groups:
        raise ValueError(f"channel mismatch: weight (KH, KW, C_in/groups, C_out) = "
                         f"{(KH, KW, CG_w, O)} expects C_in/groups={CG_w}, but {x_name} has "
                         f"C={C} channels and groups={groups}, i.e. C_in/groups={C // groups}")
    return int(groups)


def check_nhwc(x, name):
    """Check that ``x`` is a 4-D float32/float64 ndarray laid out ``(N, H, W, C)``.

    TypeError for a non-ndarray or another dtype (float16, ints and bool are
    refused); ValueError for another number of dimensions or an empty
    H, W or C axis.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D with layout (N, H, W, C), got {x.ndim}-D "
                         f"array of shape {x.shape}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    if min(x.shape[1:]) == 0:
        raise ValueError(f"{name} must have non-empty H, W and C axes (N, H, W, C), "
                         f"got shape {x.shape}")


def check_weight(w, layout, name="w"):
    """Check that ``w`` is a 4-D float32/float64 ndarray with no empty axis;
    ``layout`` (e.g. ``"(KH, KW, C, M)"``) goes into the message."""
    if not isinstance(w, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(w).__name__}")
    if w.ndim != 4:
        raise ValueError(f"{name} must be 4-D with layout {layout}, got {w.ndim}-D "
                         f"array of shape {w.shape}")
    if w.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {w.dtype}")
    if min(w.shape) == 0:
        raise ValueError(f"{name} must have no empty axis, got shape {w.shape}")


def check_same_dtype(a, a_name, b, b_name):
    """TypeError unless arrays ``a`` and ``b`` share a dtype."""
    if a.dtype != b.dtype:
        raise TypeError(f"{a_name} and {b_name} must have the same dtype, got "
                        f"{a_name}.dtype={a.dtype} and {b_name}.dtype={b.dtype}")


def check_shape4(shape, name, layout, allow_empty_batch=True):
    """``shape`` as a tuple of 4 ints with positive sizes (the first may be 0
    when ``allow_empty_batch``); ValueError naming ``name`` and ``layout``."""
    if (not hasattr(shape, "__len__") or isinstance(shape, str) or len(shape) != 4
            or not all(_is_int(s) for s in shape)):
        raise ValueError(f"{name} must be 4 ints {layout}, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if min(shape[1:]) < 1 or shape[0] < (0 if allow_empty_batch else 1):
        raise ValueError(f"{name} must have positive sizes {layout}, got {shape}")
    return shape


def check_output_grad(gy, expected, layout):
    """Check that the upstream gradient ``gy`` is an NHWC float array of the
    forward output's shape ``expected`` (``layout`` names its axes)."""
    check_nhwc(gy, "gy")
    if gy.shape != tuple(expected):
        raise ValueError(f"gy must have the output shape {layout} = {tuple(expected)}, "
                         f"got {gy.shape}")


# ------------------------------------------------------- scalar arguments
# One rule per kind of scalar, used by the kernel wrappers, the functions of
# tinycnn.functional and the layers alike (each passes ``name`` with its own
# prefix, e.g. "BatchNorm2d: eps"): a value of the wrong type is a TypeError,
# a number outside the range (or NaN) a ValueError.


def _real(value, name, expected):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    return float(value)


def check_eps(value, name="eps"):
    """``value`` as a float with ``0 < value < inf`` (a BatchNorm's eps: 0
    divides by zero on a constant channel)."""
    expected = "a positive finite number"
    eps = _real(value, name, expected)
    if not 0.0 < eps < math.inf:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return eps


def check_unit_interval(value, name, expected="a number in [0, 1]"):
    """``value`` as a float in ``[0, 1]`` (a momentum, a probability)."""
    number = _real(value, name, expected)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def check_positive_int(value, name):
    """``value`` as an int ``>= 1`` (a channel or feature count)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)
