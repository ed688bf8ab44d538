"""Procedure, Stepper, schedules and the optimizer/regularizer/reparam registries."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..errors import ConfigError, reject_unknown, require
from ..registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
REGULARIZERS: Registry[Callable[..., "Procedure"]] = Registry("regularizer")
REPARAMS: Registry[Callable[..., tuple[nn.Module, dict]]] = Registry("reparam")


def _cosine(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return f


SCHEDULES: dict[str, Callable[[int, int], Callable[[int], float]]] = {
    "cosine": lambda total, warmup: _cosine(total, 0),
    "warmup_cosine": _cosine,
    "constant": lambda total, warmup: (lambda step: 1.0),
}


class Stepper:
    """One optimisation step on a minibatch: forward, loss, backward, update, schedule.

    No host synchronisation: the returned loss is a detached device tensor.
    Regularizers that change the update itself (SAM) subclass this.
    """

    def __init__(self, model: nn.Module, procedure: "Procedure", total_steps: int):
        self.model = model
        self.procedure = procedure
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = procedure.make_optimizer(params)
        self.scheduler = procedure.make_scheduler(self.optimizer, total_steps)
        self.grad_evals = 0  # gradient evaluations so far (SAM takes two per step)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return self.procedure.loss_fn(logits, y), logits

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (loss, logits), both detached."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self.loss(x, y)
        loss.backward()
        self.grad_evals += 1
        try:
            self.optimizer.step()
        except torch.linalg.LinAlgError:
            # e.g. Shampoo's inverse roots of statistics that went non-finite: the run diverged; a NaN
            # loss makes the training loop say so (stop reason `diverged`) instead of ending the job
            return torch.full_like(loss.detach(), float("nan")), logits.detach()
        self.scheduler.step()
        self.procedure.after_step(self.model)
        return loss.detach(), logits.detach()


@dataclass
class Procedure:
    """How a model is trained: optimizer factory, batch size, schedule, training loss."""

    optimizer: str
    lr: float
    batch_size: Optional[int]  # None: full batch (gradient descent)
    schedule: str = "cosine"
    warmup_fraction: float = 0.0
    weight_decay: float = 0.0
    optimizer_knobs: dict[str, Any] = field(default_factory=dict)
    label_smoothing: float = 0.0
    stepper_cls: type = Stepper
    stepper_knobs: dict[str, Any] = field(default_factory=dict)
    post_step_hooks: list[Callable[[nn.Module], None]] = field(default_factory=list)
    # applied to each training minibatch's inputs (data augmentation): fn(x, generator) -> x
    batch_transform: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None
    tags: dict[str, Any] = field(default_factory=dict)

    def loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss (the minimum checks use this same loss)."""
        return nn.functional.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        return OPTIMIZERS.get(self.optimizer)(params, lr=self.lr, weight_decay=self.weight_decay,
                                              **self.optimizer_knobs)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        """The lr schedule (`schedule`, `warmup_fraction`) over `total_steps` optimizer steps."""
        lam = SCHEDULES[self.schedule](int(total_steps), int(self.warmup_fraction * total_steps))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lam)

    def stepper(self, model: nn.Module, total_steps: int) -> Stepper:
        return self.stepper_cls(model, self, total_steps, **self.stepper_knobs)

    def after_step(self, model: nn.Module) -> None:
        for hook in self.post_step_hooks:
            hook(model)


def check_knobs(fn: Callable, group: str, name: str, kw: dict, skip: int) -> None:
    """Unknown keys in an option's config: one ConfigError line naming them and what is allowed."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    allowed = [p.name for p in params]
    reject_unknown(sorted(set(kw) - set(allowed)), allowed, f"{group}.", f"unknown key for {group}={name!r}")


def build_procedure(opt_cfg: dict, reg_cfg: dict) -> Procedure:
    opt_cfg, reg_cfg = dict(opt_cfg), dict(reg_cfg)
    name = opt_cfg.pop("name")
    OPTIMIZERS.get(name)
    lr = opt_cfg.pop("lr")
    require(isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr), "optimizer.lr", lr,
            "must be a positive number")
    bs = opt_cfg.pop("batch_size", None)
    require(bs is None or (isinstance(bs, int) and bs >= 1), "optimizer.batch_size", bs,
            "must be a positive integer, or null for full batch")
    schedule = opt_cfg.pop("schedule", "cosine")
    if schedule not in SCHEDULES:
        raise ConfigError(f"optimizer.schedule={schedule!r}: allowed: {', '.join(SCHEDULES)}")
    warm = float(opt_cfg.pop("warmup_fraction", 0.0))
    require(0.0 <= warm < 1.0, "optimizer.warmup_fraction", warm, "must lie in [0, 1)")
    check_knobs(OPTIMIZERS.get(name), "optimizer", name, {"lr": lr, "weight_decay": 0.0, **opt_cfg}, skip=1)
    proc = Procedure(optimizer=name, lr=float(lr), batch_size=bs, schedule=schedule, warmup_fraction=warm,
                     optimizer_knobs=opt_cfg)
    reg = reg_cfg.pop("name")
    check_knobs(REGULARIZERS.get(reg), "regularizer", reg, reg_cfg, skip=1)
    return REGULARIZERS.get(reg)(proc, **reg_cfg)


def apply_reparam(model: nn.Module, cfg: dict, g: torch.Generator) -> tuple[nn.Module, dict]:
    cfg = dict(cfg)
    name = cfg.pop("name")
    check_knobs(REPARAMS.get(name), "reparam", name, cfg, skip=2)
    return REPARAMS.get(name)(model, g, **cfg)
