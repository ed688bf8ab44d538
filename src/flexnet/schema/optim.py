"""Schemas of the `optimizer:`, `regularizer:` and `reparam:` groups: `Optimizer` (lr, batch_size, the
schedule, warmup) with SGD, Adam and Shampoo, then `NameOnly` (an option with no keys but its name, also
the base of the regularizers, reparametrizations and loggers) and the options with keys."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional

from .checks import Schema, at_least, beta_pair, in_unit, need, one_of, positive

Schedule = Enum("Schedule", {k: k for k in ("cosine", "constant", "warmup_cosine")})


# ------------------------------------------------------------------ optimizer

@dataclass
class Optimizer(Schema):
    name: str = ""
    lr: float = 0.1
    batch_size: Optional[int] = None
    schedule: Schedule = Schedule.cosine  # type: ignore[valid-type]
    warmup_fraction: float = 0.0

    def check(self) -> None:
        positive(self, "lr")
        at_least(self, 1, "batch_size")
        in_unit(self, "warmup_fraction")


@dataclass
class Sgd(Optimizer):
    momentum: float = 0.9
    nesterov: bool = False

    def check(self) -> None:
        super().check()
        in_unit(self, "momentum")
        need(not (self.nesterov and self.momentum == 0), "nesterov", self.nesterov,
             "needs optimizer.momentum > 0 (Nesterov with momentum 0 is plain SGD); set a momentum or nesterov=false")


@dataclass
class Adam(Optimizer):
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    amsgrad: bool = False

    def check(self) -> None:
        super().check()
        beta_pair(self)
        positive(self, "eps")


@dataclass
class Shampoo(Optimizer):
    variant: str = "shampoo"
    momentum: float = 0.9
    preconditioning_compute_steps: int = 1
    matrix_eps: float = 1e-6
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    start_preconditioning_step: int = 25
    block_size: int = 512

    def check(self) -> None:
        super().check()
        one_of(self, "variant", ("shampoo", "scalable"))
        in_unit(self, "momentum")
        at_least(self, 1, "preconditioning_compute_steps", "block_size")
        at_least(self, 0, "start_preconditioning_step")
        positive(self, "matrix_eps")
        beta_pair(self)


# ------------------------------------------------------------------ regularizer, reparam

@dataclass
class NameOnly(Schema):
    name: str = ""


@dataclass
class WeightDecay(NameOnly):
    value: float = 5e-4

    def check(self) -> None:
        at_least(self, 0, "value")


@dataclass
class LabelSmoothing(NameOnly):
    value: float = 0.1

    def check(self) -> None:
        in_unit(self, "value")


@dataclass
class Sam(NameOnly):
    rho: float = 0.05
    adaptive: bool = False

    def check(self) -> None:
        positive(self, "rho")


@dataclass
class Augment(NameOnly):
    pad: int = 4
    flip: bool = True

    def check(self) -> None:
        at_least(self, 0, "pad")


@dataclass
class Quant8(NameOnly):
    budget_in_bits: bool = True


@dataclass
class Subspace(NameOnly):
    d: int = 500
    projection: str = "auto"
    max_dense_mb: float = 256

    def check(self) -> None:
        at_least(self, 1, "d")
        one_of(self, "projection", ("auto", "dense", "fastfood", "identity"))
        positive(self, "max_dense_mb")


# ------------------------------------------------------------------ option -> schema (SCHEMAS in validate.py)

OPTIMIZER_SCHEMAS: dict[str, type] = {"sgd": Sgd, "gd": Sgd, "adam": Adam, "adamw": Adam, "shampoo": Shampoo}
REGULARIZER_SCHEMAS: dict[str, type] = {
    "none": NameOnly, "weight_decay": WeightDecay, "label_smoothing": LabelSmoothing, "sam": Sam, "augment": Augment}
REPARAM_SCHEMAS: dict[str, type] = {"none": NameOnly, "quant8": Quant8, "subspace": Subspace}
