"""Helpers shared by the models: the input check and the weight initialisation."""

import numbers

from tinycnn import nn


def check_input(model, x, in_chans):
    """Refuse anything but a channels-last (N, H, W, in_chans) batch, naming
    the model, the expected layout and the shape it got."""
    shape = getattr(x, "shape", None)
    name = type(model).__name__
    if shape is None or len(shape) != 4 or shape[3] != in_chans:
        got = f"shape {tuple(shape)}" if shape is not None else f"a {type(x).__name__}"
        hint = ""
        if shape is not None and len(shape) == 4 and shape[1] == in_chans:
            hint = " (this looks like NCHW: transpose it with x.transpose(0, 2, 3, 1))"
        raise ValueError(f"{name} expects (N, H, W, C) input with C = {in_chans} channels, got {got}{hint}")


def check_se_reduction(model_name, se, se_reduction):
    """With ``se=True``, ``se_reduction`` must be an int >= 1 (0 or None would
    silently build a model without SE units)."""
    if not se:
        return None
    if isinstance(se_reduction, bool) or not isinstance(se_reduction, numbers.Integral):
        raise TypeError(f"{model_name}: se_reduction must be an int, got {type(se_reduction).__name__}")
    if se_reduction < 1:
        raise ValueError(f"{model_name}: se_reduction must be >= 1, got {se_reduction}")
    return int(se_reduction)


def init_weights(model):
    """He et al. (2015) normal initialisation, fan-out mode, for every
    convolution; BatchNorm gamma 1 and beta 0.  Dense layers keep their
    default (uniform in +-1/sqrt(in_features), as PyTorch).

    Fan-out is computed as PyTorch does for its (C_out, C_in/groups, KH, KW)
    weight: ``C_out * KH * KW``; a depthwise weight (KH, KW, C, M) is
    PyTorch's (C*M, 1, KH, KW), so its fan-out is ``C * M * KH * KW``.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.DepthwiseConv2d)):
            KH, KW, C, M = module.weight.shape
            fan_out = KH * KW * M if isinstance(module, nn.Conv2d) else KH * KW * C * M
            nn.init.kaiming_normal_(module.weight, fan=fan_out, nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
