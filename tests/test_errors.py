"""Bad input raises ValueError/TypeError whose message names the op, what it
expected and what it got (never an IndexError or a NumPy message alone)."""

import numpy as np
import pytest

import tinycnn.functional as F
from tinycnn import Tensor


def t(*shape, dtype=np.float64):
    return Tensor(np.ones(shape, dtype=dtype))


LOGITS = t(2, 3)

CASES = [
    # ---------------------------------------------------------- broadcasting
    ("add", lambda: t(2, 3) + t(4), ValueError, r"add: shapes \(2, 3\) and \(4,\) do not broadcast"),
    ("sub", lambda: F.sub(t(3, 4, 5), t(2, 5)), ValueError, r"sub: shapes \(3, 4, 5\) and \(2, 5\) do not broadcast"),
    ("mul", lambda: t(2) * t(3), ValueError, r"mul: shapes \(2,\) and \(3,\) do not broadcast"),
    ("div", lambda: F.div(t(2, 2), t(2, 3)), ValueError, r"div: shapes \(2, 2\) and \(2, 3\) do not broadcast"),
    ("add str", lambda: t(2) + "a", TypeError, r"add: .*str"),
    ("add two numbers", lambda: F.add(1.0, 2.0), TypeError, r"add: expected at least one Tensor, got float and float"),
    # ---------------------------------------------------------------- matmul
    ("matmul inner", lambda: t(2, 3) @ t(4, 5), ValueError, r"matmul: inner sizes differ: \(2, 3\) @ \(4, 5\).*got 3 and 4"),
    ("matmul batched inner", lambda: t(5, 2, 3) @ t(2, 5), ValueError, r"matmul: inner sizes differ.*got 3 and 2"),
    ("matmul 1-D", lambda: t(3) @ t(3, 2), ValueError, r"matmul: both operands must be at least 2-D, got shapes \(3,\) and \(3, 2\)"),
    ("matmul batch", lambda: t(2, 3, 4) @ t(3, 4, 5), ValueError, r"matmul: batch shapes \(2,\) and \(3,\) do not broadcast"),
    # --------------------------------------------------------- cross_entropy
    ("ce target too big", lambda: F.cross_entropy(LOGITS, np.array([0, 3])), ValueError, r"cross_entropy: targets must lie in \[0, 3\) for 3 classes, got 3"),
    ("ce target negative", lambda: F.cross_entropy(LOGITS, [-1, 0]), ValueError, r"cross_entropy: .*\[0, 3\).*got -1"),
    ("ce float targets", lambda: F.cross_entropy(LOGITS, np.array([0.0, 1.0])), TypeError, r"cross_entropy: targets must be integer class indices, got dtype float64"),
    ("ce float tensor targets", lambda: F.cross_entropy(LOGITS, Tensor([0, 1])), TypeError, r"cross_entropy: .*float32"),
    ("ce targets shape", lambda: F.cross_entropy(LOGITS, np.array([0, 1, 2])), ValueError, r"cross_entropy: targets must have shape \(2,\) to match logits \(2, 3\), got \(3,\)"),
    ("ce targets 2-D", lambda: F.cross_entropy(LOGITS, np.zeros((2, 1), int)), ValueError, r"cross_entropy: .*shape \(2,\).*got \(2, 1\)"),
    ("ce logits 1-D", lambda: F.cross_entropy(t(3), np.array([0])), ValueError, r"cross_entropy: logits must be 2-D \(N, C\), got shape \(3,\)"),
    ("ce smoothing", lambda: F.cross_entropy(LOGITS, [0, 1], label_smoothing=1.5), ValueError, r"cross_entropy: label_smoothing must be a number in \[0, 1\], got 1.5"),
    ("ce reduction", lambda: F.cross_entropy(LOGITS, [0, 1], reduction="avg"), ValueError, r"cross_entropy: reduction must be one of .*'mean'.*got 'avg'"),
    ("mse shapes", lambda: F.mse_loss(t(2, 3), t(3, 2)), ValueError, r"mse_loss: input and target shapes differ: \(2, 3\) and \(3, 2\)"),
    ("mse reduction", lambda: F.mse_loss(t(2), t(2), reduction="max"), ValueError, r"mse_loss: reduction must be one of .*got 'max'"),
    # ----------------------------------------------------------- tensor data
    ("str data", lambda: Tensor("abc"), TypeError, r"Tensor: data must be numbers or an array, got str"),
    ("bytes data", lambda: Tensor(b"abc"), TypeError, r"Tensor: data must be numbers or an array, got bytes"),
    ("None data", lambda: Tensor(None), TypeError, r"Tensor: data must be numbers or an array, got NoneType"),
    ("object data", lambda: Tensor(object()), TypeError, r"Tensor: data must be numeric .*got dtype object holding object"),
    ("list of str", lambda: Tensor(["a", "b"]), TypeError, r"Tensor: data must be numeric .*got dtype <U1"),
    ("list with None", lambda: Tensor([1.0, None]), TypeError, r"Tensor: data must be numeric .*dtype object"),
    ("ragged list", lambda: Tensor([[1.0], [1.0, 2.0]]), TypeError, r"Tensor: data must be numbers or an array"),
    ("complex data", lambda: Tensor(1 + 2j), TypeError, r"Tensor: data must be numeric .*complex128"),
    ("string dtype", lambda: Tensor([1.0], dtype=str), TypeError, r"Tensor: dtype must be a real numeric dtype, got <U"),
    ("int requires grad", lambda: Tensor([1, 2], dtype=np.int64, requires_grad=True), TypeError, r"Tensor: only float32/float64 tensors can require grad, got int64"),
    # ------------------------------------------------------------------ axes
    ("sum axis", lambda: F.sum(t(2, 3), axis=2), ValueError, r"sum: axis 2 is out of range for a 2-D tensor"),
    ("mean axis", lambda: t(2, 3).mean(axis=-3), ValueError, r"mean: axis -3 is out of range for a 2-D tensor"),
    ("max axis", lambda: F.max(t(2, 3), axis=(0, 5)), ValueError, r"max: axis 5 is out of range for a 2-D tensor"),
    ("sum repeated axis", lambda: F.sum(t(2, 3), axis=(1, -1)), ValueError, r"sum: repeated axis in \(1, -1\)"),
    ("sum float axis", lambda: F.sum(t(2, 3), axis=1.0), TypeError, r"sum: axis must be None, an int or a tuple of ints, got 1.0"),
    ("softmax axis", lambda: F.softmax(t(2, 3), axis=2), ValueError, r"softmax: axis 2 is out of range for 2-D tensors"),
    ("log_softmax axis", lambda: F.log_softmax(t(4), axis=-2), ValueError, r"log_softmax: axis -2 is out of range for 1-D tensors"),
    ("concatenate axis", lambda: F.concatenate([t(2, 3), t(2, 3)], axis=2), ValueError, r"concatenate: axis 2 is out of range for 2-D tensors"),
    ("stack axis", lambda: F.stack([t(2), t(2)], axis=2), ValueError, r"stack: axis 2 is out of range for 2-D tensors"),
    ("transpose axis", lambda: t(2, 3).transpose(0, 2), ValueError, r"transpose: axis 2 is out of range for 2-D tensors"),
    ("transpose one axis", lambda: t(2, 3).transpose(0), TypeError, r"transpose: give both dim0 and dim1, or neither"),
    ("flatten axis", lambda: F.flatten(t(2, 3), 3), ValueError, r"flatten: axis 3 is out of range for 2-D tensors"),
    ("flatten order", lambda: F.flatten(t(2, 3, 4), 2, 1), ValueError, r"flatten: start_dim 2 comes after end_dim 1"),
    ("permute out of range", lambda: F.permute(t(2, 3), (0, 5)), ValueError, r"permute: axis 5 is out of range for 2-D tensors"),
    ("permute negative", lambda: t(2, 3).permute(0, -3), ValueError, r"permute: axis -3 is out of range for 2-D tensors"),
    ("permute repeated", lambda: F.permute(t(2, 3), (1, 1)), ValueError, r"permute: axes \(1, 1\) are not a permutation of the 2 axes of shape \(2, 3\)"),
    ("permute length", lambda: F.permute(t(2, 3), (1, 0, 2)), ValueError, r"permute: axes \(1, 0, 2\) are not a permutation"),
    # ---------------------------------------------------------------- reshape
    ("reshape size", lambda: t(2, 3).reshape(4, 2), ValueError, r"reshape: cannot reshape a tensor of shape \(2, 3\) \(size 6\) into \(4, 2\)"),
    ("reshape two -1", lambda: F.reshape(t(2, 3), (-1, -1)), ValueError, r"reshape: .*\(2, 3\) \(size 6\) into \(-1, -1\)"),
    ("reshape -1 not dividing", lambda: F.reshape(t(2, 3), (-1, 4)), ValueError, r"reshape: .*size 6\) into \(-1, 4\)"),
    ("reshape negative", lambda: F.reshape(t(2, 3), (-2, -3)), ValueError, r"reshape: .*into \(-2, -3\)"),
    # -------------------------------------------------------------------- pad
    ("pad negative", lambda: F.pad(t(2, 3), ((1, 1), (0, -1))), ValueError, r"pad: pad_width must be non-negative, got \(\(1, 1\), \(0, -1\)\)"),
    ("pad too many pairs", lambda: F.pad(t(2, 3), ((1, 1), (1, 1), (1, 1))), ValueError, r"pad: pad_width must be an int, a \(before, after\) pair, or 2 such pairs; got"),
    ("pad triple", lambda: F.pad(t(2, 3), (1, 2, 3)), ValueError, r"pad: pad_width must be .*2 such pairs; got \(1, 2, 3\)"),
    ("pad float widths", lambda: F.pad(t(2, 3), 1.5), TypeError, r"pad: pad_width must hold integers, got 1.5"),
    # -------------------------------------------------------------------- pow
    ("pow tensor exponent", lambda: t(2) ** t(2), TypeError, r"pow: exponent must be a real Python or NumPy scalar, got Tensor"),
    ("pow array exponent", lambda: F.pow(t(2), np.array([1.0, 2.0])), TypeError, r"pow: exponent must be .*got ndarray"),
    ("pow str exponent", lambda: t(2) ** "2", TypeError, r"pow: exponent must be .*got str"),
    ("pow bool exponent", lambda: t(2) ** True, TypeError, r"pow: exponent must be .*got bool"),
    # ------------------------------------------------------- join and index
    ("concatenate shapes", lambda: F.concatenate([t(2, 3), t(3, 4)], axis=0), ValueError, r"concatenate: tensor 1 has shape \(3, 4\), which does not match \(2, 3\) outside axis 0"),
    ("concatenate ndim", lambda: F.concatenate([t(2, 3), t(2)], axis=0), ValueError, r"concatenate: tensor 1 has shape \(2,\)"),
    ("concatenate 0-d", lambda: F.concatenate([t(), t()]), ValueError, r"concatenate: 0-d tensors cannot be concatenated"),
    ("concatenate empty", lambda: F.concatenate([]), TypeError, r"concatenate: expected a non-empty list or tuple of tensors"),
    ("concatenate a tensor", lambda: F.concatenate(t(2, 3)), TypeError, r"concatenate: expected a non-empty list or tuple"),
    ("concatenate dtypes", lambda: F.concatenate([t(2), t(2, dtype=np.float32)]), TypeError, r"concatenate: all tensors must share a dtype, got \['float32', 'float64'\]"),
    ("stack shapes", lambda: F.stack([t(2, 3), t(2, 3), t(3, 2)]), ValueError, r"stack: tensor 2 has shape \(3, 2\), expected \(2, 3\) like tensor 0"),
    ("getitem out of range", lambda: t(2, 3)[2], ValueError, r"getitem: index .* does not fit a tensor of shape \(2, 3\)"),
    ("getitem array out of range", lambda: t(2, 3)[:, [0, 3]], ValueError, r"getitem: .*shape \(2, 3\)"),
    ("getitem too many", lambda: t(2, 3)[0, 0, 0], ValueError, r"getitem: .*shape \(2, 3\)"),
    ("getitem float", lambda: t(2, 3)[1.0], TypeError, r"getitem: indices must be integers, slices or integer arrays, got float 1.0"),
    ("getitem float array", lambda: t(2, 3)[np.array([0.0, 1.0])], TypeError, r"getitem: index arrays must hold integers or bools, got dtype float64"),
    # ----------------------------------------------------- other arguments
    ("clip order", lambda: F.clip(t(2), 1.0, 0.0), ValueError, r"clip: min must not exceed max, got min=1.0, max=0.0"),
    ("clip no bounds", lambda: t(2).clip(), ValueError, r"clip: give at least one of min and max"),
    ("clip str bound", lambda: F.clip(t(2), "0"), TypeError, r"clip: min must be a real number or None, got str"),
    ("leaky_relu slope", lambda: F.leaky_relu(t(2), "0.1"), TypeError, r"leaky_relu: negative_slope must be a real number, got str"),
    ("cast int", lambda: F.cast(t(2), np.int32), TypeError, r"cast: dtype must be float32 or float64, got int32"),
    ("mean empty", lambda: F.mean(t(0, 3)), ValueError, r"mean: cannot average an empty tensor of shape \(0, 3\)"),
    ("max empty", lambda: F.max(t(0)), ValueError, r"max: cannot reduce an empty tensor of shape \(0,\)"),
]


@pytest.mark.parametrize("call, error, message", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_backward_grad_of_the_wrong_shape():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"backward: grad must have the output's shape \(2, 3\), got \(3, 2\)"):
        (x * 2.0).backward(np.ones((3, 2)))


def test_backward_of_a_tensor_without_graph():
    with pytest.raises(RuntimeError, match="backward: this tensor does not require grad"):
        Tensor([1.0]).backward()


def test_len_of_a_zero_dim_tensor():
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(Tensor(1.0))
