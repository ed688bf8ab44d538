"""The minimum-norm kernel interpolant of Zhang et al. (ICLR 2017), section 5.

For a Gaussian (RBF) kernel k(x, x') = exp(-||x - x'||^2 / (2 sigma^2)) and training points
x_1..x_n with one-hot targets Y (n x k), solve K alpha = Y exactly (K_ij = k(x_i, x_j)); the
predictor f(x) = sum_i k(x, x_i) alpha_i is the RKHS interpolant of minimum norm, and the
class is argmax f(x). K of distinct points is positive definite, so the solve is a Cholesky
factorisation in float64; a K that is numerically singular (e.g. duplicated points) falls back
to the Hermitian pseudo-inverse (still the minimum-norm solution, which interpolates whenever
duplicates agree on their label).

Solved, not trained: flexnet's fit oracle calls ``fit_closed_form(x, y)`` (oracle.py).
Capacity by construction: ``n_points`` centres. The parameters counted are the coefficients
alpha, n_points x k (the stored centres are data, kept as a buffer); with ``scaling=width``,
n_points = params / k. Given m <= n_points points all of them are centres; given more, the
first n_points (the subset is already a random draw) are interpolated and the others only
predicted.

Bandwidth: ``bandwidth: median`` (default) sets sigma^2 to the median squared distance
between training points (from at most 2000 of them); a number sets sigma itself.
Prediction and the kernel matrix are computed in row chunks of ``chunk`` points.
"""
from __future__ import annotations

import math
from typing import Union

import torch
from torch import nn

from ..errors import require
from .base import ARCHS, ArchSpec


def _sqdist(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1, keepdim=True) + b_sq[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


class KernelMinNorm(nn.Module):
    def __init__(self, input_shape, num_classes: int, n_points: int = 1000,
                 bandwidth: Union[str, float] = "median", ridge: float = 0.0, chunk: int = 4096):
        super().__init__()
        require(isinstance(n_points, int) and n_points >= 1, "arch.n_points", n_points,
                "must be a positive integer (the number of points interpolated)")
        require(bandwidth == "median" or (isinstance(bandwidth, (int, float)) and bandwidth > 0),
                "arch.bandwidth", bandwidth, "must be 'median' or a positive number (sigma)")
        require(isinstance(ridge, (int, float)) and ridge >= 0, "arch.ridge", ridge,
                "must be >= 0 (0: exact interpolation, Zhang et al.)")
        require(isinstance(chunk, int) and chunk >= 1, "arch.chunk", chunk, "must be a positive integer")
        self.d = int(math.prod(input_shape))
        self.num_classes = int(num_classes)
        self.n_points = int(n_points)
        self.bandwidth, self.ridge, self.chunk = bandwidth, float(ridge), int(chunk)
        self.alpha = nn.Parameter(torch.zeros(self.n_points, self.num_classes, dtype=torch.float64))
        self.register_buffer("centers", torch.zeros(self.n_points, self.d, dtype=torch.float64))
        self.register_buffer("gamma", torch.ones((), dtype=torch.float64))  # 1 / (2 sigma^2)
        self.solver = ""  # how the last fit solved K alpha = Y (cholesky | pinv)

    def extra_repr(self) -> str:
        return f"d={self.d}, n_points={self.n_points}, classes={self.num_classes}, bandwidth={self.bandwidth}"

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        """k(x, centres), N x n_points, float64 (one chunk; callers chunk)."""
        c = self.centers
        return torch.exp(-self.gamma * _sqdist(x, c, (c * c).sum(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x64 = x.flatten(1).to(torch.float64)
        c = self.centers
        c_sq = (c * c).sum(1)
        out = [torch.exp(-self.gamma * _sqdist(x64[s:s + self.chunk], c, c_sq)) @ self.alpha
               for s in range(0, x64.shape[0], self.chunk)]
        logits = torch.cat(out) if out else x64.new_zeros(0, self.num_classes)
        return logits.to(x.dtype if x.is_floating_point() else torch.float32)

    @torch.no_grad()
    def fit_closed_form(self, x: torch.Tensor, y: torch.Tensor) -> "KernelMinNorm":
        require(x.shape[0] == y.shape[0] and x.shape[0] >= 1, "fit_closed_form", tuple(x.shape),
                "needs as many labels as points, at least one")
        dev = self.alpha.device
        xc = x[: self.n_points].flatten(1).to(dev, torch.float64)
        yc = nn.functional.one_hot(y[: self.n_points].to(dev).long(), self.num_classes).to(torch.float64)
        m = xc.shape[0]
        if self.bandwidth == "median":
            sub = xc[: 2000]
            d2 = _sqdist(sub, sub, (sub * sub).sum(1))
            off = d2[~torch.eye(sub.shape[0], dtype=torch.bool, device=dev)]
            med = float(off.median()) if off.numel() else 1.0
            sigma2 = med if med > 0 else 1.0
            self.gamma.fill_(1.0 / (2.0 * sigma2))
        else:
            self.gamma.fill_(1.0 / (2.0 * float(self.bandwidth) ** 2))
        self.centers.zero_()
        self.centers[:m] = xc
        c_sq = (xc * xc).sum(1)
        K = torch.cat([torch.exp(-self.gamma * _sqdist(xc[s:s + self.chunk], xc, c_sq))
                       for s in range(0, m, self.chunk)])
        K = (K + K.T) / 2
        if self.ridge > 0:
            K.diagonal().add_(self.ridge)
        L, info = torch.linalg.cholesky_ex(K)
        if int(info) == 0:
            alpha = torch.cholesky_solve(yc, L)
            self.solver = "cholesky"
        else:  # numerically singular: minimum-norm least-squares solution
            alpha = torch.linalg.pinv(K, hermitian=True) @ yc
            self.solver = "pinv"
        self.alpha.zero_()
        self.alpha[:m] = alpha
        return self


def kernel_minnorm(input_shape, num_classes: int, n_points: int = 1000, bandwidth: Union[str, float] = "median",
                   ridge: float = 0.0, chunk: int = 4096) -> nn.Module:
    return KernelMinNorm(input_shape, num_classes, n_points=n_points, bandwidth=bandwidth, ridge=ridge, chunk=chunk)


ARCHS.add("kernel_minnorm", ArchSpec(
    build=kernel_minnorm,
    scalers={"width": lambda k, s: {**k, "n_points": max(1, int(round(s)))}},
    s_range={"width": (1, 2**22)},
    describe={"width": "kernel centres = points interpolated"},
))
