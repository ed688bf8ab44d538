"""Plain convolutional networks: the 'naive' CNN (conv stack -> global average pool -> fixed
head) and the LeNet-style variant (two 5x5 conv + max-pool stages -> fully connected layers).

Inputs: (D,) vectors/signals use 1-D convolutions on a 1-channel signal of length D;
(C, H, W) images use 2-D convolutions. Padding is 'same', so any length/resolution works.
"""
from __future__ import annotations

import math

from torch import nn

from ..errors import require
from .base import ARCHS, ArchSpec, activation as make_activation, affine_count
from .layout import OnInput, conv_layout

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
GAP = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
VARIANTS = ("naive", "lenet")


def cnn(input_shape, num_classes: int, variant: str = "naive", filters: int = 16, layers: int = 3,
        kernel_size: int = 3, head_width: int = 0, batchnorm: bool = False,
        channels=(6, 16), fc=(120, 84), activation: str = "relu", dropout: float = 0.0) -> nn.Module:
    """naive: `layers` x [conv(kernel_size, `filters`) (-> BN) -> act] -> global avg pool
    -> (Linear(head_width) -> act, when head_width > 0) -> Linear(num_classes).
    lenet: for c in `channels`: conv 5 -> act -> max-pool 2; flatten -> for f in `fc`:
    Linear(f) -> act; -> Linear(num_classes)."""
    require(variant in VARIANTS, "arch.variant", variant, f"allowed: {', '.join(VARIANTS)}")
    require(0.0 <= float(dropout) < 1.0, "arch.dropout", dropout, "must lie in [0, 1)")
    dims, shape = conv_layout(input_shape)
    conv, bn = CONV[dims], BN[dims]
    mods: list[nn.Module] = []
    if variant == "naive":
        require(int(layers) >= 1, "arch.layers", layers, "must be an integer >= 1")
        require(int(filters) >= 1, "arch.filters", filters, "must be a positive integer")
        require(int(kernel_size) >= 1 and int(kernel_size) % 2 == 1, "arch.kernel_size", kernel_size,
                "must be a positive odd integer")
        c_in = shape[0]
        for _ in range(int(layers)):
            mods.append(conv(c_in, int(filters), int(kernel_size), padding=int(kernel_size) // 2))
            if batchnorm:
                mods.append(bn(int(filters)))
            mods.append(make_activation(activation))
            c_in = int(filters)
        mods += [GAP[dims](1), nn.Flatten()]
        feat = c_in
        if int(head_width) > 0:
            mods += [nn.Linear(feat, int(head_width)), make_activation(activation)]
            feat = int(head_width)
    else:
        channels, fc = [int(c) for c in channels], [int(f) for f in fc]
        require(len(channels) >= 1 and min(channels) >= 1, "arch.channels", channels,
                "must be a non-empty list of positive integers")
        require(all(f >= 1 for f in fc), "arch.fc", fc, "must be a list of positive integers")
        c_in, spatial = shape[0], list(shape[1:])
        for c in channels:
            mods += [conv(c_in, c, 5, padding=2), make_activation(activation),
                     POOL[dims](2, ceil_mode=True)]
            c_in, spatial = c, [max(1, math.ceil(s / 2)) if s > 1 else 1 for s in spatial]
        mods.append(nn.Flatten())
        feat = c_in * math.prod(spatial)
        for f in fc:
            mods += [nn.Linear(feat, f), make_activation(activation)]
            if dropout > 0:
                mods.append(nn.Dropout(float(dropout)))
            feat = f
    if variant == "naive" and dropout > 0:
        mods.append(nn.Dropout(float(dropout)))
    mods.append(nn.Linear(feat, int(num_classes)))
    return OnInput(nn.Sequential(*mods), input_shape, shape)


def _width(k: dict, s: float) -> dict:
    if k.get("variant", "naive") == "naive":
        return {**k, "filters": max(1, int(round(s)))}
    ch = [int(c) for c in k.get("channels", (6, 16))]
    fc = [int(f) for f in k.get("fc", (120, 84))]
    m = s / ch[0]
    return {**k, "channels": [max(1, int(round(c * m))) for c in ch],
            "fc": [max(1, int(round(f * m))) for f in fc]}


def _depth(k: dict, s: float) -> dict:
    n = max(1, int(round(s)))
    if k.get("variant", "naive") == "naive":
        return {**k, "layers": n}
    fc = [int(f) for f in k.get("fc", (120, 84))] or [84]
    # LeNet depth: number of fully connected hidden layers (the list, extended with its last width)
    return {**k, "fc": [fc[min(i, len(fc) - 1)] for i in range(n - 1)]}


ARCHS.add("cnn", ArchSpec(
    build=cnn,
    scalers={"width": _width, "depth": _depth},
    s_range={"width": (1, 2**16), "depth": (1, 2**15)},
    count=affine_count(cnn, "layers", 3),
    describe={"width": "filters (naive) / conv and FC widths (lenet)",
              "depth": "conv layers (naive) / FC hidden layers (lenet)"},
))
