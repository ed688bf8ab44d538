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
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from ..errors import require
from ..optim import Procedure
from . import minimum
from .checks import Checker, finite_or_none
from .policies import run_converge, run_fixed




POLICIES = ("converge", "fixed")
GRAD_RULES = ("absolute", "descent", "init")


@dataclass
class Budget:
    policy: str = "converge"   # converge: constant lr, decay on plateau, until a verdict | fixed: schedule
    epochs: int = 2000         # converge: the safety cap in epochs | fixed: the schedule's length ...
    min_steps: int = 20000     # ... never fewer optimizer steps than this
    lr_decay: float = 0.5      # converge: lr multiplier at a plateau that is not a verified minimum
    min_lr_factor: float = 1e-2  # converge: below this fraction of the lr, an unverified plateau ends it
    max_extensions: int = 2    # fixed: extra training rounds for a failure not at a verified minimum
    extension_fraction: float = 0.5  # fixed: length of one extension, as a fraction of the budget
    extension_lr_factor: float = 0.1  # fixed: its peak lr, as a fraction of the procedure's lr
    eval_every: int = 50       # full-subset evaluation at least every k epochs ...
    eval_margin: float = 0.01  # ... and whenever the running accuracy is within this of the threshold

    def validate(self) -> None:
        require(self.policy in POLICIES, "train.policy", self.policy, f"allowed: {', '.join(POLICIES)}")
        require(int(self.epochs) >= 1, "train.epochs", self.epochs, "must be a positive integer")
        require(int(self.min_steps) >= 0, "train.min_steps", self.min_steps, "must be an integer >= 0")
        require(0 < float(self.lr_decay) < 1, "train.lr_decay", self.lr_decay, "must lie in (0, 1)")
        require(0 < float(self.min_lr_factor) <= 1, "train.min_lr_factor", self.min_lr_factor,
                "must lie in (0, 1]")
        require(int(self.max_extensions) >= 0, "train.max_extensions", self.max_extensions, "must be >= 0")
        require(0 < float(self.extension_fraction), "train.extension_fraction", self.extension_fraction,
                "must be > 0")
        require(int(self.eval_every) >= 1, "train.eval_every", self.eval_every, "must be a positive integer")


@dataclass
class Checks:
    grad_rule: str = "absolute"  # full-batch gradient norm below: absolute: grad_tol | init: grad_rel x
    #                              the norm at initialisation | descent: sqrt(rel_tol x loss / (lr x
    #                              patience_steps)), the norm at which gradient descent at the procedure's
    #                              lr would lower the loss by rel_tol over a plateau window (first order)
    grad_tol: float = 5e-2
    grad_rel: float = 1e-2
    blowup: float = 100.0        # a plateau with weights this many times their initial norm is degenerate
    polish_steps: int = 50       # full-batch GD steps (on a copy) before the gradient and Hessian checks:
    #                              they remove SGD's oscillation across stiff directions (0: off)
    min_eig: float = -1e-2       # ... no Hessian eigenvalue below this ...
    patience: int = 10           # ... and the smoothed loss flat for this many epochs
    patience_steps: int = 200    # ... and this many optimizer steps
    rel_tol: float = 1e-3        # improvement smaller than this (relative) counts as flat
    smoothing: float = 0.5       # EMA factor of the epoch loss
    hessian: bool = True         # run the Hessian check (off: the verdict rests on grad + plateau)
    check_fitted: bool = False   # also measure grad norm / Hessian on fitted attempts (recorded, never decides)
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
                self.grad_tol, "must be a positive number, 'init' or 'auto'")
        require(self.grad_rule in GRAD_RULES, "convergence.grad_tol", self.grad_rule,
                "must be a positive number, " + ", ".join(repr(r) for r in GRAD_RULES[1:]) + " or 'auto'")
        require(isinstance(self.grad_rel, (int, float)) and self.grad_rel > 0,
                "convergence.grad_rel", self.grad_rel, "must be a positive number")
        require(isinstance(self.blowup, (int, float)) and self.blowup > 1, "convergence.blowup", self.blowup,
                "must be a number > 1")
        require(isinstance(self.polish_steps, int) and self.polish_steps >= 0, "convergence.polish_steps",
                self.polish_steps, "must be an integer >= 0 (0: check the iterate itself)")
        require(int(self.check_every) >= 1, "convergence.check_every", self.check_every, "must be >= 1")


@dataclass
class Recipe:
    procedure: Procedure
    budget: Budget = field(default_factory=Budget)
    checks: Checks = field(default_factory=Checks)
    fit_threshold: float = 1.0


@dataclass
class FitResult:
    status: str                  # fitted | failed | diverged | degenerate | unverified
    stop_reason: str             # fitted | verified_minimum | diverged | degenerate | cap | lr_floor | budget (fixed)
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
    policy: str = "converge"
    grad_tol: Optional[float] = None  # the tolerance applied (grad_rel x init_grad_norm, or absolute)
    init_loss: Optional[float] = None  # full-subset loss and gradient norm at initialisation
    init_grad_norm: Optional[float] = None
    lr_final: Optional[float] = None  # the lr when the attempt stopped, as a fraction of the procedure's lr
    lr_decays: int = 0
    checks_run: int = 0               # plateaus at which the minimum checks ran
    grad_norm_polished: Optional[float] = None  # the gradient after convergence.polish_steps GD steps
    polish_lambda: Optional[float] = None       # the top Hessian eigenvalue that set the polish lr
    cap_steps: Optional[int] = None   # the attempt's safety cap (converge) or schedule length (fixed), in steps

    @property
    def fitted(self) -> bool:
        return self.status == "fitted"

    def to_dict(self) -> dict:
        return asdict(self)


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


def minibatches(n: int, recipe: Recipe) -> Minibatches:
    """The epoch layout of an attempt at n samples under `recipe` (full batch when batch_size is None)."""
    bs = n if recipe.procedure.batch_size is None else min(int(recipe.procedure.batch_size), n)
    bounds = batch_bounds(n, bs)
    return Minibatches(bs, bounds, max(int(recipe.budget.epochs) * len(bounds), int(recipe.budget.min_steps)))


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
                     on_epoch: Optional[Callable[[nn.Module, dict], None]] = None) -> FitResult:
    """Train `model` on (x, y) until fitted, at a verified minimum, diverged, degenerate, or at the cap.

    `on_epoch(model, metrics)` (optional) is called after every epoch with the epoch's mean
    training loss and running accuracy (on the stream actually trained on, e.g. augmented),
    for learning curves; it costs one extra host synchronisation only when given.
    """
    t_start = time.perf_counter()
    n = int(x.shape[0])
    proc, budget, checks = recipe.procedure, recipe.budget, recipe.checks
    mb = minibatches(n, recipe)
    spe, total_steps = mb.spe, mb.total_steps
    sizes = mb.sizes(x.device)
    g = mb.generator(g, seed, x.device)
    checker = Checker(model, x, y, recipe, seed)
    checker.start()
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

    run = run_converge if budget.policy == "converge" else run_fixed
    stop_reason, plateau, extra = run(model, proc, budget, checks, checker, total_steps, spe, st,
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
        epochs=st["epochs"], steps=st["steps"], seconds=time.perf_counter() - t_start,
        plateaued=plateau.plateaued(st["steps"]), **checker.fields(),
        verified=None if status in ("fitted", "diverged") else status == "failed", policy=budget.policy,
        grad_norm_polished=finite_or_none(last.get("grad_norm_polished")),
        polish_lambda=finite_or_none(last.get("polish_lambda")), cap_steps=int(total_steps), **extra,
    )
