"""Optimizers by config name. `gd` is SGD on the whole subset (its config sets batch_size: null)."""
from __future__ import annotations

import torch

from ..errors import require
from .base import OPTIMIZERS


@OPTIMIZERS.register("sgd")
def sgd(params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = False):
    require(0.0 <= float(momentum) < 1.0, "optimizer.momentum", momentum, "must lie in [0, 1)")
    return torch.optim.SGD(params, lr=lr, momentum=float(momentum), nesterov=bool(nesterov) and momentum > 0,
                           weight_decay=weight_decay)


@OPTIMIZERS.register("gd")
def gd(params, lr: float, weight_decay: float = 0.0, momentum: float = 0.0, nesterov: bool = False):
    """Full-batch gradient descent (the procedure's batch size is the whole subset)."""
    return sgd(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov)
