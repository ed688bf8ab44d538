"""train_to_minimum(model, x, y, recipe) -> FitResult.   Pure: no files, no logging side effects.

Also what an attempt is given and returns (`Budget`, `Checks`, `Recipe`, `FitResult`) and its
minibatch layout and epoch (`batch_bounds`, `minibatches`, `train_epoch`), which pastfit.py and
stacked.py share.

The loop keeps data on the device as tensors and draws minibatches by index
(no DataLoader). Metrics are accumulated on the device and read once per
epoch. Two learning-rate policies (`train.policy`):

  * `converge` (default): train until a verdict. The lr is constant (the
    procedure's lr, no schedule towards zero); each time the smoothed loss has
    plateaued the minimum checks run, and if the attempt is not at a verified
    minimum the lr is divided (`train.lr_decay`) and training goes on. The
    attempt ends when it is fitted, at a verified minimum, diverged, degenerate
    (a plateau whose loss is above the loss at initialisation, or whose weights
    blew up), or at the safety cap (`train.epochs` epochs, never fewer than
    `train.min_steps` steps) or the lr floor (`train.min_lr_factor`) without a
    verified minimum: then it is `unverified`. Nothing in the lr depends on the
    cap, so a larger cap changes only the attempts that reached the cap.
  * `fixed` (the pre-0.3 behaviour, for comparison): the optimizer's schedule
    (cosine by default) over `train.epochs` epochs / `train.min_steps` steps;
    a failure not at a verified minimum is trained further (`max_extensions`
    rounds at `extension_lr_factor` of the lr) and ends `unverified`.

Every result records why it stopped.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from ..errors import require
from . import minimum
from .checks import Checker, finite_or_none
from .policies import run_converge, run_fixed
from .resume import FORMAT, Ladder, capture, restore
from .spec import GRAD_RULES, POLICIES, Budget, Checks, FitResult, Recipe  # noqa: F401  (re-exported)




_HITS_CHUNK = 1 << 22  # logits held per epoch before their hits are counted (16 MB of float32)
_GATHER_BYTES = 64 << 20  # subsets up to this size are permuted in one gather per epoch (train_epoch)


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


@dataclass
class Minibatches:
    """An attempt's epoch layout at n samples: batch size, minibatch bounds, and its length in steps
    (train.epochs epochs, never fewer than train.min_steps optimizer steps)."""

    bs: int
    bounds: list[tuple[int, int]]
    total_steps: int

    @property
    def spe(self) -> int:
        """Optimizer steps per epoch."""
        return len(self.bounds)

    def sizes(self, device) -> torch.Tensor:
        """The minibatches' sizes (float64): the weights of the epoch's mean loss."""
        return torch.tensor([hi - lo for lo, hi in self.bounds], dtype=torch.float64, device=device)

    @staticmethod
    def generator(g: Optional[torch.Generator], seed: int, device) -> torch.Generator:
        """The minibatch order's generator: `g`, or one seeded with `seed`."""
        return torch.Generator(device=device).manual_seed(seed) if g is None else g


def minibatches(n: int, recipe: Recipe, cap: Optional[int] = None) -> Minibatches:
    """The epoch layout of an attempt at n samples under `recipe` (full batch when batch_size is None).
    Its length in steps: `cap`, else the top rung of train.caps, else train.epochs epochs and never fewer
    than train.min_steps steps."""
    bs = n if recipe.procedure.batch_size is None else min(int(recipe.procedure.batch_size), n)
    bounds = batch_bounds(n, bs)
    b = recipe.budget
    total = cap or b.top_cap() or max(int(b.epochs) * len(bounds), int(b.min_steps))
    return Minibatches(bs, bounds, int(total))


def train_epoch(model: nn.Module, stepper, x: torch.Tensor, y: torch.Tensor, mb: Minibatches,
                sizes: torch.Tensor, g: torch.Generator, batch_transform=None) -> tuple[float, float]:
    """One epoch of minibatch steps in train mode, in an order drawn from `g` (none at full batch);
    `batch_transform` (augmentation) applied to each minibatch's inputs. Returns the epoch's
    batch-size-weighted mean loss and running accuracy, read with one host synchronisation."""
    n = int(x.shape[0])
    model.train()
    perm = torch.randperm(n, generator=g, device=x.device) if mb.bs < n else None
    # a small subset is put in the epoch's order in one gather, and the minibatches are slices of it
    # (views, no copy); a large one is gathered a minibatch at a time (no second copy of it in memory)
    if perm is not None and x.numel() * x.element_size() <= _GATHER_BYTES:
        x, y, perm = x[perm], y[perm], None
    # per-step device values, reduced once per epoch: losses, and the minibatches' logits and
    # labels (their hits are counted in one pass, every _HITS_CHUNK logits at most)
    losses, hits, held, held_el = [], [], [], 0
    for lo, hi in mb.bounds:
        # without a permutation: slices in order (at full batch the one bound is the whole subset)
        idx = perm[lo:hi] if perm is not None else slice(lo, hi)
        xb, yb = x[idx], y[idx]
        if batch_transform is not None:
            xb = batch_transform(xb, g)
        loss, logits = stepper.step(xb, yb)
        losses.append(loss)
        held.append((logits, yb))
        held_el += logits.numel()
        if held_el >= _HITS_CHUNK:
            hits.append(_hits(held))
            held, held_el = [], 0
    if held:
        hits.append(_hits(held))
    return float(torch.stack(losses).double() @ sizes) / n, int(torch.stack(hits).sum()) / n


