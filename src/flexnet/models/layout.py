"""How an input shape from a dataset is seen by a family: as a 1-D signal or as an image.

Datasets give per-sample shapes: (D,) for tabular vectors and mnist1d signals,
(C, H, W) for images. Hand-written convolutional families use 1-D convolutions on
(D,) inputs (a 1-channel signal of length D) and 2-D ones on images; timm's
image models see a (D,) input as a 1 x 1 x D image.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError


def conv_layout(input_shape) -> tuple[int, tuple[int, ...]]:
    """(spatial dims, (channels, *spatial)) for a convolutional family."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 1:
        return 1, (1, shape[0])
    if len(shape) == 2:  # H x W without a channel axis
        return 2, (1, *shape)
    if len(shape) == 3:
        return 2, shape
    raise ConfigError(f"input_shape={list(shape)}: allowed: (D,) vectors/signals, (H, W) or (C, H, W) images")


def image_layout(input_shape) -> tuple[int, int, int]:
    """(C, H, W) as a 2-D image model sees it; a (D,) vector is a 1 x 1 x D image."""
    dims, shape = conv_layout(input_shape)
    return (shape[0], 1, shape[1]) if dims == 1 else shape  # type: ignore[return-value]


class Reshape(nn.Module):
    """Reshape each sample to `shape` (no parameters)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(d) for d in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class OnInput(nn.Module):
    """A model preceded by a reshape of its input (flat vectors -> signals/images)."""

    def __init__(self, model: nn.Module, input_shape, shape):
        super().__init__()
        self.reshape = Reshape(shape) if tuple(input_shape) != tuple(shape) else nn.Identity()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.reshape(x))


def numel(shape) -> int:
    return int(math.prod(shape))
