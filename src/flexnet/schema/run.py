"""Schemas of the `search:` and `logger:` groups, and of `train:` and `convergence:`, which are derived
from the fit loop's `Budget` and `Checks` dataclasses (`train_schema()`, `convergence_schema()`): a new
field there is a new, type-checked key here. Keys of those two sections that are not fields are declared
in `TRAIN_EXTRA` / `CONVERGENCE_EXTRA`. This is the one module of the package that imports the runtime
(`fit_module()`, `check_fit_ranges()`)."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, List, Optional

from .checks import Bad, Schema, at_least, in_unit, is_number, need, one_of, positive, positive_or_null
from .optim import NameOnly


def fit_module() -> Any:
    """The module of the fit loop (Budget, Checks, GRAD_RULES): the one import of it in this package."""
    from ..fit import spec

    return spec


def check_fit_ranges(cfg: dict) -> None:
    """Ranges of train:/convergence: as the training code defines them (the builders validate)."""
    from ..fit.spec import budget_from_config, checks_from_config

    budget_from_config(cfg.get("train") or {})
    checks_from_config(cfg.get("convergence") or {})


# ------------------------------------------------------------------ search

@dataclass
class Search(Schema):
    name: str = ""
    start: int = 128
    max_attempts: int = 4
    trials: int = 1
    batch_attempts: Any = "auto"
    trial_workers: Any = "auto"
    fit_threshold: float = 1.0

    def check(self) -> None:
        at_least(self, 1, "start", "max_attempts", "trials")
        one_of(self, "batch_attempts", ("auto", True, False))
        w = self.trial_workers
        need(w == "auto" or (isinstance(w, int) and not isinstance(w, bool) and w >= 1), "trial_workers", w,
             "must be a positive integer (worker processes for search.trials) or 'auto'")
        t = self.fit_threshold
        need(is_number(t) and 0 < t <= 1, "fit_threshold", t,
             "must lie in (0, 1] (1.0: the paper's 100%; 0.98: its relaxed variant)")


@dataclass
class Bisect(Search):
    start_ratio: Optional[float] = None
    resolution: float = 0.05
    min_n: int = 2
    regrow_step: Optional[float] = None
    growth: str = "fit_time"

    def check(self) -> None:
        super().check()
        positive_or_null(self, "start_ratio",
                         "must be a positive number (search.start = ratio x actual parameters) or null")
        one_of(self, "growth", ("fit_time", "fit_time_power", "double"))
        in_unit(self, "resolution", lo_open=True)
        need(1 <= self.min_n <= self.start, "min_n", self.min_n, f"must lie in [1, search.start={self.start}]")
        positive_or_null(self, "regrow_step",
                         "must be > 0 (relative first step after a rescued size) or null (the resolution)")


@dataclass
class Linear(Search):
    start_ratio: Optional[float] = None
    step: int = 128

    def check(self) -> None:
        super().check()
        positive_or_null(self, "start_ratio", "must be a positive number or null")
        at_least(self, 1, "step")


@dataclass
class Fixed(Search):
    n: Optional[int] = None
    stop_at_fit: bool = True   # false: train the whole fixed length past the first fit (fit/pastfit.py)
    curve_every: int = 1       # epochs between the curve's evaluations (curve.jsonl)

    def check(self) -> None:
        super().check()
        at_least(self, 1, "n")
        need(isinstance(self.curve_every, int) and not isinstance(self.curve_every, bool) and self.curve_every >= 1,
             "curve_every", self.curve_every, "must be an integer >= 1 (epochs between curve evaluations)")
        one_of(self, "stop_at_fit", (True, False))


# ------------------------------------------------------------------ logger

@dataclass
class Wandb(NameOnly):
    project: str = "flexnet"
    entity: Optional[str] = None
    mode: str = "auto"
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    init_timeout: float = 30.0
    finish_timeout: float = 60.0
    every_steps: int = 500

    def check(self) -> None:
        one_of(self, "mode", ("auto", "online", "offline", "disabled"))
        positive(self, "init_timeout")
        at_least(self, 0, "finish_timeout")
        at_least(self, 1, "every_steps")


@dataclass
class Csv(NameOnly):
    every_steps: int = 500

    def check(self) -> None:
        at_least(self, 1, "every_steps")


# ------------------------------------------------------------------ option -> schema (SCHEMAS in validate.py)

SEARCH_SCHEMAS: dict[str, type] = {"bisect": Bisect, "linear": Linear, "fixed": Fixed}
LOGGER_SCHEMAS: dict[str, type] = {"none": NameOnly, "wandb": Wandb, "csv": Csv}


# ---- train: and convergence: (extend here, or add a field to Budget / Checks in fit/spec.py)
# keys of `train:` / `convergence:` that are not fields of Budget / Checks: name -> (type, default)
TRAIN_EXTRA: dict[str, tuple[Any, Any]] = {}
CONVERGENCE_EXTRA: dict[str, tuple[Any, Any]] = {
    "grad_tol": (Any, "descent"),       # a positive number, 'descent', 'init' or 'auto' (sets Checks.grad_rule)
    "calibration_n": (int, 64),
    "calibration_factor": (float, 10.0),
}


def _omegaconf_type(t: Any) -> Any:
    """A dataclass field type OmegaConf can hold; anything it cannot becomes Any (checked by validate())."""
    ok = (int, float, bool, str)
    if t in ok or t is Any:
        return t
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union and len(args) == 2 and type(None) in args:
        inner = _omegaconf_type(next(a for a in args if a is not type(None)))
        return Any if inner is Any else Optional[inner]
    if origin in (list, List) and args and args[0] in ok:
        return List[args[0]]
    return Any


# fields of Budget / Checks that are derived from other keys, not config keys themselves
HIDDEN = ("grad_rule",)


def _derived(name: str, cls: type, extra: dict) -> type:
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        if f.name in extra or f.name in HIDDEN:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        fields.append((f.name, _omegaconf_type(hints[f.name]), field(default=default)))
    for k, (t, d) in extra.items():
        fields.append((k, t, field(default=d)))
    return dataclasses.make_dataclass(name, fields, bases=(Schema,))


def train_schema() -> type:
    return _derived("Train", fit_module().Budget, TRAIN_EXTRA)


def convergence_schema() -> type:
    return _derived("Convergence", fit_module().Checks, CONVERGENCE_EXTRA)


def check_convergence_extra(conv: Any) -> None:
    g = conv.grad_tol
    rules = fit_module().GRAD_RULES
    if not (g in ("auto", *rules[1:]) or (is_number(g) and g > 0)):
        raise Bad("grad_tol", g, "must be a positive number, " + ", ".join(repr(r) for r in rules[1:])
                  + " or 'auto'")
    at_least(conv, 1, "calibration_n")
    positive(conv, "calibration_factor")
