"""train_to_minimum(model, x, y, recipe) -> FitResult.   Pure: no files, no logging side effects.

The loop keeps data on the device as tensors and draws minibatches by index
(no DataLoader). Metrics are accumulated on the device and read once per
epoch. An attempt stops when:
  * the subset is fitted (full-subset accuracy in eval mode >= fit threshold);
  * it is at a verified minimum below the threshold (early verdict: plateau and
    gradient norm checked cheaply, then the Hessian);
  * the loss is NaN/inf (diverged);
  * the step budget runs out. A failure that is not at a verified minimum is
    then trained further (up to `max_extensions`) and ends `unverified` if it
    still cannot be verified.
Every result records why it stopped.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from . import convergence as conv
from .errors import require
from .optim import Procedure


@dataclass
class Budget:
    epochs: int = 500          # epochs per attempt (the schedule's length) ...
    min_steps: int = 3000      # ... but never fewer optimizer steps than this
    max_extensions: int = 2    # extra training rounds for a failure not at a verified minimum
    extension_fraction: float = 0.5  # length of one extension, as a fraction of the budget
    extension_lr_factor: float = 0.1  # its peak lr, as a fraction of the procedure's lr
    eval_every: int = 50       # full-subset evaluation at least every k epochs ...
    eval_margin: float = 0.01  # ... and whenever the running accuracy is within this of the threshold

    def validate(self) -> None:
        require(int(self.epochs) >= 1, "train.epochs", self.epochs, "must be a positive integer")
        require(int(self.min_steps) >= 0, "train.min_steps", self.min_steps, "must be an integer >= 0")
        require(int(self.max_extensions) >= 0, "train.max_extensions", self.max_extensions, "must be >= 0")
        require(0 < float(self.extension_fraction), "train.extension_fraction", self.extension_fraction,
                "must be > 0")
        require(int(self.eval_every) >= 1, "train.eval_every", self.eval_every, "must be a positive integer")


@dataclass
class Checks:
    grad_tol: float = 5e-2       # full-batch gradient norm below this ...
    min_eig: float = -1e-2       # ... no Hessian eigenvalue below this ...
    patience: int = 10           # ... and the smoothed loss flat for this many epochs
    patience_steps: int = 200    # ... and this many optimizer steps
    rel_tol: float = 1e-3        # improvement smaller than this (relative) counts as flat
    smoothing: float = 0.5       # EMA factor of the epoch loss
    hessian: bool = True         # run the Hessian check (off: the verdict rests on grad + plateau)
    check_fitted: bool = True    # also measure grad norm / Hessian on fitted attempts
    early_verdict: bool = True   # stop a failing attempt once it is at a verified minimum
    check_every: int = 5         # epochs between early-verdict checks once plateaued
    lanczos_tol: float = 1e-3     # relative accuracy of the extreme eigenvalues
    lanczos_iters: int = 300      # cap on Hessian-vector products per check
    trace: bool = False          # Hutchinson trace by PyHessian
    trace_iters: int = 20
    chunk: int = 8192            # samples per chunk in full-batch passes

    def validate(self) -> None:
        require(int(self.patience) >= 1, "convergence.patience", self.patience, "must be an integer >= 1")
        require(self.min_eig <= 0, "convergence.min_eig", self.min_eig,
                "must be <= 0 (the most negative Hessian eigenvalue tolerated, e.g. -1e-2)")
        require(isinstance(self.grad_tol, (int, float)) and self.grad_tol > 0, "convergence.grad_tol",
                self.grad_tol, "must be a positive number or 'auto'")
        require(int(self.check_every) >= 1, "convergence.check_every", self.check_every, "must be >= 1")


@dataclass
class Recipe:
    procedure: Procedure
    budget: Budget = field(default_factory=Budget)
    checks: Checks = field(default_factory=Checks)
    fit_threshold: float = 1.0


@dataclass
class FitResult:
    status: str                  # fitted | failed | diverged | unverified
    stop_reason: str             # fitted | verified_minimum | budget | diverged
    train_acc: float
    train_loss: float
    epochs: int
    steps: int
    seconds: float
    grad_norm: Optional[float] = None
    plateaued: Optional[bool] = None
    min_eig: Optional[float] = None
    max_eig: Optional[float] = None
    trace: Optional[float] = None
    lanczos_iters: Optional[int] = None
    check_seconds: float = 0.0
    extensions: int = 0
    verified: Optional[bool] = None   # at a verified minimum (for non-fitted attempts)
    grad_evals: int = 0

    @property
    def fitted(self) -> bool:
        return self.status == "fitted"

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(v: Optional[float]) -> Optional[float]:
    return v if v is None or math.isfinite(v) else None


class _Checker:
    """Runs the minimum checks on the current parameters and keeps their cost."""

    def __init__(self, model, x, y, recipe: Recipe, seed: int):
        self.model, self.x, self.y, self.recipe, self.seed = model, x, y, recipe, seed
        self.seconds = 0.0
        self.last: dict = {}

    def gradient(self) -> float:
        t0 = time.perf_counter()
        gn = conv.grad_norm(self.model, self.x, self.y, self.recipe.procedure.loss_fn, self.recipe.checks.chunk)
        self.seconds += time.perf_counter() - t0
        self.last["grad_norm"] = gn
        return gn

    def hessian(self) -> conv.HessianReport:
        c = self.recipe.checks
        t0 = time.perf_counter()
        rep = conv.extreme_eigenvalues(self.model, self.x, self.y, self.recipe.procedure.loss_fn,
                                       tol=c.lanczos_tol, max_iters=c.lanczos_iters, chunk=c.chunk, seed=self.seed)
        if c.trace:
            rep.trace = conv.hutchinson_trace(self.model, self.x, self.y, self.recipe.procedure.loss_fn,
                                              c.trace_iters, self.seed)
        self.seconds += time.perf_counter() - t0
        self.last.update(min_eig=rep.min_eig, max_eig=rep.max_eig, lanczos_iters=rep.iterations,
                         trace=rep.trace)
        return rep

    def verified(self, plateaued: bool) -> bool:
        """All three checks; the Hessian only when the cheap ones pass."""
        c = self.recipe.checks
        if not plateaued:
            self.gradient()
            return False
        if self.gradient() > c.grad_tol:
            return False
        if not c.hessian:
            return True
        rep = self.hessian()
        return math.isfinite(rep.min_eig) and rep.min_eig >= c.min_eig


_HITS_CHUNK = 1 << 22  # logits held per epoch before their hits are counted (16 MB of float32)


def _hits(held: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Correct predictions over several minibatches' (logits, labels), as one device scalar."""
    if len(held) == 1:
        logits, labels = held[0]
    else:
        logits, labels = torch.cat([h[0] for h in held]), torch.cat([h[1] for h in held])
    return (logits.argmax(1) == labels).sum()


