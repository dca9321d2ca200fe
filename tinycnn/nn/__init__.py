"""Modules: layers with parameters and state, and containers of them."""

from . import fusion, init
from .fusion import fuse, fusion_disabled, unfuse
from .layers import (
    AvgPool2d, BatchNorm2d, Conv2d, DepthwiseConv2d, Dropout, Flatten, GlobalAvgPool2d, Identity,
    LeakyReLU, Linear, MaxPool2d, ReLU, SeparableConv2d, Sequential, Sigmoid, Tanh,
)
from .module import Module, Parameter, parameter_budget

__all__ = [
    "AvgPool2d", "BatchNorm2d", "Conv2d", "DepthwiseConv2d", "Dropout", "Flatten", "GlobalAvgPool2d",
    "Identity", "LeakyReLU", "Linear", "MaxPool2d", "Module", "Parameter", "ReLU", "SeparableConv2d",
    "Sequential", "Sigmoid", "Tanh", "fuse", "fusion", "fusion_disabled", "init", "parameter_budget", "unfuse",
]
