"""Regularizers: transform the training Procedure.

`none`; `weight_decay` (through the optimizer: coupled L2 for SGD/Adam/Shampoo, decoupled for
AdamW); `label_smoothing` (the training loss changes, so the minimum checks, which call
`procedure.loss_fn`, use the smoothed loss; accuracy is always against the true labels);
`sam` (sharpness-aware minimisation, pytorch-optimizer's SAM wrapped around the configured
base optimizer, two gradient evaluations per step). Dropout is an architecture knob
(`arch.dropout` for the MLP).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import require
from .base import OPTIMIZERS, REGULARIZERS, Procedure, Stepper


@REGULARIZERS.register("none")
def none(proc: Procedure) -> Procedure:
    return proc


@REGULARIZERS.register("weight_decay")
def weight_decay(proc: Procedure, value: float = 5e-4) -> Procedure:
    """L2 penalty through the optimizer's weight_decay (coupled for SGD/Adam, decoupled for AdamW)."""
    require(isinstance(value, (int, float)) and value >= 0 and math.isfinite(value), "regularizer.value", value,
            "must be a number >= 0")
    proc.weight_decay = float(value)
    proc.tags["weight_decay"] = float(value)
    return proc


@REGULARIZERS.register("label_smoothing")
def label_smoothing(proc: Procedure, value: float = 0.1) -> Procedure:
    """Cross-entropy against smoothed targets: (1 - value) on the true class, value spread over all."""
    require(isinstance(value, (int, float)) and 0.0 <= value < 1.0, "regularizer.value", value,
            "must lie in [0, 1)")
    proc.label_smoothing = float(value)
    proc.tags["label_smoothing"] = float(value)
    return proc


class SAMStepper(Stepper):
    """Sharpness-aware minimisation (Foret et al.) by pytorch-optimizer's `SAM` over any base optimizer.

    Per step: gradient at w (evaluation 1), ascent to w + rho g/|g|, gradient there (evaluation 2),
    back to w, base-optimizer update with the second gradient. The returned loss and logits are
    those at w.
    """

    def __init__(self, model: nn.Module, procedure: Procedure, total_steps: int, rho: float = 0.05,
                 adaptive: bool = False):
        from pytorch_optimizer import SAM

        self.model = model
        self.procedure = procedure
        params = [p for p in model.parameters() if p.requires_grad]
        factory = OPTIMIZERS.get(procedure.optimizer)
        knobs = dict(procedure.optimizer_knobs)
        # SAM builds its base optimizer as base_optimizer(param_groups, **kwargs) and shares the groups,
        # so the lr scheduler below drives the base optimizer's learning rate.
        self.optimizer = SAM(params, base_optimizer=factory, rho=float(rho), adaptive=bool(adaptive),
                             lr=procedure.lr, weight_decay=procedure.weight_decay, **knobs)
        self.scheduler = procedure.make_scheduler(self.optimizer, total_steps)
        self.grad_evals = 0

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        opt = self.optimizer
        opt.zero_grad(set_to_none=True)
        loss, logits = self.loss(x, y)
        loss.backward()
        self.grad_evals += 1

        def closure():
            opt.zero_grad(set_to_none=True)
            l2, _ = self.loss(x, y)
            l2.backward()
            self.grad_evals += 1
            return l2

        opt.step(closure)
        self.scheduler.step()
        self.procedure.after_step(self.model)
        return loss.detach(), logits.detach()


@REGULARIZERS.register("sam")
def sam(proc: Procedure, rho: float = 0.05, adaptive: bool = False) -> Procedure:
    """SAM with neighbourhood radius `rho` (> 0); `adaptive: true` gives ASAM's scale-invariant radius."""
    require(isinstance(rho, (int, float)) and not isinstance(rho, bool) and rho > 0 and math.isfinite(rho),
            "regularizer.rho", rho, "must be a positive number (e.g. 0.05)")
    proc.stepper_cls = SAMStepper
    proc.stepper_knobs = {"rho": float(rho), "adaptive": bool(adaptive)}
    proc.tags["sam_rho"] = float(rho)
    return proc
