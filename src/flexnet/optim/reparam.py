"""Reparameterisations: how the trained numbers map to the model's weights.

A reparameterisation is ``fn(model, generator, **knobs) -> (model, info)``; ``info["params"]``
(a dict) is merged into emc.json's ``params`` by the job.

* `none`: the model as built.
* `subspace`: train theta = theta0 + P z in a random d-dimensional subspace (Li et al. 2018,
  intrinsic dimension; Lotfi et al. 2022). theta0 is the model's initialisation, P (D x d) is
  fixed and drawn from the generator passed in: a dense Gaussian with unit-norm columns when it
  fits `max_dense_mb`, else a Fastfood transform (Le et al. 2013; the structured projection Li et
  al. use for large models) that needs O(D) memory. `identity` (d must equal D) makes theta = theta0
  + z, i.e. plain training. Only z (d numbers) is trainable; the model's parameter count is d.
* `quant8`: every weight tensor is used in 8 bits: the forward pass sees
  ``round(w / s).clamp(-127, 127) * s`` with one scale s = max|w| / 127 per tensor, so a tensor
  takes at most 255 distinct values; gradients pass straight through the rounding (STE) to an fp32
  latent copy that the optimizer updates (standard quantisation-aware training). The parameter
  budget is counted in bits: a quant8 model with 4n weights costs as much as an fp32 model with n,
  so the job solves the architecture for ``BUDGET_FACTOR`` x scaling.params weights.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize

from ..errors import require
from .base import REPARAMS


@REPARAMS.register("none")
def none(model: nn.Module, g: torch.Generator) -> tuple[nn.Module, dict]:
    return model, {}


# --------------------------------------------------------------------------- subspace

def fwht(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised fast Walsh-Hadamard transform along the last dim (length a power of 2); differentiable."""
    n = x.shape[-1]
    lead = x.shape[:-1]
    h = 1
    while h < n:
        x = x.reshape(*lead, n // (2 * h), 2, h)
        a, b = x[..., 0, :], x[..., 1, :]
        x = torch.stack((a + b, a - b), dim=-2)
        h *= 2
    return x.reshape(*lead, n)


class DenseProjection(nn.Module):
    """P: D x d Gaussian with unit-norm columns."""

    kind = "dense"

    def __init__(self, D: int, d: int, g: torch.Generator):
        super().__init__()
        P = torch.randn(D, d, generator=g)
        P /= P.norm(dim=0, keepdim=True)
        self.register_buffer("P", P)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.P @ z


class IdentityProjection(nn.Module):
    kind = "identity"

    def __init__(self, D: int, d: int, g: Optional[torch.Generator] = None):
        super().__init__()
        require(d == D, "reparam.d", d, f"must equal the parameter count {D} for projection=identity")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z


class FastfoodProjection(nn.Module):
    """P z = first D entries of (1/L) H G Pi H B [z; 0] with L = 2^ceil(log2 D), H the Hadamard matrix,
    B random signs, Pi a random permutation, G a Gaussian diagonal rescaled to norm sqrt(L): an
    approximately orthogonal map with unit-norm-ish columns, O(D) memory and O(D log D) time."""

    kind = "fastfood"

    def __init__(self, D: int, d: int, g: torch.Generator):
        super().__init__()
        L = 1 << max(0, math.ceil(math.log2(D)))
        self.D, self.d, self.L = D, d, L
        self.register_buffer("B", torch.randint(0, 2, (L,), generator=g).float() * 2 - 1)
        self.register_buffer("Pi", torch.randperm(L, generator=g))
        G = torch.randn(L, generator=g)
        self.register_buffer("G", G * math.sqrt(L) / G.norm())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        v = torch.zeros(self.L, dtype=z.dtype, device=z.device)
        v = torch.cat((z, v[self.d:]))
        v = fwht(self.B * v)
        v = fwht(self.G * v[self.Pi])
        return v[: self.D] / self.L


PROJECTIONS = {"dense": DenseProjection, "fastfood": FastfoodProjection, "identity": IdentityProjection}


class Subspace(nn.Module):
    """Wraps a model: its parameters become fixed buffers theta0; the only parameter is z (d numbers)."""

    def __init__(self, base: nn.Module, d: int, projection: nn.Module):
        super().__init__()
        self.names = [n for n, _ in base.named_parameters()]
        self.shapes = [p.shape for _, p in base.named_parameters()]
        self.sizes = [p.numel() for _, p in base.named_parameters()]
        theta0 = torch.cat([p.detach().reshape(-1) for _, p in base.named_parameters()])
        # turn the base model's parameters into buffers (so .to(), state_dict, train/eval still work)
        for name in self.names:
            mod_name, _, leaf = name.rpartition(".")
            mod = base.get_submodule(mod_name) if mod_name else base
            t = getattr(mod, leaf).detach().clone()
            del mod._parameters[leaf]
            mod.register_buffer(leaf, t)
        self.base = base
        self.register_buffer("theta0", theta0)
        self.projection = projection
        self.z = nn.Parameter(torch.zeros(d))

    def theta(self) -> torch.Tensor:
        return self.theta0 + self.projection(self.z)

    def weights(self) -> dict[str, torch.Tensor]:
        chunks = torch.split(self.theta(), self.sizes)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, self.weights(), (x,))


