"""Regularizers: transform the training Procedure."""
from __future__ import annotations

from ..errors import require
from .base import REGULARIZERS, Procedure


@REGULARIZERS.register("none")
def none(proc: Procedure) -> Procedure:
    return proc


@REGULARIZERS.register("weight_decay")
def weight_decay(proc: Procedure, value: float = 5e-4) -> Procedure:
    """L2 penalty through the optimizer's weight_decay (coupled for SGD/Adam, decoupled for AdamW)."""
    require(isinstance(value, (int, float)) and value >= 0, "regularizer.value", value, "must be a number >= 0")
    proc.weight_decay = float(value)
    proc.tags["weight_decay"] = float(value)
    return proc
