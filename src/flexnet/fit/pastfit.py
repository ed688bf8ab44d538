"""Training past interpolation: `search=fixed` with `search.stop_at_fit=false`.

    train_past_fit(model, x, y, recipe, x_test, y_test) -> (FitResult, extra)

Double descent (Nakkiran et al. 2019) is about where training *ends*, long after the subset is
fitted: stopping at the first 100% fit (what `train_to_minimum` does, under either lr policy) is a
form of early stopping, known to suppress the peak. This loop trains a fixed length, never stops at
the fit, and records when the subset was first fitted (`fitted_epoch`, `fitted_step`, null when it
never was) and a curve of train and test loss / accuracy.

Length: `train.epochs` epochs, never fewer than `train.min_steps` optimizer steps (the same budget
as `train.policy=fixed`), on the optimizer's schedule over that length (`optimizer.schedule`:
`constant` for Nakkiran et al.'s constant-lr Adam; cosine by default). Neither the converge policy's
plateau / lr decay nor the minimum checks apply: the attempt ends `fitted` when the subset is fitted
at the end, `diverged` on a non-finite loss, else `unverified` (stop reason `budget`).

Pure like loop.py (no files): the caller writes the curve from `on_curve` and the record from
`extra`. Evaluations are in eval mode on the whole subset and the whole test split; their losses are
plain cross-entropy (the test split's loss; label smoothing, if any, only shapes `train_loss`, the
mean training objective over the epoch's minibatches). They run every `curve_every` epochs (and at
the first and last epoch); the subset alone is also evaluated whenever the running accuracy is
within `train.eval_margin` of the fit threshold, so `fitted_epoch` is not limited to curve epochs.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Optional

import torch
from torch import nn

from . import minimum
from .loop import FitResult, Recipe, minibatches, train_epoch

POLICY = "past_fit"  # FitResult.policy and emc.json convergence.policy of these attempts


def length(n: int, recipe: Recipe) -> tuple[int, int]:
    """(epochs, steps per epoch) of a past-fit attempt at n samples: train.epochs epochs, never
    fewer than train.min_steps optimizer steps (whole epochs). A fixed length, not a cap: train.caps
    (the ladder of caps) does not apply."""
    mb = minibatches(n, recipe)
    total = max(int(recipe.budget.epochs) * mb.spe, int(recipe.budget.min_steps))
    return -(-total // mb.spe), mb.spe


def train_past_fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                   x_test: Optional[torch.Tensor] = None, y_test: Optional[torch.Tensor] = None,
                   g: Optional[torch.Generator] = None, seed: int = 0, curve_every: int = 1,
                   on_epoch: Optional[Callable[[nn.Module, dict], None]] = None,
                   on_curve: Optional[Callable[[dict], None]] = None) -> tuple[FitResult, dict]:
    """Train `model` on (x, y) for the whole fixed length (see the module doc).

    on_epoch(model, metrics): after every epoch (progress, W&B), as train_to_minimum's.
    on_curve(record): at every curve epoch, the epoch's metrics plus train_acc / train_eval_loss
    (whole subset) and test_acc / test_loss (whole test split, when there is one).
    Returns the FitResult and `extra`: fitted_epoch, fitted_step, the final test_acc / test_loss,
    and the best test accuracy seen at a curve epoch (best_test_acc, best_test_epoch).
    """
    t0 = time.perf_counter()
    n = int(x.shape[0])
    proc, budget, checks = recipe.procedure, recipe.budget, recipe.checks
    mb = minibatches(n, recipe)
    spe = mb.spe
    epochs, _ = length(n, recipe)
    sizes = mb.sizes(x.device)
    g = mb.generator(g, seed, x.device)
    stepper = proc.stepper(model, epochs * spe)
    thr = float(recipe.fit_threshold)
    every = max(1, int(curve_every))
    has_test = x_test is not None and int(x_test.shape[0]) > 0
    extra: dict = {"fitted_epoch": None, "fitted_step": None}
    steps, done, stop = 0, 0, "budget"
    acc, loss = float("nan"), float("nan")

    def test_eval() -> tuple[Optional[float], Optional[float]]:
        if not has_test:
            return None, None
        a, l = minimum.evaluate(model, x_test, y_test, None, checks.chunk)
        return a, (l if math.isfinite(l) else None)

    for epoch in range(1, epochs + 1):
        ep_loss, online = train_epoch(model, stepper, x, y, mb, sizes, g, proc.batch_transform)
        steps += spe
        done = epoch
        if not math.isfinite(ep_loss):
            stop = "diverged"
            break
        m = {"epoch": epoch, "step": steps, "train_loss": ep_loss, "online_acc": online,
             "lr": stepper.optimizer.param_groups[0]["lr"]}
        if on_epoch is not None:
            on_epoch(model, m)
        curve_now = epoch % every == 0 or epoch == 1 or epoch == epochs
        if curve_now or (extra["fitted_epoch"] is None and online >= thr - budget.eval_margin):
            acc, loss = minimum.evaluate(model, x, y, None, checks.chunk)
            if extra["fitted_epoch"] is None and acc >= thr:
                extra.update(fitted_epoch=epoch, fitted_step=steps)
            if curve_now:
                ta, tl = test_eval()
                if ta is not None and ta > extra.get("best_test_acc", -1.0):
                    extra.update(best_test_acc=ta, best_test_epoch=epoch)
                if on_curve is not None:
                    on_curve({**m, "train_acc": acc, "train_eval_loss": loss if math.isfinite(loss) else None,
                              "test_acc": ta, "test_loss": tl})
    if stop == "diverged" or done != epochs or not math.isfinite(acc):
        acc, loss = minimum.evaluate(model, x, y, None, checks.chunk)
    extra["test_acc"], extra["test_loss"] = test_eval()
    if stop != "diverged" and not math.isfinite(loss):
        stop = "diverged"
    acc = acc if math.isfinite(acc) else 0.0  # a diverged model's predictions: counted as none right
    status = "diverged" if stop == "diverged" else ("fitted" if acc >= thr else "unverified")
    res = FitResult(status=status, stop_reason=stop, train_acc=acc,
                    train_loss=loss if math.isfinite(loss) else None, epochs=done, steps=steps,
                    seconds=time.perf_counter() - t0, verified=None, grad_evals=stepper.grad_evals,
                    policy=POLICY)
    return res, extra
