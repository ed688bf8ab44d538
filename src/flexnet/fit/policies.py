"""The two learning-rate policies of a fit attempt (`train.policy`) and the round helpers they share
with the stacked trainer (stacked.py).

`run_converge`: a constant lr, divided at each plateau that is not a verified minimum, until a verdict.
`run_fixed`: the optimizer's schedule over the budget, then extensions at a lower lr. Both drive the
epochs of loop.py's `train_to_minimum` (its `run_epoch` / `after_epoch`) and return
(stop reason, plateau, FitResult fields). `scale_lr`, `extension_round` and `early_check_due` are the
steps the fixed policy and stacked.py take alike.
"""
from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

from . import minimum
from .checks import Checker

if TYPE_CHECKING:
    from .spec import Budget, Checks


def scale_lr(optimizer, scheduler, factor: float) -> None:
    """Multiply the lr of every parameter group, and the scheduler's base lrs, by `factor`."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    scheduler.base_lrs = [b * factor for b in scheduler.base_lrs]


def extension_round(total_steps: int, budget: Budget) -> tuple[int, float]:
    """train.policy=fixed: (steps, lr factor) of an extension round after the budget is spent."""
    return max(1, int(total_steps * budget.extension_fraction)), float(budget.extension_lr_factor)


def early_check_due(checks: Checks, plateau: minimum.Plateau, steps: int, epochs: int, last: bool) -> bool:
    """train.policy=fixed: run the minimum checks now, before the round is spent (plateaued, and
    every convergence.check_every epochs from the plateau's start)?"""
    return (checks.early_verdict and plateau.plateaued(steps) and not last
            and (epochs - plateau.best_epoch) % checks.check_every == 0)


def run_converge(model, proc, budget: Budget, checks: Checks, checker: Checker, cap: int, spe: int, st: dict,
                 new_plateau, run_epoch, after_epoch, ladder=None, snapshot=None, put_back=None):
    """train.policy=converge: constant lr; at each plateau the checks run, and an attempt not at a
    verified minimum has its lr multiplied by lr_decay (a saddle keeps its lr: noise escapes it).
    A plateau at lr factor f must last 1/f times as many epochs and steps: at half the lr the loss
    falls half as fast, and a window of fixed length would call slow descent flat.

    The ladder (train.caps, fit/resume.py): every rung an epoch reaches forces the full-subset
    evaluation, whatever this attempt's own cap, so that the trajectory does not depend on the cap.
    At the cap, the state is captured before the cap's verdict (`snapshot`); an attempt that stops
    there keeps it (`ladder.on_cap`). `put_back` (resuming) restores such a state and takes the
    decision of that epoch again, under this (larger) cap, as an attempt never capped there would."""
    cproc = copy.copy(proc)
    cproc.schedule, cproc.warmup_fraction = "constant", 0.0
    stepper = cproc.stepper(model, cap)
    plateau = new_plateau()
    factor, decays, stop, state = 1.0, 0, None, None
    resuming = put_back is not None
    if resuming:
        factor, decays = put_back(stepper, plateau)
    while stop is None:
        if resuming:  # the restored epoch: its evaluation and rung records were taken before the capture
            resuming = False
        else:
            ep_loss, online_acc = run_epoch(stepper)
            rung = ladder is not None and bool(ladder.crossing(st["steps"]))
            stop = after_epoch(stepper, ep_loss, online_acc, plateau, st["steps"] >= cap or rung)
            if stop is not None:
                break
            if ladder is not None:
                ladder.passed(st)
        at_cap = st["steps"] >= cap
        if at_cap and snapshot is not None:
            state = snapshot(stepper, plateau, factor, decays)
        if plateau.plateaued(st["steps"]) or at_cap:
            verdict = checker.verdict(plateau.plateaued(st["steps"]))
            if verdict == "verified":
                stop = "verified_minimum"
            elif verdict == "degenerate":
                stop = "degenerate"
            elif at_cap:
                stop = "cap"
            elif verdict != "saddle":
                if factor * budget.lr_decay < budget.min_lr_factor * (1 - 1e-9):
                    stop = "lr_floor"
                    break
                factor *= budget.lr_decay
                decays += 1
                scale_lr(stepper.optimizer, stepper.scheduler, budget.lr_decay)
            if stop is None:  # the next plateau spans the same lr-weighted time: 1 / factor as many steps
                plateau = new_plateau(1.0 / factor)
    if stop == "cap" and state is not None and ladder is not None and ladder.on_cap is not None:
        ladder.on_cap(state)
    grad_evals = stepper.grad_evals
    return stop, plateau, {"lr_final": factor, "lr_decays": decays, "grad_evals": grad_evals}


def run_fixed(model, proc, budget: Budget, checks: Checks, checker: Checker, total_steps: int, spe: int, st: dict,
           new_plateau, run_epoch, after_epoch):
    """train.policy=fixed: the procedure's schedule over the budget, then extensions at a lower lr."""
    plateau = new_plateau()
    extensions, grad_evals = 0, 0
    round_steps, lr_scale = total_steps, 1.0
    stop_reason = "budget"
    while True:
        stepper = proc.stepper(model, round_steps)
        if lr_scale != 1.0:
            scale_lr(stepper.optimizer, stepper.scheduler, lr_scale)
        round_epochs = math.ceil(round_steps / spe)
        done = False
        for ep in range(round_epochs):
            ep_loss, online_acc = run_epoch(stepper)
            last = ep == round_epochs - 1
            reason = after_epoch(stepper, ep_loss, online_acc, plateau, last)
            if reason is not None:
                stop_reason, done = reason, True
                break
            if early_check_due(checks, plateau, st["steps"], st["epochs"], last):
                verdict = checker.verdict(True)
                if verdict in ("verified", "degenerate"):
                    if verdict == "verified":
                        st["acc"], st["loss"] = minimum.evaluate(model, checker.x, checker.y, proc.loss_fn,
                                                              checks.chunk)
                    stop_reason = "verified_minimum" if verdict == "verified" else "degenerate"
                    done = True
                    break
        grad_evals += stepper.grad_evals
        if done:
            break
        # budget of this round spent without a fit: is it a verified minimum?
        verdict = checker.verdict(plateau.plateaued(st["steps"]))
        if verdict in ("verified", "degenerate"):
            stop_reason = "verified_minimum" if verdict == "verified" else "degenerate"
            break
        if extensions >= budget.max_extensions:
            stop_reason = "budget"
            break
        extensions += 1
        round_steps, lr_scale = extension_round(total_steps, budget)
    return stop_reason, plateau, {"extensions": extensions, "grad_evals": grad_evals}
