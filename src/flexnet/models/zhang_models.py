"""The small networks of Zhang et al. (ICLR 2017, "Understanding deep learning requires
rethinking generalization"), Appendix A: small AlexNet and small Inception for CIFAR.

On 28x28x3 inputs with 10 classes: alexnet_small 1,387,786 parameters; inception_small
1,649,402 with batch norm off (the paper's count) and 1,652,826 with affine batch norm.
(D,) inputs use the 1-D versions of every layer (a 1-channel signal of length D).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import require
from .base import ARCHS, ArchSpec, activation as make_activation
from .layout import OnInput, conv_layout

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
GAP = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}


def _same_pool(dims: int) -> nn.Module:
    # 3x3 stride-2 max-pool with TensorFlow 'same' padding: ceil(n / 2) outputs for any n
    return POOL[dims](3, stride=2, padding=1)


def alexnet_small(input_shape, num_classes: int, filters: int = 64, kernel_size: int = 5,
                  fc=(384, 192), lrn: bool = True, activation: str = "relu",
                  dropout: float = 0.0) -> nn.Module:
    """2 x [conv(kernel_size, filters) -> act -> max-pool 3/2 'same' -> LRN] -> FC fc[0] -> FC fc[1]
    -> linear classifier (TensorFlow's CIFAR-10 tutorial model, as used by Zhang et al.)."""
    require(int(filters) >= 1, "arch.filters", filters, "must be a positive integer")
    require(0.0 <= float(dropout) < 1.0, "arch.dropout", dropout, "must lie in [0, 1)")
    dims, shape = conv_layout(input_shape)
    k = int(kernel_size)
    mods: list[nn.Module] = []
    c_in, spatial = shape[0], list(shape[1:])
    for _ in range(2):
        mods += [CONV[dims](c_in, int(filters), k, padding=k // 2), make_activation(activation), _same_pool(dims)]
        if lrn:  # TF local_response_normalization(depth_radius=4, bias=1, alpha=0.001/9, beta=0.75)
            mods.append(nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0))
        c_in, spatial = int(filters), [math.ceil(s / 2) for s in spatial]
    mods.append(nn.Flatten())
    feat = c_in * math.prod(spatial)
    for f in fc:
        mods += [nn.Linear(feat, int(f)), make_activation(activation)]
        if dropout > 0:
            mods.append(nn.Dropout(float(dropout)))
        feat = int(f)
    mods.append(nn.Linear(feat, int(num_classes)))
    return OnInput(nn.Sequential(*mods), input_shape, shape)


class ConvModule(nn.Sequential):
    """conv -> (batch norm) -> activation, 'same' padding."""

    def __init__(self, dims, c_in, c_out, k, stride=1, batchnorm=True, act="relu"):
        mods = [CONV[dims](c_in, c_out, k, stride=stride, padding=k // 2)]
        if batchnorm:
            mods.append(BN[dims](c_out))
        mods.append(make_activation(act))
        super().__init__(*mods)


class Inception(nn.Module):
    """I(c1, c3): concatenation of a 1x1 conv module (c1) and a 3x3 conv module (c3)."""

    def __init__(self, dims, c_in, c1, c3, **kw):
        super().__init__()
        self.b1 = ConvModule(dims, c_in, c1, 1, **kw)
        self.b3 = ConvModule(dims, c_in, c3, 3, **kw)
        self.out_channels = c1 + c3

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x)], 1)


class Downsample(nn.Module):
    """D(c3): concatenation of a 3x3 stride-2 conv module (c3) and a 3x3 stride-2 max-pool."""

    def __init__(self, dims, c_in, c3, **kw):
        super().__init__()
        self.conv = ConvModule(dims, c_in, c3, 3, stride=2, **kw)
        self.pool = _same_pool(dims)
        self.out_channels = c3 + c_in

    def forward(self, x):
        return torch.cat([self.conv(x), self.pool(x)], 1)


# Zhang et al. Figure 3 (small Inception): ('I', c1, c3) / ('D', c3)
INCEPTION_PLAN = [("I", 32, 32), ("I", 32, 48), ("D", 80), ("I", 112, 48), ("I", 96, 64), ("I", 80, 80),
                  ("I", 48, 96), ("D", 96), ("I", 176, 160), ("I", 176, 160)]


def inception_small(input_shape, num_classes: int, width_multiplier: float = 1.0, stem: int = 96,
                    batchnorm: bool = True, activation: str = "relu", dropout: float = 0.0) -> nn.Module:
    """Conv(stem, 3x3) -> the inception/downsample modules of INCEPTION_PLAN -> global mean pool
    -> linear; every channel count times `width_multiplier` (rounded, at least 1)."""
    require(float(width_multiplier) > 0, "arch.width_multiplier", width_multiplier, "must be > 0")
    require(0.0 <= float(dropout) < 1.0, "arch.dropout", dropout, "must lie in [0, 1)")
    dims, shape = conv_layout(input_shape)
    w = lambda c: max(1, int(round(c * float(width_multiplier))))  # noqa: E731
    kw = dict(batchnorm=bool(batchnorm), act=activation)
    mods: list[nn.Module] = [ConvModule(dims, shape[0], w(stem), 3, **kw)]
    c = w(stem)
    for item in INCEPTION_PLAN:
        m = Inception(dims, c, w(item[1]), w(item[2]), **kw) if item[0] == "I" else Downsample(dims, c, w(item[1]), **kw)
        mods.append(m)
        c = m.out_channels
    mods += [GAP[dims](1), nn.Flatten()]
    if dropout > 0:
        mods.append(nn.Dropout(float(dropout)))
    mods.append(nn.Linear(c, int(num_classes)))
    return OnInput(nn.Sequential(*mods), input_shape, shape)


def _alex_width(k: dict, s: float) -> dict:
    f0 = int(k.get("filters", 64))
    m = s / f0
    return {**k, "filters": max(1, int(round(s))), "fc": [max(1, int(round(int(f) * m))) for f in k.get("fc", (384, 192))]}


ARCHS.add("alexnet_small", ArchSpec(
    build=alexnet_small,
    scalers={"width": _alex_width},
    s_range={"width": (1, 2**14)},
    describe={"width": "conv filters, FC widths in proportion"},
))

ARCHS.add("inception_small", ArchSpec(
    build=inception_small,
    # s = stem width (96 at the published shape); every module scales in proportion
    scalers={"width": lambda k, s: {**k, "width_multiplier": float(s) / int(k.get("stem", 96))}},
    s_range={"width": (1, 2**14)},
    describe={"width": "all channel counts in proportion"},
))
