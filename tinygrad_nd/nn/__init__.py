"""Neural-network building blocks (PyTorch names): ``Module``, ``Parameter``, layers, containers,
``init`` (weight initialisers) and ``functional`` (composites of the primitives)."""
from . import functional  # noqa: F401
from . import init  # noqa: F401
from .module import Module, Parameter
from .container import ModuleList, Sequential
from .layers import (
    CrossEntropyLoss, Dropout, Flatten, Identity, Linear, MSELoss, ReLU, Sigmoid, Tanh,
)
from .conv_layers import (
    AvgPool1d, AvgPool2d, AvgPool3d, AvgPoolNd, Conv1d, Conv2d, Conv3d, ConvNd, MaxPool1d,
    MaxPool2d, MaxPool3d, MaxPoolNd,
)
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d, BatchNormNd

__all__ = [
    "functional", "init", "Module", "Parameter", "Sequential", "ModuleList", "Linear", "Identity",
    "ReLU", "Sigmoid", "Tanh", "Flatten", "Dropout", "MSELoss", "CrossEntropyLoss", "ConvNd",
    "Conv1d", "Conv2d", "Conv3d", "MaxPoolNd", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPoolNd",
    "AvgPool1d", "AvgPool2d", "AvgPool3d", "BatchNormNd", "BatchNorm1d", "BatchNorm2d",
    "BatchNorm3d",
]