def batch_bounds(n: int, bs: int) -> list[tuple[int, int]]:
    """Minibatch [start, end) ranges of an epoch over n samples with batch size at most bs:
    ceil(n / bs) batches whose sizes differ by at most one (2178 at 128: 18 of 121).

    Not full batches plus a remainder: a trailing batch of a few samples takes a full-learning-rate
    step on the mean loss of those few, and measured on random labels it made sizes with a small
    remainder far harder to fit (8k-parameter MLP: n = 2178, remainder 2, failed 4 attempts of 4 at
    93-97%; n = 2176 fitted in 143 epochs, 2200 in 147), so the EMC depended on n mod batch size.
    No batch has one sample unless bs or n is 1 (batch norm cannot normalise a single sample; with
    bs = 2 and n odd, one batch has three)."""
    k = max(1, -(-n // max(1, bs)))
    if bs > 1 and k > 1 and n // k < 2:  # bs = 2, n odd: one batch of three rather than one of one
        k -= 1
    size, extra = divmod(n, k)
    bounds, lo = [], 0
    for i in range(k):
        hi = lo + size + (1 if i < extra else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def train_to_minimum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                     g: Optional[torch.Generator] = None, seed: int = 0,
                     on_epoch: Optional[Callable[[nn.Module, dict], None]] = None) -> FitResult:
    """Train `model` on (x, y) until fitted, at a verified minimum, diverged, or out of budget.

    `on_epoch(model, metrics)` (optional) is called after every epoch with the epoch's mean
    training loss and running accuracy (on the stream actually trained on, e.g. augmented),
    for learning curves; it costs one extra host synchronisation only when given.
    """
    t_start = time.perf_counter()
    n = int(x.shape[0])
    proc, budget, checks = recipe.procedure, recipe.budget, recipe.checks
    bs = n if proc.batch_size is None else min(int(proc.batch_size), n)
    bounds = batch_bounds(n, bs)
    spe = len(bounds)
    sizes = torch.tensor([hi - lo for lo, hi in bounds], dtype=torch.float64, device=x.device)
    total_steps = max(int(budget.epochs) * spe, int(budget.min_steps))
    if g is None:
        g = torch.Generator(device=x.device).manual_seed(seed)
    checker = _Checker(model, x, y, recipe, seed)
    plateau = conv.Plateau(checks.patience, checks.patience_steps, checks.rel_tol, checks.smoothing)
    thr = float(recipe.fit_threshold)

    epochs = steps = 0
    grad_evals = 0
    acc, loss_val = 0.0, float("nan")
    extensions = 0
    round_steps = total_steps
    lr_scale = 1.0
    stop_reason = "budget"
    verified: Optional[bool] = None
    plateaued = False

    while True:
        stepper = proc.stepper(model, round_steps)
        if lr_scale != 1.0:
            for group in stepper.optimizer.param_groups:
                group["lr"] *= lr_scale
            stepper.scheduler.base_lrs = [b * lr_scale for b in stepper.scheduler.base_lrs]
        round_epochs = math.ceil(round_steps / spe)
        done = False
        for ep in range(round_epochs):
            model.train()
            perm = torch.randperm(n, generator=g, device=x.device) if bs < n else None
            # per-step device values, reduced once per epoch: losses, and the minibatches' logits and
            # labels (their hits are counted in one pass, every _HITS_CHUNK logits at most)
            losses, hits, held, held_el = [], [], [], 0
            for lo, hi in bounds:
                idx = perm[lo:hi] if perm is not None else None
                xb, yb = (x, y) if idx is None else (x[idx], y[idx])
                if proc.batch_transform is not None:
                    xb = proc.batch_transform(xb, g)
                loss, logits = stepper.step(xb, yb)
                losses.append(loss)
                held.append((logits, yb))
                held_el += logits.numel()
                if held_el >= _HITS_CHUNK:
                    hits.append(_hits(held))
                    held, held_el = [], 0
            if held:
                hits.append(_hits(held))
            steps += spe
            epochs += 1
            # one host synchronisation per epoch: batch-size-weighted mean loss, running accuracy
            ep_loss = float(torch.stack(losses).double() @ sizes) / n
            online_acc = int(torch.stack(hits).sum()) / n
            if not math.isfinite(ep_loss):
                stop_reason, done = "diverged", True
                break
            plateaued = plateau.update(ep_loss, steps)
            if on_epoch is not None:
                on_epoch(model, {"epoch": epochs, "step": steps, "train_loss": ep_loss, "online_acc": online_acc,
                                 "lr": stepper.optimizer.param_groups[0]["lr"]})
            last = ep == round_epochs - 1
            if online_acc >= thr - budget.eval_margin or epochs % budget.eval_every == 0 or last:
                acc, loss_val = conv.evaluate(model, x, y, proc.loss_fn, checks.chunk)
                if acc >= thr:
                    stop_reason, done = "fitted", True
                    break
                if not math.isfinite(loss_val):
                    stop_reason, done = "diverged", True
                    break
            if (checks.early_verdict and plateaued and not last
                    and (epochs - plateau.best_epoch) % checks.check_every == 0):
                if checker.verified(plateaued):
                    acc, loss_val = conv.evaluate(model, x, y, proc.loss_fn, checks.chunk)
                    stop_reason, verified, done = "verified_minimum", True, True
                    break
        grad_evals += stepper.grad_evals
        if done:
            break
        # budget of this round spent without a fit: is it a verified minimum?
        verified = checker.verified(plateau.plateaued(steps))
        if verified:
            stop_reason = "verified_minimum"
            break
        if extensions >= budget.max_extensions:
            stop_reason = "budget"
            break
        extensions += 1
        round_steps = max(1, int(total_steps * budget.extension_fraction))
        lr_scale = float(budget.extension_lr_factor)

    if stop_reason == "diverged":
        status = "diverged"
    elif stop_reason == "fitted":
        status = "fitted"
        if checks.check_fitted:
            checker.gradient()
            if checks.hessian:
                checker.hessian()
    else:
        status = "failed" if verified else "unverified"
        acc, loss_val = conv.evaluate(model, x, y, proc.loss_fn, checks.chunk)
    last = checker.last
    return FitResult(
        status=status, stop_reason=stop_reason, train_acc=acc, train_loss=_finite(loss_val) if loss_val == loss_val else None,
        epochs=epochs, steps=steps, seconds=time.perf_counter() - t_start,
        grad_norm=_finite(last.get("grad_norm")), plateaued=plateau.plateaued(steps),
        min_eig=_finite(last.get("min_eig")), max_eig=_finite(last.get("max_eig")), trace=last.get("trace"),
        lanczos_iters=last.get("lanczos_iters"), check_seconds=checker.seconds, extensions=extensions,
        verified=verified if status != "fitted" else None, grad_evals=grad_evals,
    )
