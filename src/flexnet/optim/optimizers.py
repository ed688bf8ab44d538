"""Optimizers by config name: ``fn(params, lr, weight_decay, **knobs) -> torch.optim.Optimizer``.

`gd` is SGD on the whole subset (its config sets batch_size: null). `adam` and `adamw` are
torch's (weight decay coupled as an L2 term in Adam, decoupled in AdamW); `shampoo` is
pytorch-optimizer's Shampoo, or its ScalableShampoo with ``variant: scalable``.
`params` may be a list of tensors or of param-group dicts (SAM passes its groups).

SGD, Adam and AdamW use torch's fused kernels for float parameters on a CPU or CUDA device
(`fused=True`: one kernel for the whole update instead of a few small ops per tensor; a bare SGD
loop on the benchmark MLP runs 8% faster with it on this 2-core CPU, BENCHMARKS.md section 2),
else the per-tensor implementation. The update is the same; the floating-point rounding is not,
so attempts trained before this (2026-12-03) are not reproduced bit for bit.
"""
from __future__ import annotations

import torch

from ..errors import require
from .base import OPTIMIZERS

FUSED_DEVICES = ("cpu", "cuda")


def _betas(betas) -> tuple[float, float]:
    ok = isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
        isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas)
    require(ok, "optimizer.betas", betas, "must be two numbers in [0, 1), e.g. [0.9, 0.999]")
    return float(betas[0]), float(betas[1])


def _fused(cls: type, params, **kw) -> torch.optim.Optimizer:
    """`cls(params, fused=True, **kw)` when every parameter is a float tensor on a CPU or CUDA device
    (where torch has the fused kernel), else torch's default implementation."""
    params = list(params)
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    if tensors and all(t.is_floating_point() and t.device.type in FUSED_DEVICES for t in tensors):
        kw["fused"] = True
    return cls(params, **kw)


def _eps(eps) -> float:
    require(isinstance(eps, (int, float)) and eps > 0, "optimizer.eps", eps, "must be a positive number")
    return float(eps)


@OPTIMIZERS.register("sgd")
def sgd(params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = False):
    require(isinstance(momentum, (int, float)) and 0.0 <= float(momentum) < 1.0, "optimizer.momentum",
            momentum, "must lie in [0, 1)")
    return _fused(torch.optim.SGD, params, lr=lr, momentum=float(momentum),
                  nesterov=bool(nesterov) and momentum > 0, weight_decay=weight_decay)


@OPTIMIZERS.register("gd")
def gd(params, lr: float, weight_decay: float = 0.0, momentum: float = 0.0, nesterov: bool = False):
    """Full-batch gradient descent (the procedure's batch size is the whole subset)."""
    return sgd(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov)


@OPTIMIZERS.register("adam")
def adam(params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8,
         amsgrad: bool = False):
    """torch.optim.Adam; weight decay is coupled (added to the gradient as an L2 term)."""
    return _fused(torch.optim.Adam, params, lr=lr, betas=_betas(betas), eps=_eps(eps), weight_decay=weight_decay,
                  amsgrad=bool(amsgrad))


@OPTIMIZERS.register("adamw")
def adamw(params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8,
          amsgrad: bool = False):
    """torch.optim.AdamW; weight decay is decoupled (applied to the weights, scaled by lr)."""
    return _fused(torch.optim.AdamW, params, lr=lr, betas=_betas(betas), eps=_eps(eps), weight_decay=weight_decay,
                  amsgrad=bool(amsgrad))


SHAMPOO_VARIANTS = ("shampoo", "scalable")


@OPTIMIZERS.register("shampoo")
def shampoo(params, lr: float, weight_decay: float = 0.0, variant: str = "shampoo", momentum: float = 0.0,
            preconditioning_compute_steps: int = 1, matrix_eps: float = 1e-6, betas=(0.9, 0.999),
            start_preconditioning_step: int = 25, block_size: int = 512):
    """pytorch-optimizer's Shampoo (`variant: shampoo`) or ScalableShampoo (`variant: scalable`).

    Weight decay is coupled (as for SGD/Adam). `momentum` applies to Shampoo; `betas`,
    `start_preconditioning_step` and `block_size` to ScalableShampoo.
    """
    from pytorch_optimizer import ScalableShampoo, Shampoo

    require(variant in SHAMPOO_VARIANTS, "optimizer.variant", variant, f"allowed: {', '.join(SHAMPOO_VARIANTS)}")
    require(isinstance(preconditioning_compute_steps, int) and preconditioning_compute_steps >= 1,
            "optimizer.preconditioning_compute_steps", preconditioning_compute_steps, "must be an integer >= 1")
    require(isinstance(matrix_eps, (int, float)) and matrix_eps > 0, "optimizer.matrix_eps", matrix_eps,
            "must be a positive number")
    if variant == "shampoo":
        require(isinstance(momentum, (int, float)) and 0.0 <= momentum < 1.0, "optimizer.momentum", momentum,
                "must lie in [0, 1)")
        return Shampoo(params, lr=lr, momentum=float(momentum), weight_decay=weight_decay, weight_decouple=False,
                       preconditioning_compute_steps=int(preconditioning_compute_steps),
                       matrix_eps=float(matrix_eps))
    require(isinstance(start_preconditioning_step, int) and start_preconditioning_step >= 0,
            "optimizer.start_preconditioning_step", start_preconditioning_step, "must be an integer >= 0")
    require(isinstance(block_size, int) and block_size >= 1, "optimizer.block_size", block_size,
            "must be a positive integer")
    return ScalableShampoo(params, lr=lr, betas=_betas(betas), weight_decay=weight_decay,
                           decoupled_weight_decay=False, start_preconditioning_step=int(start_preconditioning_step),
                           preconditioning_compute_steps=int(preconditioning_compute_steps),
                           block_size=int(block_size), matrix_eps=float(matrix_eps))
