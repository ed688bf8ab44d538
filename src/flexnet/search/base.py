"""What every EMC search shares: the oracle protocol, the memo, the result, the registry.

An oracle answers ``oracle(n, attempt) -> Attempt``: train attempt number `attempt` (0, 1, 2, ...)
at training-set size n with its own subset and init, and say whether it fitted. The protocol
(Shwartz-Ziv, Goldblum et al. 2024): a size is fittable if any of `max_attempts` attempts
(1 + 3 retries) fits; EMC is the largest fittable size. This module holds `Attempt`,
`SearchResult`, `_Memo` (every (n, attempt) pair is run at most once), the `SEARCHES` registry
and the checks of the keys every search takes; the strategies live in bisect.py, linear.py and
fixed.py (file name = option name). Pure: no training, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import require
from ..registry import Registry


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
