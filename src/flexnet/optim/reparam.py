"""Reparameterisations: how the trained numbers map to the model's weights."""
from __future__ import annotations

import torch
from torch import nn

from .base import REPARAMS


@REPARAMS.register("none")
def none(model: nn.Module, g: torch.Generator) -> tuple[nn.Module, dict]:
    return model, {}
