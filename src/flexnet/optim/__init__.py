"""Optimizers, regularizers and reparameterisations: how a model is trained.

`build_procedure(optimizer_cfg, regularizer_cfg)` gives a `Procedure`: batch size,
the training loss, and a factory that makes a `Stepper` for one model and step
budget. Optimizers are registered by config name as
``fn(params, lr, weight_decay, **knobs) -> torch.optim.Optimizer``; regularizers as
``fn(procedure, **knobs) -> procedure``; reparameterisations as
``fn(model, generator, **knobs) -> (model, info)``.
"""
from __future__ import annotations

from .base import (OPTIMIZERS, REGULARIZERS, REPARAMS, SCHEDULES, Procedure, Stepper, apply_reparam,
                   build_procedure)
from . import optimizers, regularizers, reparam  # noqa: F401,E402
from . import augment  # noqa: F401,E402  (regularizer=augment)
from .reparam import budget_factor  # noqa: E402

__all__ = ["OPTIMIZERS", "REGULARIZERS", "REPARAMS", "SCHEDULES", "Procedure", "Stepper", "apply_reparam",
           "build_procedure", "budget_factor"]
