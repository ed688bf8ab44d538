"""`search=bisect` (the default): grow n from `start` until an attempt fails, then bisect.

Growth (`growth`): `fit_time` (the default) aims each step at the size where a first attempt's
training time is predicted to reach its safety cap, `double` doubles. Near the interpolation
threshold the time to fit diverges (the jamming transition of Spigler et al. 2019: steps to zero
loss grow without bound as n approaches the threshold); the fraction of its cap each fit used is
modelled as f(n) = a / (N - n), a line in 1/f fitted through the fits near the threshold (see
`aim`), and the next size is where f = 1, kept between n x (1 + resolution) and 2n. Doubling puts
the first failure up to 2x above the EMC, and a failure costs the whole cap there (2,000 epochs of
the larger n once the cap is in epochs); aiming lands it within a step or two of the EMC
(BENCHMARKS.md section 1). Inside a bracket the same aim moves the probe below the midpoint when
the fits predict the cap is reached there. Without two usable fits (the first sizes fit in a few
epochs; journals without `cap_steps`) both rules are plain doubling and bisection. Where the sizes
are probed changes the cost, never the rule that decides the bracket.

Bisects between the last fitted and the first failed size to a relative `resolution`. Retries are
deferred: a size whose first attempt fails is a provisional upper bound, and its retries run only
when it ends up as the bracket's failed size. If a retry fits, the search continues above it: at the
next pending failed size, else by galloping (the EMC is known to be close): at n + step, step =
`regrow_step` x n (default: the resolution), then n + 2 step, n + 4 step, ... while they fit. The
final bracket obeys the paper's rule: `failed` had all its attempts fail.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..errors import require
from .base import SEARCHES, Attempt, Oracle, Progress, SearchResult, _check_common, _Memo

GROWTH = ("fit_time", "fit_time_power", "double")
MIN_FRACTION = 0.05  # a fit that used less of its cap says too little about where the cap is reached


def cap_fraction(a: Attempt) -> Optional[float]:
    """The fraction of its safety cap a fitted attempt trained for (steps / cap_steps), or None."""
    steps, cap = a.record.get("steps"), a.record.get("cap_steps")
    if not a.fitted or not cap or steps is None:
        return None
    return float(steps) / float(cap)


def aim(fits: dict[int, float]) -> Optional[float]:
    """The size at which a fit would use its whole cap. Under the hyperbola f(n) = a / (N - n) the
    reciprocal 1/f = (N - n) / a is a line in n; it is fitted by least squares, weighted by f^2 (a
    fraction's noise is relative, so 1/f's variance grows as 1/f^2), through the two largest fitted
    sizes and every other fit that used at least a tenth of the largest fraction (the small early
    fits follow the warm-up, not the jamming), and the aim is where it reaches 1/f = 1. Through two
    fits it is the hyperbola through both; with more, one slow or fast fit near the threshold no
    longer throws the aim. None with fewer than two fits, when the largest fraction is under
    MIN_FRACTION, or when the line does not fall with n (the fits do not slow down)."""
    top = max(fits.values(), default=0.0)
    last_two = sorted(fits)[-2:]
    pts = np.array([(n, f) for n, f in fits.items() if f > 0 and (n in last_two or f >= top / 10)], dtype=float)
    if top < MIN_FRACTION or len(pts) < 2:
        return None
    slope, icept = np.polynomial.polynomial.polyfit(pts[:, 0], 1.0 / pts[:, 1], 1, w=pts[:, 1])[::-1]
    if not slope < 0:
        return None
    return (1.0 - icept) / slope


def aim_power(fits: dict[int, float]) -> Optional[float]:
    """`growth=fit_time_power`: the same aim under a power law f(n) = a (N - n)^-p, the shape that fits
    pooled time-to-fit data better than the hyperbola (p = 1): log f = log a - p log(N - n) is fitted by
    least squares over a grid of poles N above the largest fitted size, and the aim is where f = 1. The
    same points as `aim`; with fewer than three of them, or no falling fit, it is `aim`'s hyperbola."""
    top = max(fits.values(), default=0.0)
    last_two = sorted(fits)[-2:]
    pts = np.array([(n, f) for n, f in fits.items() if f > 0 and (n in last_two or f >= top / 10)], dtype=float)
    if top < MIN_FRACTION or len(pts) < 3:
        return aim(fits)
    n, logf = pts[:, 0], np.log(pts[:, 1])
    best = None
    for pole in n.max() * np.geomspace(1.0005, 4.0, 400):
        X = np.column_stack([np.ones_like(n), -np.log(pole - n)])
        coef, *_ = np.linalg.lstsq(X, logf, rcond=None)
        sse = float(np.sum((X @ coef - logf) ** 2))
        if coef[1] > 0 and (best is None or sse < best[0]):
            best = (sse, pole, coef)
    if best is None:
        return aim(fits)
    _, pole, (c, p) = best
    return float(pole - math.exp(c / p))