@REPARAMS.register("subspace")
def subspace(model: nn.Module, g: torch.Generator, d: int = 500, projection: str = "auto",
             max_dense_mb: float = 256.0) -> tuple[nn.Module, dict]:
    """theta = theta0 + P z with z in R^d; `projection`: auto (dense if D*d floats fit `max_dense_mb`,
    else fastfood) | dense | fastfood | identity (d = D: plain training, for checks)."""
    D = sum(p.numel() for p in model.parameters() if p.requires_grad)
    require(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= D, "reparam.d", d,
            f"must be an integer in [1, {D}] (the model's parameter count)")
    allowed = ("auto", *PROJECTIONS)
    require(projection in allowed, "reparam.projection", projection, f"allowed: {', '.join(allowed)}")
    require(isinstance(max_dense_mb, (int, float)) and max_dense_mb > 0, "reparam.max_dense_mb", max_dense_mb,
            "must be a positive number of MiB")
    if projection == "auto":
        projection = "dense" if D * d * 4 <= max_dense_mb * 2**20 else "fastfood"
    proj = PROJECTIONS[projection](D, d, g)
    wrapped = Subspace(model, d, proj)
    return wrapped, {"params": {"actual": d, "trainable": d, "full": D, "projection": projection}}


# --------------------------------------------------------------------------- quant8

QUANT_BITS = 8
QUANT_LEVELS = 2 ** (QUANT_BITS - 1) - 1  # symmetric grid -127..127: 255 values


class Quantize8(nn.Module):
    """Parametrization: w -> round(w / s).clamp(-127, 127) * s, s = max|w| / 127, straight-through gradient."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = (w.detach().abs().amax() / QUANT_LEVELS).clamp_min(1e-12)
        q = torch.round(w.detach() / scale).clamp(-QUANT_LEVELS, QUANT_LEVELS) * scale
        return w + (q - w).detach()


def quantized_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The 8-bit weights the model uses (name -> tensor), for inspection and tests."""
    out = {}
    for mod_name, mod in model.named_modules():
        if parametrize.is_parametrized(mod):
            for leaf in mod.parametrizations:
                out[f"{mod_name}.{leaf}" if mod_name else leaf] = getattr(mod, leaf).detach()
    return out


@REPARAMS.register("quant8")
def quant8(model: nn.Module, g: torch.Generator, budget_in_bits: bool = True) -> tuple[nn.Module, dict]:
    """8-bit weights (every parameter tensor) with a straight-through estimator."""
    for mod in list(model.modules()):
        for leaf, p in list(mod.named_parameters(recurse=False)):
            parametrize.register_parametrization(mod, leaf, Quantize8())
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bits = QUANT_BITS * n
    info = {"params": {"weights": n, "bits": bits, "fp32_equivalent": bits / 32}}
    if budget_in_bits:
        info["params"]["actual"] = bits / 32
    return model, info


quant8.budget_factor = lambda cfg: 32 // QUANT_BITS if cfg.get("budget_in_bits", True) else 1  # type: ignore[attr-defined]


def budget_factor(reparam_cfg: dict) -> float:
    """How many model parameters one unit of scaling.params buys under this reparameterisation."""
    cfg = dict(reparam_cfg)
    fn = REPARAMS.get(cfg.pop("name"))
    f = getattr(fn, "budget_factor", None)
    return float(f(cfg)) if f is not None else 1.0
