"""The minimum checks of one attempt: `Checker` runs them on the model's current parameters.

At initialisation it measures the attempt's reference point (loss, gradient norm, weight norm); at a
plateau or at the cap, `verdict` runs the checks cheapest first (degenerate?, flat?, gradient below
the tolerance at the polished point?, no Hessian eigenvalue below min_eig?) and keeps the values
measured and their cost, which `fields` hands to the FitResult. The checks themselves (gradient
norm, polish, Lanczos) are in minimum.py.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

from . import minimum
from .minimum import HessianReport

if TYPE_CHECKING:
    from .spec import Recipe


def finite_or_none(v: Optional[float]) -> Optional[float]:
    return v if v is None or math.isfinite(v) else None


def _param_norm(model: nn.Module) -> float:
    with torch.no_grad():
        return float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in model.parameters())))


class Checker:
    """Runs the minimum checks on the current parameters and keeps their cost.

    `start()` measures the attempt's reference point at initialisation: the full-subset loss, the
    gradient norm (the scale of `grad_rel`) and the weight norm (the scale of `blowup`)."""

    def __init__(self, model, x, y, recipe: Recipe, seed: int):
        self.model, self.x, self.y, self.recipe, self.seed = model, x, y, recipe, seed
        self.seconds = 0.0
        self.last: dict = {}
        self.runs = 0
        c = recipe.checks
        # the gradient tolerance as applied (descent: set at each check from the loss there)
        self.tol: Optional[float] = float(c.grad_tol) if c.grad_rule == "absolute" else None
        self.init_loss = self.init_grad = self.init_norm = None

    def start(self) -> None:
        c = self.recipe.checks
        t0 = time.perf_counter()
        _, self.init_loss = minimum.evaluate(self.model, self.x, self.y, self.recipe.procedure.loss_fn, c.chunk)
        self.init_grad = minimum.grad_norm(self.model, self.x, self.y, self.recipe.procedure.loss_fn, c.chunk)
        self.init_norm = _param_norm(self.model)
        if c.grad_rule == "init" and math.isfinite(self.init_grad):
            self.tol = max(float(c.grad_rel) * self.init_grad, 1e-12)
        self.seconds += time.perf_counter() - t0

    def gradient(self, model: Optional[nn.Module] = None, key: str = "grad_norm") -> float:
        t0 = time.perf_counter()
        gn = minimum.grad_norm(model or self.model, self.x, self.y, self.recipe.procedure.loss_fn,
                            self.recipe.checks.chunk)
        self.seconds += time.perf_counter() - t0
        self.last[key] = gn
        return gn

    def polished(self) -> nn.Module:
        """The point the gradient and Hessian checks look at: the iterate after polish_steps
        full-batch GD steps on a copy (convergence.polish), or the iterate itself."""
        c = self.recipe.checks
        if not c.polish_steps:
            return self.model
        t0 = time.perf_counter()
        m, lam = minimum.polish(self.model, self.x, self.y, self.recipe.procedure.loss_fn, c.polish_steps,
                             c.chunk, self.seed)
        self.seconds += time.perf_counter() - t0
        self.last["polish_lambda"] = lam
        return m

    def hessian(self, model: Optional[nn.Module] = None) -> HessianReport:
        c = self.recipe.checks
        model = model or self.model
        t0 = time.perf_counter()
        rep = minimum.extreme_eigenvalues(model, self.x, self.y, self.recipe.procedure.loss_fn,
                                       tol=c.lanczos_tol, max_iters=c.lanczos_iters, chunk=c.chunk, seed=self.seed)
        if c.trace:
            rep.trace = minimum.hutchinson_trace(model, self.x, self.y, self.recipe.procedure.loss_fn,
                                              c.trace_iters, self.seed)
        self.seconds += time.perf_counter() - t0
        self.last.update(min_eig=rep.min_eig, max_eig=rep.max_eig, lanczos_iters=rep.iterations,
                         trace=rep.trace)
        return rep

    def degenerate(self, loss: float) -> bool:
        """A plateau that is no minimum worth the name: the loss is above the loss at
        initialisation, or the weights blew up (e.g. an lr so large that the ReLUs died)."""
        if self.init_loss is None:
            return False
        blown = self.init_norm and _param_norm(self.model) > self.recipe.checks.blowup * self.init_norm
        return (math.isfinite(self.init_loss) and loss > self.init_loss) or bool(blown)

    def verdict(self, plateaued: bool) -> str:
        """All three checks, cheapest first, the Hessian only when the others pass:
        'verified' | 'degenerate' | 'not_flat' (still descending) | 'steep' (gradient above the
        tolerance) | 'saddle' (a Hessian eigenvalue below min_eig, or no spectrum)."""
        c = self.recipe.checks
        self.runs += 1
        if self.init_loss is not None:  # at a plateau or at the cap: a blown-up run is degenerate either way
            t0 = time.perf_counter()
            _, loss = minimum.evaluate(self.model, self.x, self.y, self.recipe.procedure.loss_fn, c.chunk)
            self.seconds += time.perf_counter() - t0
            if self.degenerate(loss):
                return "degenerate"
            if plateaued and c.grad_rule == "descent" and math.isfinite(loss):
                lr = float(self.recipe.procedure.lr)
                self.tol = max(math.sqrt(c.rel_tol * max(loss, 0.0) / (lr * max(1, c.patience_steps))), 1e-12)
        if not plateaued:
            self.gradient()
            return "not_flat"
        self.gradient()  # at the iterate (recorded); the verdict reads the polished point's gradient
        if self.tol is None:  # no finite loss to scale the tolerance by: cannot be verified
            return "steep"
        point = self.polished()
        if point is not self.model and self.gradient(point, "grad_norm_polished") > self.tol:
            return "steep"
        if point is self.model and self.last["grad_norm"] > self.tol:
            return "steep"
        if not c.hessian:
            return "verified"
        rep = self.hessian(point)
        return "verified" if math.isfinite(rep.min_eig) and rep.min_eig >= c.min_eig else "saddle"

    def fitted_checks(self) -> None:
        """A fitted attempt's gradient norm and Hessian, when convergence.check_fitted asks for them."""
        c = self.recipe.checks
        if c.check_fitted:
            self.gradient()
            if c.hessian:
                self.hessian()

    _STATE = ("seconds", "last", "runs", "tol", "init_loss", "init_grad", "init_norm")

    def state(self) -> dict:
        """The reference point and running counts (fit/resume.py: a capped attempt's checkpoint)."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in ((k, getattr(self, k)) for k in self._STATE)}

    def set_state(self, state: dict) -> None:
        for k in self._STATE:
            setattr(self, k, dict(state[k]) if k == "last" else state[k])

    def fields(self) -> dict:
        """The FitResult fields the checks fill in (the last values measured, their cost, the tolerance)."""
        last = self.last
        return dict(grad_norm=finite_or_none(last.get("grad_norm")), min_eig=finite_or_none(last.get("min_eig")),
                    max_eig=finite_or_none(last.get("max_eig")), trace=last.get("trace"),
                    lanczos_iters=last.get("lanczos_iters"), check_seconds=self.seconds, grad_tol=self.tol,
                    init_loss=finite_or_none(self.init_loss), init_grad_norm=finite_or_none(self.init_grad),
                    checks_run=self.runs)
