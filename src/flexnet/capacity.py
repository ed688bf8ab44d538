"""Secondary measures of capacity read off a search's attempts (emc.json's `bits_per_param`, `n50`).

* `bits_per_param`: the random-label information a network stored, counting partly fitted attempts
  (Collins, Sohl-Dickstein & Sussillo 2017): an attempt at n samples with training accuracy p on k
  classes stores n * I(y; y_hat) bits, with I the mutual information of a k-ary symmetric channel of
  accuracy p (errors spread evenly over the other classes): log2 k + p log2 p + (1 - p) log2((1 - p) / (k - 1)),
  0 at chance or below. The measure is the largest over the attempts, divided by the parameter count.
  Fitting n = params random labels on 10 classes is log2 10 = 3.32 bits per parameter.
* `n50`: the size at which half the attempts fit, from a logistic fit of fitted / not fitted on log n
  over every attempt (maximum likelihood by Newton's method), with a 95% Wald interval (delta method
  on log n50). It exists only where the outcomes overlap (some size at or above a failure fitted);
  when every fit lies below every failure the maximum-likelihood slope is infinite and n50 is null.

Pure numpy; no files.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np


def channel_information(p: float, k: int) -> float:
    """I(y; y_hat) in bits per sample of a k-ary symmetric channel with accuracy p (0 at or below chance)."""
    k = int(k)
    if k < 2 or p <= 1.0 / k:
        return 0.0
    p = min(1.0, float(p))
    rest = 0.0 if p >= 1.0 else (1 - p) * math.log2((1 - p) / (k - 1))
    return math.log2(k) + (p * math.log2(p) if p > 0 else 0.0) + rest


def bits_per_param(attempts: Iterable[tuple[int, Optional[float]]], k: int, params: int) -> Optional[float]:
    """max over (n, train accuracy) of n * I(p, k), per parameter; None without a measured accuracy."""
    best = None
    for n, acc in attempts:
        if acc is None or not math.isfinite(acc):
            continue
        bits = int(n) * channel_information(float(acc), k)
        best = bits if best is None else max(best, bits)
    return None if best is None or not params else best / float(params)


def n50(outcomes: Iterable[tuple[int, bool]], iters: int = 100) -> Optional[dict]:
    """{"n50", "ci95": [lo, hi]} from (n, fitted) pairs, or None (no overlap of fits and failures:
    the logistic fit has no finite slope; or a fit that does not converge)."""
    data = [(math.log(int(n)), 1.0 if f else 0.0) for n, f in outcomes if int(n) >= 1]
    fits = [x for x, f in data if f]
    fails = [x for x, f in data if not f]
    if not fits or not fails or max(fits) <= min(fails):
        return None  # no fit above a failure (or one outcome only): (quasi-)separable, no finite slope
    x = np.array([d[0] for d in data])
    y = np.array([d[1] for d in data])
    X = np.column_stack([np.ones_like(x), x - x.mean()])
    beta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        w = np.clip(p * (1 - p), 1e-12, None)
        info = X.T @ (X * w[:, None])
        step = np.linalg.solve(info, X.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    else:
        return None
    p = 1.0 / (1.0 + np.exp(-(X @ beta)))
    cov = np.linalg.inv(X.T @ (X * np.clip(p * (1 - p), 1e-12, None)[:, None]))
    b0, b1 = beta
    if not b1 < 0:  # fits must grow rarer with n
        return None
    theta = -b0 / b1 + x.mean()  # log n50
    grad = np.array([-1.0 / b1, b0 / b1 ** 2])
    se = float(math.sqrt(max(grad @ cov @ grad, 0.0)))
    return {"n50": float(math.exp(theta)), "ci95": [float(math.exp(theta - 1.96 * se)), float(math.exp(theta + 1.96 * se))]}
