"""Is a trained model at a minimum of its training loss?

Three checks, all on the whole subset, in eval mode (batch norm uses running
statistics, dropout is off):
  * the full-batch gradient norm is below a tolerance,
  * the (smoothed) training loss has plateaued,
  * the loss Hessian has no eigenvalue below `min_eig` (default -1e-2).

The extreme Hessian eigenvalues come from Lanczos (scipy's ARPACK `eigsh`) on
Hessian-vector products by double backward, so the most negative eigenvalue is
found even when a positive one has larger magnitude (PyHessian's power
iteration only gives the largest-magnitude one). PyHessian supplies the
Hutchinson trace estimate.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _chunks(n: int, chunk: int):
    for s in range(0, n, chunk):
        yield slice(s, min(n, s + chunk))


class eval_mode:
    """Context manager: put a model in eval mode, restore its previous mode after."""

    def __init__(self, model: nn.Module):
        self.model, self.was = model, model.training

    def __enter__(self):
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Optional[LossFn] = None,
             chunk: int = 8192) -> tuple[float, float]:
    """(accuracy, mean loss) on the whole set, eval mode, chunked."""
    loss_fn = loss_fn or nn.functional.cross_entropy
    n = x.shape[0]
    if n == 0:
        return float("nan"), float("nan")
    correct = torch.zeros((), device=x.device)
    total = torch.zeros((), device=x.device, dtype=torch.float64)
    with eval_mode(model):
        for sl in _chunks(n, chunk):
            logits = model(x[sl])
            correct += (logits.argmax(1) == y[sl]).sum()
            total += loss_fn(logits, y[sl]).double() * (sl.stop - sl.start)
    return float(correct) / n, float(total) / n


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def full_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                  chunk: int = 8192) -> list[torch.Tensor]:
    """Gradient of the mean loss over the whole set (eval mode, chunked)."""
    params = _params(model)
    n = x.shape[0]
    grads = [torch.zeros_like(p) for p in params]
    with eval_mode(model):
        for sl in _chunks(n, chunk):
            loss = loss_fn(model(x[sl]), y[sl]) * ((sl.stop - sl.start) / n)
            for acc, g in zip(grads, torch.autograd.grad(loss, params)):
                acc += g
    return grads


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, chunk: int = 8192) -> float:
    g = full_gradient(model, x, y, loss_fn, chunk)
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in g)))


def hvp_operator(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                 chunk: int = 8192) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """A function v -> H v for the mean loss over (x, y), v flat; and the dimension."""
    params = _params(model)
    dim = sum(p.numel() for p in params)
    n = x.shape[0]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        vs, off = [], 0
        for p in params:
            vs.append(v[off:off + p.numel()].view_as(p))
            off += p.numel()
        out = [torch.zeros_like(p) for p in params]
        with eval_mode(model):
            for sl in _chunks(n, chunk):
                loss = loss_fn(model(x[sl]), y[sl]) * ((sl.stop - sl.start) / n)
                g = torch.autograd.grad(loss, params, create_graph=True)
                dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
                for acc, h in zip(out, torch.autograd.grad(dot, params)):
                    acc += h
        return torch.cat([o.reshape(-1) for o in out])

    return hvp, dim


def top_eigenvalue(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, iters: int = 20,
                   chunk: int = 8192, seed: int = 0) -> float:
    """The largest-magnitude Hessian eigenvalue by power iteration on Hessian-vector products."""
    hvp, dim = hvp_operator(model, x, y, loss_fn, chunk)
    p0 = _params(model)[0]
    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(dim, generator=g, dtype=torch.float64).to(device=p0.device, dtype=p0.dtype)
    v /= v.norm()
    lam = 0.0
    for _ in range(max(1, int(iters))):
        w = hvp(v).detach()
        lam = float(v @ w)
        nw = float(w.norm())
        if not math.isfinite(nw) or nw == 0.0:
            break
        v = w / nw
    return lam


def polish(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, steps: int = 50,
           chunk: int = 8192, seed: int = 0) -> tuple[nn.Module, float]:
    """A copy of `model` moved to the floor of its valley, for the gradient check.

    SGD at a finite lr keeps its iterate bouncing across the stiff directions of the loss: the
    full-batch gradient there is dominated by that oscillation (the Hessian times the offset), not by
    descent, and stays large however flat the loss is. `steps` full-batch gradient-descent steps at
    lr = 1 / lambda_max (power iteration) damp every direction of curvature above lambda_max / 10 by
    more than 100x in 50 steps and leave the slow descent along the valley, which is what the
    gradient criterion is about. The model itself is not changed. Returns (copy, lambda_max)."""
    import copy

    m = copy.deepcopy(model)
    lam = abs(top_eigenvalue(m, x, y, loss_fn, chunk=chunk, seed=seed))
    if not math.isfinite(lam) or lam == 0.0:
        return m, lam
    params = _params(m)
    for _ in range(int(steps)):
        grads = full_gradient(m, x, y, loss_fn, chunk)
        with torch.no_grad():
            for p, gr in zip(params, grads):
                p.sub_(gr, alpha=1.0 / lam)
    return m, lam


@dataclass
class HessianReport:
    min_eig: float
    max_eig: float
    iterations: int  # Hessian-vector products used by Lanczos
    seconds: float
    trace: Optional[float] = None


def extreme_eigenvalues(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                        tol: float = 1e-3, max_iters: int = 300, chunk: int = 8192,
                        seed: int = 0) -> HessianReport:
    """Most negative and most positive Hessian eigenvalues by Lanczos (ARPACK, which='BE').

    `tol` is ARPACK's relative accuracy of the eigenvalues; `max_iters` bounds the number of
    Hessian-vector products (approximately: ARPACK restarts in blocks of `ncv`). If Lanczos
    does not converge, the extreme Ritz values found so far are reported: they lie inside the
    spectrum, so a negative one still proves negative curvature.
    """
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

    t0 = time.perf_counter()
    hvp, dim = hvp_operator(model, x, y, loss_fn, chunk)
    p0 = _params(model)[0]
    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        t = torch.as_tensor(np.asarray(v).reshape(-1), dtype=p0.dtype, device=p0.device)
        return hvp(t).double().cpu().numpy()

    if dim <= 2:  # ARPACK needs k < dim: form the tiny Hessian densely
        H = np.stack([matvec(e) for e in np.eye(dim)])
        ev = np.linalg.eigvalsh((H + H.T) / 2)
        return HessianReport(float(ev[0]), float(ev[-1]), count[0], time.perf_counter() - t0)
    op = LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(dim)
    ncv = min(dim, 20)
    try:
        vals = eigsh(op, k=2, which="BE", tol=tol, ncv=ncv, maxiter=max(1, int(max_iters) // ncv), v0=v0,
                     return_eigenvectors=False)
    except ArpackNoConvergence as e:  # keep what converged; a missing end is reported as NaN
        vals = np.asarray(e.eigenvalues) if len(e.eigenvalues) else np.array([np.nan])
    except ArpackError:
        # e.g. info -9: the Krylov vector vanished (a dead network whose Hessian is zero along v0,
        # or non-finite products after divergence): no spectrum, so the minimum is not verified
        vals = np.array([np.nan])
    return HessianReport(float(np.min(vals)), float(np.max(vals)), count[0], time.perf_counter() - t0)


def hutchinson_trace(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                     max_iters: int = 20, seed: int = 0) -> float:
    """Hessian trace estimate by PyHessian (Hutchinson), its global RNG use scoped to `seed`."""
    from pyhessian import hessian as PyHessian

    from ..utils import seeded_init

    import warnings

    was = model.training
    try:
        with seeded_init(seed), warnings.catch_warnings():
            # PyHessian differentiates through .backward(create_graph=True); the grads are cleared below
            warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
            h = PyHessian(model, loss_fn, data=(x, y), cuda=x.is_cuda)
            vals = h.trace(maxIter=int(max_iters), tol=1e-3)
    finally:
        model.train(was)
        model.zero_grad(set_to_none=True)
    return float(np.mean(vals))


class Plateau:
    """Has the training loss stopped decreasing?

    The epoch loss is smoothed (EMA); the loss has plateaued when the smoothed
    value has not improved on its best by more than `rel_tol` (relative) for
    `patience` epochs *and* `patience_steps` optimizer steps.
    """

    def __init__(self, patience: int, patience_steps: int, rel_tol: float, smoothing: float, stretch: float = 1.0):
        # the settings' defaults live in one place: fit.loop.Checks (conf/config.yaml's convergence.*)
        # stretch: the window in epochs and steps is this many times longer (the converge policy
        # passes 1 / lr factor, so that a plateau always spans the same lr-weighted time)
        self.patience = int(math.ceil(int(patience) * stretch))
        self.patience_steps = int(math.ceil(int(patience_steps) * stretch))
        self.rel_tol, self.smoothing = float(rel_tol), float(smoothing)
        self.ema: Optional[float] = None
        self.best = math.inf
        self.best_epoch = 0
        self.best_step = 0
        self.epoch = 0

    def update(self, loss: float, step: int) -> bool:
        self.epoch += 1
        self.ema = loss if self.ema is None else self.smoothing * self.ema + (1 - self.smoothing) * loss
        if self.ema < self.best * (1 - self.rel_tol) or self.best == math.inf:
            self.best, self.best_epoch, self.best_step = self.ema, self.epoch, step
        return self.plateaued(step)

    def plateaued(self, step: int) -> bool:
        return (self.epoch - self.best_epoch >= self.patience) and (step - self.best_step >= self.patience_steps)