@SEARCHES.register("bisect")
def bisect_search(oracle: Oracle, start: int, pool: int, resolution: float = 0.05, max_attempts: int = 4,
                  regrow_step: Optional[float] = None, batch_attempts: bool = False, min_n: int = 2,
                  growth: str = "fit_time", progress: Optional[Progress] = None,
                  below: Optional[SearchResult] = None, **_: Any) -> SearchResult:
    """`regrow_step`: after a retry rescues the bracket's failed size and no failed size is pending
    above it, growth resumes from that size by galloping with this first step, relative (None: the
    resolution): a failure there closes the bracket at once, with no first-attempt failures far above
    the EMC. `min_n`: the smallest size tried when even small sizes fail (2: batch norm cannot train on
    one sample); if it fails too, the EMC is reported as 0 with that failed size. `growth`: fit_time
    (aim at the size where a fit would use its whole cap) or double (see the module's docstring).
    `below`: the search of the ladder's rung below (search/ladder.py; a smaller cap, same attempts):
    its EMC fitted within a smaller cap, so it fits within this one; the search starts there, with the
    aim fed by the fits below it (replayed within this cap), and probes the failed size below first."""
    _check_common(start, pool, max_attempts)
    require(0 < resolution < 1, "search.resolution", resolution, "must lie in (0, 1), e.g. 0.05")
    regrow_step = resolution if regrow_step is None else regrow_step
    require(isinstance(regrow_step, (int, float)) and regrow_step > 0, "search.regrow_step", regrow_step,
            "must be > 0 (first growth step after a rescued size, relative, e.g. 0.05) or null (the resolution)")
    require(growth in GROWTH, "search.growth", growth, f"must be one of {', '.join(GROWTH)}")
    run = _Memo(oracle, progress, batch_attempts)
    pending: set[int] = set()  # sizes whose first attempt failed, retries not yet run
    fit_fraction: dict[int, float] = {}  # fitted size -> fraction of its cap the (first) fit used

    def fitted(n: int) -> bool:
        """Train n's first attempt (or replay it); a fit's cap fraction feeds the aim."""
        res = run(n, 0)
        f = cap_fraction(res)
        if f is not None:
            fit_fraction.setdefault(n, f)
        return res.fitted

    def aimed(lo: int, upper: int) -> int:
        """The next size above fitted lo: `upper` (doubling, or the bracket's midpoint), or with
        growth=fit_time the aim, kept within [lo (1 + resolution), upper]."""
        t = {"fit_time": aim, "fit_time_power": aim_power}.get(growth, lambda _: None)(fit_fraction)
        if t is None:
            return upper
        return int(min(upper, max(math.ceil(lo * (1 + resolution)), round(t))))

    def converged(lo: int, hi: int) -> bool:
        return hi - lo <= max(1.0, resolution * hi) or (lo + hi) // 2 < min_n

    def grow_from(n: int, step: Optional[int] = None) -> Optional[int]:
        """Grow n (capped at the pool) until a first attempt fails; returns it or None. Doubling, or
        with `step` galloping: the distance above the starting size doubles after each fit."""
        while True:
            if fitted(n):
                run.lo = max(run.lo, n)
                if n >= pool:
                    return None
                if step is None:
                    nxt = aimed(n, 2 * n)
                else:
                    nxt, step = n + step, 2 * step
                n = min(max(n + 1, nxt), pool)
            else:
                pending.add(n)
                return n

    def continue_above(below: SearchResult) -> Optional[int]:
        """The rung below fitted below.emc: start there, probe its failed size first (or grow on)."""
        for n0 in sorted({a.n for a in below.attempts if a.fitted and a.attempt == 0}):
            fitted(n0)  # read off within this cap (journalled): the aim's fit fractions at this cap
        at_emc = next(a.attempt for a in below.attempts if a.fitted and a.n == below.emc)
        require(run(below.emc, at_emc).fitted, "train.caps", None,
                f"a fit at n={below.emc} within a smaller cap did not fit within a larger one "
                "(the attempt's trajectory depends on its cap: train.policy must be converge)")
        run.lo = below.emc
        if below.failed is None:  # the whole pool fitted below
            return None
        return grow_from(below.failed)

    require(isinstance(min_n, int) and 1 <= min_n <= start, "search.min_n", min_n,
            f"must be an integer in [1, search.start={start}]")
    if below is not None and below.emc >= 1 and below.fitted:
        run.hi = continue_above(below)
    else:
        run.hi = grow_from(min(start, pool))
    while run.hi is not None:
        while not converged(run.lo, run.hi):
            mid = aimed(run.lo, (run.lo + run.hi) // 2)
            if fitted(mid):
                run.lo = mid
            else:
                pending.add(mid)
                run.hi = mid
        # the bracket's failed size: run its deferred retries
        hi = run.hi
        pending.discard(hi)
        if not run.any_fits(hi, max_attempts, first=1):
            break  # confirmed: every attempt at hi failed
        run.lo = hi
        above = sorted(m for m in pending if m > hi)
        if above:
            run.hi = above[0]
        else:
            step = max(1, int(regrow_step * hi))  # floor: hi + step is within the resolution of hi
            run.hi = None if hi >= pool else grow_from(min(hi + step, pool), step)
    lower_bound = run.hi is None
    return SearchResult(emc=run.lo, fitted=run.lo or None, failed=run.hi, attempts=run.order, search="bisect",
                        lower_bound=lower_bound)
