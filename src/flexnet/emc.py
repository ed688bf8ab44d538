"""Search strategies for the EMC over a fit oracle.   Pure: no training, no I/O.

An oracle answers ``oracle(n, attempt) -> Attempt``: train attempt number
`attempt` (0, 1, 2, ...) at training-set size n with its own subset and init,
and say whether it fitted. The protocol (Shwartz-Ziv, Goldblum et al. 2024):
a size is fittable if any of `max_attempts` attempts (1 + 3 retries) fits;
EMC is the largest fittable size.

Strategies:
  * `bisect` (default): double n from `start` until an attempt fails, then
    bisect between the last fitted and the first failed size to a relative
    `resolution`. Retries are deferred: a size whose first attempt fails is a
    provisional upper bound, and its retries run only when it ends up as the
    bracket's failed size. If a retry fits, the search continues above it: at
    the next pending failed size, else by galloping (the EMC is known to be
    close): at n + step, step = `regrow_step` x n (default: the resolution),
    then n + 2 step, n + 4 step, ... while they fit. The final bracket obeys the paper's rule:
    `failed` had all its attempts fail.
  * `linear`: the paper's protocol: grow n by `step` from `start` until a size
    fails all its attempts.
  * `fixed`: one size only (train/test accuracy at n, e.g. double descent).

Every (n, attempt) pair is run at most once (memoised).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .errors import require
from .registry import Registry


@dataclass
class Attempt:
    n: int
    attempt: int
    fitted: bool
    cost: float = 0.0          # training cost in sample-epochs
    status: str = ""           # fitted | failed | diverged | unverified
    record: dict[str, Any] = field(default_factory=dict)


Oracle = Callable[[int, int], Attempt]
Progress = Callable[[Attempt, int, Optional[int]], None]


@dataclass
class SearchResult:
    emc: int                       # largest n fitted (0 if none)
    fitted: Optional[int]          # bracket: largest n fitted
    failed: Optional[int]          # bracket: smallest n failed (all attempts); None: never failed
    attempts: list[Attempt]
    search: str
    lower_bound: bool = False      # the whole pool fitted: EMC >= pool size, not measured

    @property
    def fits(self) -> int:
        return len(self.attempts)

    @property
    def cost(self) -> float:
        return float(sum(a.cost for a in self.attempts))

    @property
    def unverified(self) -> int:
        return sum(1 for a in self.attempts if a.status == "unverified")


class _Memo:
    def __init__(self, oracle: Oracle, progress: Optional[Progress], batch: bool = False):
        self.oracle, self.progress = oracle, progress
        # batch: an oracle with `batch(n, attempts) -> [Attempt]` trains a size's retries together
        self.batch = bool(batch) and hasattr(oracle, "batch")
        self.done: dict[tuple[int, int], Attempt] = {}
        self.order: list[Attempt] = []
        self.lo, self.hi = 0, None

    def _store(self, res: Attempt) -> None:
        self.done[(res.n, res.attempt)] = res
        self.order.append(res)
        if self.progress:
            self.progress(res, self.lo, self.hi)

    def __call__(self, n: int, a: int) -> Attempt:
        key = (int(n), int(a))
        if key not in self.done:
            self._store(self.oracle(*key))
        return self.done[key]

    def any_fits(self, n: int, max_attempts: int, first: int = 0) -> bool:
        """Does any attempt in [first, max_attempts) fit at n? One at a time, stopping at the first
        fit; or, in batch mode, all remaining attempts trained together."""
        todo = [a for a in range(first, max_attempts) if (int(n), a) not in self.done]
        if self.batch and len(todo) > 1:
            for res in self.oracle.batch(int(n), todo):
                self._store(res)
        return any(self(n, a).fitted for a in range(first, max_attempts))


SEARCHES: Registry[Callable[..., SearchResult]] = Registry("search")


def _check_common(start: int, pool: int, max_attempts: int) -> None:
    require(isinstance(start, int) and start >= 1, "search.start", start, "must be a positive integer")
    require(start <= pool, "search.start", start,
            f"must not exceed the training pool ({pool} samples); lower search.start or enlarge the dataset")
    require(isinstance(max_attempts, int) and max_attempts >= 1, "search.max_attempts", max_attempts,
            "must be a positive integer (the paper: 4 = 1 + 3 retries)")


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


@SEARCHES.register("linear")
def linear_search(oracle: Oracle, start: int, pool: int, step: int = 128, max_attempts: int = 4,
                  batch_attempts: bool = False, progress: Optional[Progress] = None, **_: Any) -> SearchResult:
    _check_common(start, pool, max_attempts)
    require(isinstance(step, int) and step >= 1, "search.step", step, "must be a positive integer")
    run = _Memo(oracle, progress, batch_attempts)
    n = start
    while True:
        if run(n, 0).fitted or run.any_fits(n, max_attempts, first=1):
            run.lo = n
            if n >= pool:
                run.hi = None
                break
            n = min(n + step, pool)
        else:
            run.hi = n
            break
    return SearchResult(emc=run.lo, fitted=run.lo or None, failed=run.hi, attempts=run.order, search="linear",
                        lower_bound=run.hi is None)


@SEARCHES.register("fixed")
def fixed_search(oracle: Oracle, start: int, pool: int, n: Optional[int] = None, max_attempts: int = 1,
                 progress: Optional[Progress] = None, **_: Any) -> SearchResult:
    """Train at one size (`search.n`, default `search.start`); EMC is n if it fitted, else 0."""
    size = int(n if n is not None else start)
    _check_common(size, pool, max_attempts)
    run = _Memo(oracle, progress)
    ok = run.any_fits(size, max_attempts)
    return SearchResult(emc=size if ok else 0, fitted=size if ok else None, failed=None if ok else size,
                        attempts=run.order, search="fixed", lower_bound=False)
