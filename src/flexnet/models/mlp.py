"""Multi-layer perceptron on flattened inputs."""
from __future__ import annotations

import math

from torch import nn

from ..errors import require
from .base import ARCHS, ArchSpec, activation as make_activation, affine_count


def mlp(input_shape, num_classes: int, depth: int = 1, width: int = 64, activation: str = "relu",
        dropout: float = 0.0) -> nn.Module:
    """`depth` hidden layers of `width` units, then a linear classifier.

    Zhang et al. Table 1 on 28x28x3 with 10 classes: depth 1 width 512 -> 1,209,866
    parameters; depth 3 width 512 -> 1,735,178.
    """
    require(int(depth) >= 0, "arch.depth", depth, "must be an integer >= 0")
    require(int(width) >= 1, "arch.width", width, "must be a positive integer")
    require(0.0 <= float(dropout) < 1.0, "arch.dropout", dropout, "must lie in [0, 1)")
    d_in = int(math.prod(input_shape))
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(int(depth)):
        layers += [nn.Linear(d_in if i == 0 else int(width), int(width)), make_activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(float(dropout)))
    layers.append(nn.Linear(int(width) if depth > 0 else d_in, int(num_classes)))
    return nn.Sequential(*layers)


ARCHS.add("mlp", ArchSpec(
    build=mlp,
    scalers={
        "width": lambda k, s: {**k, "width": max(1, int(round(s)))},
        "depth": lambda k, s: {**k, "depth": max(1, int(round(s)))},
    },
    s_range={"width": (1, 2**20), "depth": (1, 4096)},
    describe={"width": "hidden units", "depth": "hidden layers"},
    count=affine_count(mlp, "depth", 1),
))
