"""`search.trials`: repeats of one EMC measurement inside one job, for error bars.

Trial k runs the configured search with its own attempt seeds (trial 0 uses the run's seeds, so
a `trials=T` job's trial 0 is the `trials=1` job); the data (pool, labels) are the job's, so the
spread over trials is the spread over subsets and inits.

The T searches run in lockstep. Each runs in a thread of its own and blocks on every fit request;
when every search still running is waiting, the requests are grouped by n and each group (the
trials' attempts at one n, plus a size's deferred retries when `batch_attempts` is on) is handed
to `train_group` on the calling thread, which trains it as one stacked model where it can.
Searches are pure Python (search/), so the threads only ever wait; all training happens on the
caller's thread.

With `workers` (search.trial_workers > 1, oracle.TrialWorkers), there is no lockstep: each trial's
request goes to a worker process as soon as the trial asks, and is answered when it is done, so
the cores stay busy while the trials' searches take different paths.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Sequence

from .base import Attempt, SearchResult

Key = tuple[int, int, int, Optional[int]]       # (trial, n, attempt, cap: the ladder's rung or None)
TrainGroup = Callable[[list[Key]], dict[Key, Attempt]]


class _Aborted(Exception):
    """Raised in a search thread when training failed on the caller's thread."""


class _Request:
    def __init__(self, trial: int, n: int, attempts: list[int], cap: Optional[int] = None):
        self.trial, self.n, self.attempts = trial, int(n), [int(a) for a in attempts]
        self.cap = cap
        self.results: Optional[list[Attempt]] = None


class _TrialOracle:
    """What a search sees: `oracle(n, attempt)` and `oracle.batch(n, attempts)` (and `at` / `batch_at`
    within a ladder rung's cap, search/ladder.py), all blocking until the lockstep loop has trained
    the request."""

    def __init__(self, loop: "_Lockstep", trial: int):
        self.loop, self.trial = loop, trial

    def at(self, n: int, attempt: int, cap: Optional[int]) -> Attempt:
        return self.loop.ask(_Request(self.trial, n, [attempt], cap))[0]

    def batch_at(self, n: int, attempts: Sequence[int], cap: Optional[int]) -> list[Attempt]:
        return self.loop.ask(_Request(self.trial, n, list(attempts), cap))

    def __call__(self, n: int, attempt: int) -> Attempt:
        return self.at(n, attempt, None)

    def batch(self, n: int, attempts: Sequence[int]) -> list[Attempt]:
        return self.batch_at(n, attempts, None)


class _Lockstep:
    def __init__(self, trials: int):
        self.cond = threading.Condition()
        self.pending: dict[int, _Request] = {}
        self.live = set(range(trials))
        self.aborted = False

    def ask(self, req: _Request) -> list[Attempt]:
        with self.cond:
            self.pending[req.trial] = req
            self.cond.notify_all()
            while req.results is None and not self.aborted:
                self.cond.wait()
            if req.results is None:
                raise _Aborted()
            return req.results

    def finished(self, trial: int) -> None:
        with self.cond:
            self.live.discard(trial)
            self.cond.notify_all()

    def next_requests(self) -> list[_Request]:
        """Wait until every live search is waiting (or none is left); take their requests."""
        with self.cond:
            while self.live and len(self.pending) < len(self.live):
                self.cond.wait()
            reqs = [self.pending[k] for k in sorted(self.pending)]
            self.pending.clear()
            return reqs

    def settled(self, busy: set) -> list[_Request]:
        """Wait until every live search either asks or waits on a request in flight (`busy`) or has
        finished; take the new requests."""
        with self.cond:
            while len(self.pending) + len(self.live & busy) < len(self.live):
                self.cond.wait()
            reqs = [self.pending[k] for k in sorted(self.pending)]
            self.pending.clear()
            return reqs

    def answer(self, reqs: list[_Request], out: dict[Key, Attempt]) -> None:
        with self.cond:
            for r in reqs:
                r.results = [out[(r.trial, r.n, a, r.cap)] for a in r.attempts]
            self.cond.notify_all()

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()


def _serve(loop: _Lockstep, workers) -> None:
    """No lockstep: every request goes to `workers` (start(key) -> a journalled Attempt or None;
    wait() -> (key, Attempt) of the next finished one) as soon as its trial asks."""
    inflight: dict[int, tuple[_Request, dict]] = {}
    while True:
        for r in loop.settled(set(inflight)):
            got: dict = {}
            inflight[r.trial] = (r, got)
            for a in r.attempts:
                old = workers.start((r.trial, r.n, a, r.cap))
                if old is not None:
                    got[(r.trial, r.n, a, r.cap)] = old
        if not inflight:
            return
        if not any(len(got) == len(r.attempts) for r, got in inflight.values()):
            key, att = workers.wait()
            inflight[key[0]][1][key] = att
        for t in [t for t, (r, got) in inflight.items() if len(got) == len(r.attempts)]:
            r, got = inflight.pop(t)
            loop.answer([r], got)


def run_trials(search: Callable[[int, object], SearchResult], trials: int,
               train_group: TrainGroup, workers=None) -> list[SearchResult]:
    """Run `search(trial, oracle)` for trials 0..T-1 in lockstep; returns their results in order.

    `train_group(keys)` trains the (trial, n, attempt, cap) keys of one lockstep round (any mix of n)
    and returns an Attempt per key. With `workers` (see _serve) the trials do not wait for each
    other and train_group is not used. An error in a search (e.g. a config error) or in training is
    raised here once every thread has stopped.
    """
    loop = _Lockstep(trials)
    results: list[Optional[SearchResult]] = [None] * trials
    errors: list[Optional[BaseException]] = [None] * trials

    def worker(k: int) -> None:
        try:
            results[k] = search(k, _TrialOracle(loop, k))
        except _Aborted:
            pass
        except BaseException as e:  # re-raised on the caller's thread
            errors[k] = e
        finally:
            loop.finished(k)

    threads = [threading.Thread(target=worker, args=(k,), name=f"flexnet-trial-{k}", daemon=True)
               for k in range(trials)]
    for t in threads:
        t.start()
    try:
        while workers is None:
            reqs = loop.next_requests()
            if not reqs:
                break
            keys = [(r.trial, r.n, a, r.cap) for r in reqs for a in r.attempts]
            loop.answer(reqs, train_group(keys))
        if workers is not None:
            _serve(loop, workers)
    except BaseException:
        loop.abort()
        raise
    finally:
        for t in threads:
            t.join()
    for e in errors:
        if e is not None:
            raise e
    return [r for r in results if r is not None]
