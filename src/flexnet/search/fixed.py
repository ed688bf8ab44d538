"""`search=fixed`: one size only (train/test accuracy at n, e.g. double descent); EMC is n if any
attempt fitted, else 0.
"""
from __future__ import annotations

from typing import Any, Optional

from .base import SEARCHES, Oracle, Progress, SearchResult, _check_common, _Memo


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