def plateau_of(checks: Checks, stretch: float = 1.0) -> minimum.Plateau:
    """A fresh plateau detector with the convergence.* settings (stretch: see minimum.Plateau)."""
    return minimum.Plateau(checks.patience, checks.patience_steps, checks.rel_tol, checks.smoothing, stretch)


def train_to_minimum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                     g: Optional[torch.Generator] = None, seed: int = 0,
                     on_epoch: Optional[Callable[[nn.Module, dict], None]] = None, cap: Optional[int] = None,
                     resume: Optional[dict] = None, on_cap: Optional[Callable[[dict], None]] = None) -> FitResult:
    """Train `model` on (x, y) until fitted, at a verified minimum, diverged, degenerate, or at the cap.

    `on_epoch(model, metrics)` (optional) is called after every epoch with the epoch's mean
    training loss and running accuracy (on the stream actually trained on, e.g. augmented),
    for learning curves; it costs one extra host synchronisation only when given.

    The ladder of caps (train.caps, converge policy): `cap` is this attempt's cap in steps (default:
    the top rung); the full subset is evaluated at every rung passed (FitResult.rungs). An attempt that
    stops at its cap hands its whole state to `on_cap(state)`; `resume` (such a state, at a smaller
    cap) continues it exactly as if it had been given this cap from the start (fit/resume.py).
    """
    t_start = time.perf_counter()
    n = int(x.shape[0])
    proc, budget, checks = recipe.procedure, recipe.budget, recipe.checks
    mb = minibatches(n, recipe, cap)
    spe, total_steps = mb.spe, mb.total_steps
    sizes = mb.sizes(x.device)
    g = mb.generator(g, seed, x.device)
    checker = Checker(model, x, y, recipe, seed)
    require(resume is None or (budget.policy == "converge" and resume.get("format") == FORMAT), "resume",
            None if resume is None else resume.get("format"), "a converge-policy checkpoint of this format")
    if resume is None:
        checker.start()
    ladder = Ladder(tuple(int(c) for c in (budget.caps or ()) if budget.policy == "converge"), resume, on_cap)
    thr = float(recipe.fit_threshold)
    st = {"epochs": 0, "steps": 0, "acc": 0.0, "loss": float("nan")}

    def new_plateau(stretch: float = 1.0) -> minimum.Plateau:
        return plateau_of(checks, stretch)

    def run_epoch(stepper) -> tuple[float, float]:
        """One epoch of minibatch steps; (batch-size-weighted mean loss, running accuracy)."""
        out = train_epoch(model, stepper, x, y, mb, sizes, g, proc.batch_transform)
        st["steps"] += spe
        st["epochs"] += 1
        return out

    def after_epoch(stepper, ep_loss: float, online_acc: float, plateau, force_eval: bool) -> Optional[str]:
        """Divergence, learning curve, fit check; a stop reason or None."""
        if not math.isfinite(ep_loss):
            return "diverged"
        plateau.update(ep_loss, st["steps"])
        if on_epoch is not None:
            on_epoch(model, {"epoch": st["epochs"], "step": st["steps"], "train_loss": ep_loss,
                             "online_acc": online_acc, "lr": stepper.optimizer.param_groups[0]["lr"]})
        if online_acc >= thr - budget.eval_margin or st["epochs"] % budget.eval_every == 0 or force_eval:
            st["acc"], st["loss"] = minimum.evaluate(model, x, y, proc.loss_fn, checks.chunk)
            if st["acc"] >= thr:
                return "fitted"
            if not math.isfinite(st["loss"]):
                return "diverged"
        return None

    if budget.policy == "converge":
        def snapshot(stepper, plateau, factor: float, decays: int) -> dict:
            return capture(model, stepper, g, st, plateau, factor, decays, checker, ladder,
                           time.perf_counter() - t_start)

        def put_back(stepper, plateau) -> tuple[float, int]:
            return restore(resume, model, stepper, g, st, plateau, checker, ladder)

        stop_reason, plateau, extra = run_converge(model, proc, budget, checks, checker, total_steps, spe, st,
                                                   new_plateau, run_epoch, after_epoch, ladder, snapshot,
                                                   put_back if resume is not None else None)
    else:
        stop_reason, plateau, extra = run_fixed(model, proc, budget, checks, checker, total_steps, spe, st,
                                                new_plateau, run_epoch, after_epoch)

    if stop_reason == "diverged":
        status = "diverged"
    elif stop_reason == "fitted":
        status = "fitted"
        checker.fitted_checks()
    else:
        status = {"verified_minimum": "failed", "degenerate": "degenerate"}.get(stop_reason, "unverified")
        st["acc"], st["loss"] = minimum.evaluate(model, x, y, proc.loss_fn, checks.chunk)
    last = checker.last
    loss_val = st["loss"]
    return FitResult(
        status=status, stop_reason=stop_reason, train_acc=st["acc"],
        train_loss=finite_or_none(loss_val) if loss_val == loss_val else None,
        epochs=st["epochs"], steps=st["steps"],
        seconds=time.perf_counter() - t_start + (float(resume["seconds"]) if resume is not None else 0.0),
        plateaued=plateau.plateaued(st["steps"]), **checker.fields(),
        verified=None if status in ("fitted", "diverged") else status == "failed", policy=budget.policy,
        grad_norm_polished=finite_or_none(last.get("grad_norm_polished")),
        polish_lambda=finite_or_none(last.get("polish_lambda")), cap_steps=int(total_steps),
        rungs=list(ladder.records) if ladder.rungs else None,
        resumed_from_step=int(resume["loop"]["steps"]) if resume is not None else None, **extra,
    )
