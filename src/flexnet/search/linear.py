"""`search=linear`: the paper's protocol: grow n by `step` from `start` until a size fails all
its attempts; EMC is the last size that fitted.
"""
from __future__ import annotations

from typing import Any, Optional

from ..errors import require
from .base import SEARCHES, Oracle, Progress, SearchResult, _check_common, _Memo


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
