"""`search=bisect` (the default): double n from `start` until an attempt fails, then bisect.

Bisects between the last fitted and the first failed size to a relative `resolution`. Retries are
deferred: a size whose first attempt fails is a provisional upper bound, and its retries run only
when it ends up as the bracket's failed size. If a retry fits, the search continues above it: at the
next pending failed size, else by galloping (the EMC is known to be close): at n + step, step =
`regrow_step` x n (default: the resolution), then n + 2 step, n + 4 step, ... while they fit. The
final bracket obeys the paper's rule: `failed` had all its attempts fail.
"""
from __future__ import annotations

from typing import Any, Optional

from ..errors import require
from .base import SEARCHES, Oracle, Progress, SearchResult, _check_common, _Memo


@SEARCHES.register("bisect")
def bisect_search(oracle: Oracle, start: int, pool: int, resolution: float = 0.05, max_attempts: int = 4,
                  regrow_step: Optional[float] = None, batch_attempts: bool = False, min_n: int = 2,
                  progress: Optional[Progress] = None, **_: Any) -> SearchResult:
    """`regrow_step`: after a retry rescues the bracket's failed size and no failed size is pending
    above it, growth resumes from that size by galloping with this first step, relative (None: the
    resolution): a failure there closes the bracket at once, with no first-attempt failures far above
    the EMC. `min_n`: the smallest size tried when even small sizes fail (2: batch norm cannot train on
    one sample); if it fails too, the EMC is reported as 0 with that failed size."""
    _check_common(start, pool, max_attempts)
    require(0 < resolution < 1, "search.resolution", resolution, "must lie in (0, 1), e.g. 0.05")
    regrow_step = resolution if regrow_step is None else regrow_step
    require(isinstance(regrow_step, (int, float)) and regrow_step > 0, "search.regrow_step", regrow_step,
            "must be > 0 (first growth step after a rescued size, relative, e.g. 0.05) or null (the resolution)")
    run = _Memo(oracle, progress, batch_attempts)
    pending: set[int] = set()  # sizes whose first attempt failed, retries not yet run

    def converged(lo: int, hi: int) -> bool:
        return hi - lo <= max(1.0, resolution * hi) or (lo + hi) // 2 < min_n

    def grow_from(n: int, step: Optional[int] = None) -> Optional[int]:
        """Grow n (capped at the pool) until a first attempt fails; returns it or None. Doubling, or
        with `step` galloping: the distance above the starting size doubles after each fit."""
        while True:
            if run(n, 0).fitted:
                run.lo = max(run.lo, n)
                if n >= pool:
                    return None
                if step is None:
                    nxt = 2 * n
                else:
                    nxt, step = n + step, 2 * step
                n = min(max(n + 1, nxt), pool)
            else:
                pending.add(n)
                return n

    require(isinstance(min_n, int) and 1 <= min_n <= start, "search.min_n", min_n,
            f"must be an integer in [1, search.start={start}]")
    run.hi = grow_from(min(start, pool))
    while run.hi is not None:
        while not converged(run.lo, run.hi):
            mid = (run.lo + run.hi) // 2
            if run(mid, 0).fitted:
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
