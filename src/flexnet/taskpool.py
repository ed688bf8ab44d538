"""Run tasks a few at once, longest first, each as soon as what it needs has finished.

scripts/reproduce.py runs its Hydra multiruns through this: every preset's sweeps (and an lr-tuned
arm's verdict sweeps, which can only start once its tuning has chosen the lr) share the machine's
cores, instead of one multirun after another with a core idle at each multirun's tail.

A task's `then` is called with its result (in the caller's thread, one at a time) and returns the
tasks its result unlocks; `priority` orders the ready tasks, largest first (reproduce.py gives the
expected seconds of the chain a task starts, read from an earlier run's journals: longest
processing time first). Ties keep the order in which tasks were given.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


@dataclass
class Task:
    key: str
    run: Callable[[], Any]
    priority: float = math.inf
    then: Optional[Callable[[Any], list]] = None
    group: str = ""                       # e.g. the preset: spans are reported per group


@dataclass
class Done:
    key: str
    group: str
    result: Any = None
    error: Optional[BaseException] = None
    start: float = 0.0                    # seconds since the pool started
    end: float = 0.0


@dataclass
class PoolRun:
    done: list = field(default_factory=list)   # Done, in finishing order
    wall: float = 0.0

    def spans(self) -> dict:
        """Per group: (first start, last end) in seconds since the pool started."""
        out: dict = {}
        for d in self.done:
            s, e = out.get(d.group, (math.inf, 0.0))
            out[d.group] = (min(s, d.start), max(e, d.end))
        return out


def run_tasks(tasks: list, slots: int) -> PoolRun:
    """Run `tasks` (and those their `then` returns) with at most `slots` at once; a task that raises is
    recorded with its error and unlocks nothing. Returns every task's outcome and the wall time."""
    if slots < 1:
        raise ValueError(f"slots={slots}: must be at least 1")
    t0 = time.monotonic()
    order = {}
    pending: list = []

    def add(ts: list) -> None:
        for t in ts:
            order.setdefault(t.key, len(order))
            pending.append(t)

    add(list(tasks))
    out = PoolRun()
    running: dict = {}
    with ThreadPoolExecutor(max_workers=slots) as ex:
        while pending or running:
            pending.sort(key=lambda t: (-t.priority, order[t.key]))
            while pending and len(running) < slots:
                t = pending.pop(0)
                running[ex.submit(_timed, t.run, t0)] = t
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in finished:
                t = running.pop(f)
                result, error, start, end = f.result()
                out.done.append(Done(t.key, t.group, result, error, start, end))
                if error is None and t.then is not None:
                    try:
                        add(t.then(result) or [])
                    except Exception as e:  # recorded like the task's own error
                        out.done[-1].error = e
    out.wall = time.monotonic() - t0
    return out


def _timed(fn: Callable[[], Any], t0: float) -> tuple:
    start = time.monotonic() - t0
    try:
        return fn(), None, start, time.monotonic() - t0
    except Exception as e:  # recorded, not raised: the other tasks go on
        return None, e, start, time.monotonic() - t0
