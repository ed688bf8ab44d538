"""Zhang et al. (ICLR 2017), Theorem 1: a two-layer ReLU network with 2n + d weights that
fits any labels of any n distinct points in d dimensions exactly.

The network is ``c(x) = sum_j w_j relu(<a, x> - b_j)`` with a in R^d, b and w in R^n:
d + n + n = 2n + d weights. The construction (their Lemma 1 / Theorem 1): draw a random
direction a, so that the projections t_i = <a, x_i> of distinct points are distinct
(with probability 1), sort them, interleave the biases, b_1 < t_1 < b_2 < t_2 < ... < b_n < t_n,
and solve the lower-triangular system A w = y with A_ij = relu(t_i - b_j) (positive diagonal,
so the solution exists and is unique).

The model is solved, not trained: flexnet's fit oracle calls ``fit_closed_form(x, y)``
instead of training (see oracle.py) and then evaluates accuracy as for any model.

Classes. ``output=index`` (default; the theorem's count 2n + d) regresses the class index:
the scalar c(x) is decoded by the fixed, parameter-free logits ``-(c(x) - j)^2`` for j = 0..k-1,
so argmax picks the class index nearest c(x), and an exact fit c(x_i) = y_i is 100 % training
accuracy. ``output=onehot`` regresses the one-hot vector with one w per class sharing a and b:
d + n + k n weights, logits = c(x) in R^k.

Capacity: ``n_points`` hidden units (knob; with ``scaling=width`` it is solved from
``scaling.params``: n = (p - d) / 2 for output=index). Given m <= n_points points the
construction uses m units and zeroes the others; given m > n_points points it interpolates
n_points of them (evenly spaced along the projection) and predicts the others with the
resulting piecewise-linear function, which in general misses them: the construction's
guarantee stops at n_points.

Precision: a, b, w are float64 and the forward pass runs in float64 (outputs are cast to the
input dtype); the triangular system is solved by its O(n) recurrence, not a dense solve, and c(x)
is evaluated from the sorted biases in O(log n) per point.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import require
from .base import ARCHS, ArchSpec

OUTPUTS = ("index", "onehot")


class ZhangConstruction(nn.Module):
    def __init__(self, input_shape, num_classes: int, n_points: int = 1000, output: str = "index"):
        super().__init__()
        require(output in OUTPUTS, "arch.output", output, f"allowed: {', '.join(OUTPUTS)}")
        require(isinstance(n_points, int) and n_points >= 1, "arch.n_points", n_points,
                "must be a positive integer (the number of points the construction can fit)")
        self.d = int(math.prod(input_shape))
        self.num_classes = int(num_classes)
        self.n_points = int(n_points)
        self.output = output
        outs = 1 if output == "index" else self.num_classes
        # the random direction is drawn at construction (under the oracle's seeded init)
        self.a = nn.Parameter(torch.randn(self.d, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros(self.n_points, dtype=torch.float64))
        self.w = nn.Parameter(torch.zeros(self.n_points, outs, dtype=torch.float64))
        self.fitted_points = 0  # how many points the last fit interpolated exactly (by construction)

    def extra_repr(self) -> str:
        return f"d={self.d}, n_points={self.n_points}, output={self.output}, classes={self.num_classes}"

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).to(torch.float64) @ self.a

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """c(x) = sum_j w_j relu(<a,x> - b_j), N x outs, float64, in O(N log n) without an N x n
        matrix: with the biases sorted, S_k = w_1 + ... + w_k is the slope after b_k and
        V_k = c(b_k) accumulates S_{k-1} (b_k - b_{k-1}); then c(t) = V_k + S_k (t - b_k) for the
        last b_k < t (0 before b_1). Summing local increments avoids the cancellation of
        t * sum w_j - sum w_j b_j when the slopes are large."""
        t = self.project(x)
        b, order = torch.sort(self.b)
        slope = torch.cumsum(self.w[order], 0)
        v = torch.zeros_like(slope)
        v[1:] = torch.cumsum(slope[:-1] * (b[1:] - b[:-1])[:, None], 0)
        k = torch.searchsorted(b, t.contiguous(), right=False) - 1  # last b_k < t, -1 if none
        kc = k.clamp_min(0)
        c = v[kc] + slope[kc] * (t - b[kc])[:, None]
        return torch.where((k >= 0)[:, None], c, torch.zeros_like(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.raw(x)
        if self.output == "index":
            j = torch.arange(self.num_classes, dtype=c.dtype, device=c.device)
            logits = -(c - j[None, :]) ** 2
        else:
            logits = c
        return logits.to(x.dtype if x.is_floating_point() else torch.float32)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        if self.output == "index":
            return y.to(torch.float64).reshape(-1, 1)
        return nn.functional.one_hot(y.long(), self.num_classes).to(torch.float64)

    @torch.no_grad()
    def fit_closed_form(self, x: torch.Tensor, y: torch.Tensor) -> "ZhangConstruction":
        """Set b and w so that c(x_i) equals the targets of y (class indices, or one-hot).

        Real-valued targets (any labels, the theorem's setting) are taken as given when y is a
        float tensor with output=index.
        """
        require(x.shape[0] == y.shape[0] and x.shape[0] >= 1, "fit_closed_form", tuple(x.shape),
                "needs as many labels as points, at least one")
        dev = self.a.device
        t = self.project(x.to(dev))
        yt = (y.to(dev, torch.float64).reshape(-1, 1) if y.is_floating_point() and self.output == "index"
              else self.targets(y.to(dev)))
        t_sorted, order = torch.sort(t, stable=True)
        y_sorted = yt[order]
        # equal projections: keep the first (distinct points give distinct projections with prob. 1)
        keep = torch.ones_like(t_sorted, dtype=torch.bool)
        keep[1:] = t_sorted[1:] > t_sorted[:-1]
        t_u, y_u = t_sorted[keep], y_sorted[keep]
        m = t_u.shape[0]
        if m > self.n_points:  # beyond capacity: interpolate n_points of them, evenly spaced
            sel = torch.linspace(0, m - 1, self.n_points, device=dev).round().long().unique()
            t_u, y_u = t_u[sel], y_u[sel]
            m = t_u.shape[0]
        w, b = _interpolate(t_u, y_u)
        self.b.fill_(float(t_u[-1]) + 1.0)  # unused units: bias beyond every point, zero weight
        self.w.zero_()
        self.b[:m] = b
        self.w[:m] = w
        self.fitted_points = int(m)
        return self


def _interpolate(t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Biases between sorted distinct t and weights solving A w = y, A_ij = relu(t_i - b_j).

    With b_1 = t_1 - g/2 (g: the first gap, or 1) and b_i = (t_{i-1} + t_i)/2, the function is
    piecewise linear with slope S_i = w_1 + ... + w_i after b_i, and A w = y reads
    S_1 = 2 y_1 / g_1,  S_i = 2 (y_i - y_{i-1}) / g_i - S_{i-1}  (g_i = t_i - t_{i-1}),
    an alternating recurrence solved exactly by a cumulative sum.
    """
    m = t.shape[0]
    gaps = t[1:] - t[:-1]
    g1 = gaps[0] if m > 1 else torch.ones((), dtype=t.dtype, device=t.device)
    b = torch.empty_like(t)
    b[0] = t[0] - g1 / 2
    b[1:] = (t[:-1] + t[1:]) / 2
    half = torch.empty_like(t)
    half[0] = t[0] - b[0]
    half[1:] = gaps / 2
    dy = torch.empty_like(y)
    dy[0] = y[0]
    dy[1:] = y[1:] - y[:-1]
    # y_i - y_{i-1} = S_{i-1} * half_i + S_i * half_i  (i >= 2);  y_1 = S_1 * half_1
    r = dy / half[:, None]  # r_1 = S_1, r_i = S_{i-1} + S_i
    sign = torch.ones(m, dtype=t.dtype, device=t.device)
    sign[1::2] = -1.0
    # U_i = (-1)^(i-1) S_i  (0-based: sign_i S_i) satisfies U_i = U_{i-1} + sign_i r_i
    u = torch.cumsum(sign[:, None] * r, 0)
    slope = sign[:, None] * u
    w = torch.empty_like(slope)
    w[0] = slope[0]
    w[1:] = slope[1:] - slope[:-1]
    return w, b


def zhang_construction(input_shape, num_classes: int, n_points: int = 1000, output: str = "index") -> nn.Module:
    return ZhangConstruction(input_shape, num_classes, n_points=n_points, output=output)


ARCHS.add("zhang_construction", ArchSpec(
    build=zhang_construction,
    # the hidden width is the capacity: p = 2n + d (index) or d + (k + 1) n (onehot)
    scalers={"width": lambda k, s: {**k, "n_points": max(1, int(round(s)))}},
    s_range={"width": (1, 2**26)},
    describe={"width": "hidden units = points the construction fits"},
))
