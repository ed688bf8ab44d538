"""Exact resume of a capped attempt (train.caps): its whole training state at the cap, and putting it back.

Under the converge policy nothing in an attempt's trajectory depends on its cap (the lr is constant and
divided at plateaus, never scheduled over the cap), so an attempt stopped at cap C and continued to cap
2C from its state at C is the attempt trained with cap 2C from the start. That needs everything the next
step reads: the weights (and buffers), the optimizer's state (momentum, Adam moments; SAM's base
optimizer too), the lr scheduler, the minibatch generator and the global RNG, the loop's counters, the
plateau detector, the lr factor and decays, and the minimum checker's reference point and running
counts. `capture` takes them (copies, at the end of the epoch that reached the cap, before the cap's
verdict), `restore` puts them back; records.py writes and reads them as a `.pt` file of tensors and
plain values (loadable with weights_only=True). Pure: no files.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

FORMAT = 1  # the layout of a captured state; a checkpoint of another format is not resumed


def _clone(sd: dict) -> dict:
    return {k: (v.detach().clone() if torch.is_tensor(v) else copy.deepcopy(v)) for k, v in sd.items()}


def _optimizers(stepper) -> list:
    """The optimizer, and the base optimizer SAM wraps (its state holds the momentum)."""
    opt = stepper.optimizer
    base = getattr(opt, "base_optimizer", None)
    return [opt] + ([base] if base is not None and base is not opt else [])


@dataclass
class Ladder:
    """What an attempt on the ladder of caps is given and collects: the rungs (train.caps, in steps),
    at each of which the full subset is evaluated (so an attempt capped at a rung and one passing it
    see the same evaluations); the state to resume from, or None; `on_cap(state)`, called with the
    captured state when the attempt stops at its cap; `records`, the evaluation at every rung passed."""

    rungs: tuple[int, ...] = ()
    resume: Optional[dict] = None
    on_cap: Optional[Callable[[dict], None]] = None
    records: list = field(default_factory=list)
    last_steps: int = 0

    def crossing(self, steps: int) -> list[int]:
        """The rungs reached by the epoch that ended at `steps` (first epoch end at or past each)."""
        return [r for r in self.rungs if self.last_steps < r <= steps]

    def passed(self, st: dict) -> None:
        """Record the evaluation of every rung the epoch that just ended reached."""
        for r in self.crossing(st["steps"]):
            self.records.append({"cap": int(r), "step": int(st["steps"]), "train_acc": float(st["acc"]),
                                 "train_loss": st["loss"] if st["loss"] == st["loss"] else None})
        self.last_steps = st["steps"]


def capture(model: nn.Module, stepper, g: torch.Generator, st: dict, plateau, factor: float, decays: int,
            checker, ladder: Ladder, seconds: float) -> dict:
    """The attempt's whole training state now (copies)."""
    return {
        "format": FORMAT,
        "model": _clone(model.state_dict()),
        "optimizers": [copy.deepcopy(o.state_dict()) for o in _optimizers(stepper)],
        "scheduler": copy.deepcopy(stepper.scheduler.state_dict()),
        "grad_evals": int(stepper.grad_evals),
        "generator": g.get_state().clone(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "loop": dict(st),
        "plateau": dict(vars(plateau)),
        "factor": float(factor),
        "decays": int(decays),
        "checker": checker.state(),
        "rungs": copy.deepcopy(ladder.records),
        "last_steps": int(ladder.last_steps),
        "seconds": float(seconds),
    }


def restore(state: dict, model: nn.Module, stepper, g: torch.Generator, st: dict, plateau, checker,
            ladder: Ladder) -> tuple[float, int]:
    """Put a captured state back into a freshly built attempt; returns (lr factor, lr decays). The
    optimizer's lr is the captured one (the decays are in its param groups' state)."""
    model.load_state_dict(state["model"])
    for opt, sd in zip(_optimizers(stepper), state["optimizers"]):
        opt.load_state_dict(sd)
    stepper.scheduler.load_state_dict(state["scheduler"])
    stepper.grad_evals = int(state["grad_evals"])
    g.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    st.update(state["loop"])
    vars(plateau).update(state["plateau"])
    checker.set_state(state["checker"])
    ladder.records = copy.deepcopy(state["rungs"])
    ladder.last_steps = int(state["last_steps"])
    return float(state["factor"]), int(state["decays"])
