"""Batched attempts: several fit attempts at one size trained together as one stacked model.

The attempts keep their own subset, init, minibatch order and optimizer state:
parameters are stacked with `torch.func.stack_module_state`, the forward pass is
`vmap(functional_call)`, and one elementwise optimizer (SGD, Adam, AdamW) over the
stacked tensors is exactly K independent optimizers. Each attempt stops on its own
criteria (fitted, verified minimum, divergence, budget); the minimum checks run on
the attempt's own module, written back from the stack. Results mean the same as
`train_to_minimum` on the same seeds (floating-point order differs, so trajectories
agree only approximately).

Only `train.policy=fixed` is batched (the converge policy's lr drops per attempt, at its own
plateaus). Procedures that are not elementwise-per-model (Shampoo, SAM, augmentation, quantised or
subspace reparameterisations) and models with buffers (batch norm) are not batched:
`batchable` says so and the caller trains them one at a time.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Optional

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..optim import Procedure, Stepper
from . import minimum
from .checks import Checker, finite_or_none
from .loop import FitResult, Recipe, minibatches, plateau_of, train_to_minimum
from .policies import early_check_due, extension_round, scale_lr

ELEMENTWISE = {"sgd", "gd", "adam", "adamw"}


def batchable(models: list[nn.Module], recipe: Recipe) -> bool:
    p = recipe.procedure
    return (len(models) > 1 and recipe.budget.policy == "fixed" and p.optimizer in ELEMENTWISE and p.stepper_cls is Stepper
            and type(p).loss_fn is Procedure.loss_fn
            and p.batch_transform is None and not p.post_step_hooks
            and all(len(list(m.buffers())) == 0 for m in models)
            and all(all(q.requires_grad for q in m.parameters()) for m in models))


def train_batched(models: list[nn.Module], xs: list[torch.Tensor], ys: list[torch.Tensor], recipe: Recipe,
                  gens: list[torch.Generator], seeds: list[int]) -> list[FitResult]:
    """Train K models (same n) in lockstep; returns one FitResult per model."""
    if not batchable(models, recipe):
        return [train_to_minimum(m, x, y, recipe, g=g, seed=s) for m, x, y, g, s in zip(models, xs, ys, gens, seeds)]
    t0 = time.perf_counter()
    K, n = len(models), int(xs[0].shape[0])
    proc, budget, checks = recipe.procedure, recipe.budget, recipe.checks
    thr = float(recipe.fit_threshold)
    X, Y = torch.stack(xs), torch.stack(ys)
    mb = minibatches(n, recipe)
    bs, bounds, spe, total_steps = mb.bs, mb.bounds, mb.spe, mb.total_steps
    params, buffers = stack_module_state(models)
    names = list(params)
    base = copy.deepcopy(models[0]).to("meta")

    def f(p, b, x):
        return functional_call(base, (p, b), (x,))

    vf = vmap(f)
    rows = torch.arange(K, device=X.device)[:, None]

    def per_model_loss(logits: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Each model's mean training loss ([K]) in one call (the procedure's cross-entropy)."""
        flat = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1),
                                           reduction="none", label_smoothing=proc.label_smoothing)
        return flat.view(K, -1).mean(1)

    def write_back(k: int) -> nn.Module:
        with torch.no_grad():
            for name, q in models[k].named_parameters():
                q.copy_(params[name][k])
        return models[k]

    def eval_all() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            acc = torch.zeros(K, device=X.device)
            loss = torch.zeros(K, device=X.device, dtype=torch.float64)
            for s in range(0, n, checks.chunk):
                lg = vf(params, buffers, X[:, s:s + checks.chunk])
                yy = Y[:, s:s + checks.chunk]
                acc += (lg.argmax(-1) == yy).sum(1)
                loss += per_model_loss(lg, yy).double() * yy.shape[1]
        return (acc / n).cpu(), (loss / n).cpu()

    plateaus = [plateau_of(checks) for _ in range(K)]
    checkers = [Checker(models[k], xs[k], ys[k], recipe, seeds[k]) for k in range(K)]
    for c in checkers:  # loss, gradient and weight norm at initialisation (the checks' reference)
        c.start()
    info = [dict(epochs=0, steps=0, acc=0.0, loss=float("nan"), verified=None, ext=0, t_end=None,
                 reason="budget") for _ in range(K)]
    active = [True] * K
    epochs = steps = 0
    round_steps, lr_scale, extensions = total_steps, 1.0, 0

    snaps: list[Optional[dict]] = [None] * K

    def finish(k: int, reason: str, verified: Optional[bool] = None) -> None:
        """Stop attempt k: keep its parameters as they are now (the stack goes on moving)."""
        active[k] = False
        snaps[k] = {name: params[name][k].detach().clone() for name in names}
        info[k].update(reason=reason, verified=verified, epochs=epochs, steps=steps, t_end=time.perf_counter())

    while any(active):
        opt = proc.make_optimizer(list(params.values()))
        sched = proc.make_scheduler(opt, round_steps)
        if lr_scale != 1.0:
            scale_lr(opt, sched, lr_scale)
        round_epochs = math.ceil(round_steps / spe)
        for ep in range(round_epochs):
            mask = torch.tensor(active, device=X.device, dtype=X.dtype)
            perms = torch.stack([torch.randperm(n, generator=g, device=X.device) if bs < n
                                 else torch.arange(n, device=X.device) for g in gens])
            loss_sum = torch.zeros(K, device=X.device, dtype=torch.float64)
            correct = torch.zeros(K, device=X.device, dtype=torch.int64)
            for lo, hi in bounds:
                idx = perms[:, lo:hi]
                xb, yb = X[rows, idx], Y[rows, idx]
                opt.zero_grad(set_to_none=True)
                logits = vf(params, buffers, xb)
                per = per_model_loss(logits, yb)
                (per * mask).sum().backward()
                opt.step()
                sched.step()
                loss_sum += per.detach().double() * yb.shape[1]
                correct += (logits.detach().argmax(-1) == yb).sum(1)
            steps += spe
            epochs += 1
            ep_loss = (loss_sum / n).cpu().tolist()  # one host synchronisation per epoch
            online = (correct.double() / n).cpu().tolist()
            last = ep == round_epochs - 1
            need_eval = epochs % budget.eval_every == 0 or last
            for k in range(K):
                if not active[k]:
                    continue
                if not math.isfinite(ep_loss[k]):
                    finish(k, "diverged")
                    continue
                plateaus[k].update(ep_loss[k], steps)
                need_eval = need_eval or online[k] >= thr - budget.eval_margin
            if need_eval and any(active):
                acc, loss = eval_all()
                for k in range(K):
                    if active[k]:
                        info[k].update(acc=float(acc[k]), loss=float(loss[k]))
                        if acc[k] >= thr:
                            finish(k, "fitted")
            for k in range(K):
                p = plateaus[k]
                if active[k] and early_check_due(checks, p, steps, epochs, last):
                    write_back(k)
                    verdict = checkers[k].verdict(True)
                    if verdict == "verified":
                        a, l = minimum.evaluate(models[k], xs[k], ys[k], proc.loss_fn, checks.chunk)
                        info[k].update(acc=a, loss=l)
                        finish(k, "verified_minimum", True)
                    elif verdict == "degenerate":
                        finish(k, "degenerate", False)
            if not any(active):
                break
        if not any(active):
            break
        for k in range(K):  # round spent: verified minimum, or another extension?
            if active[k]:
                write_back(k)
                verdict = checkers[k].verdict(plateaus[k].plateaued(steps))
                if verdict == "verified":
                    finish(k, "verified_minimum", True)
                elif verdict == "degenerate":
                    finish(k, "degenerate", False)
                elif extensions >= budget.max_extensions:
                    finish(k, "budget", False)
                else:
                    info[k]["ext"] = extensions + 1
        if not any(active):
            break
        extensions += 1
        round_steps, lr_scale = extension_round(total_steps, budget)

    out = []
    for k in range(K):
        i = info[k]
        with torch.no_grad():  # each model gets its parameters from when it stopped
            for name, q in models[k].named_parameters():
                q.copy_(snaps[k][name])
        status = {"diverged": "diverged", "fitted": "fitted", "degenerate": "degenerate"}.get(i["reason"],
                                                                    "failed" if i["verified"] else "unverified")
        if status == "fitted":
            checkers[k].fitted_checks()
        if status in ("failed", "unverified", "degenerate"):
            i["acc"], i["loss"] = minimum.evaluate(models[k], xs[k], ys[k], proc.loss_fn, checks.chunk)
        out.append(FitResult(
            status=status, stop_reason=i["reason"], train_acc=i["acc"], train_loss=finite_or_none(i["loss"]),
            epochs=i["epochs"], steps=i["steps"], seconds=(i["t_end"] or time.perf_counter()) - t0,
            plateaued=plateaus[k].plateaued(i["steps"]), **checkers[k].fields(), extensions=i["ext"],
            verified=i["verified"] if status != "fitted" else None, grad_evals=i["steps"], policy="fixed",
            cap_steps=int(total_steps)))
    return out
