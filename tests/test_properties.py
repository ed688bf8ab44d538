"""Property-based tests (hypothesis) of the searches on synthetic oracles: pure Python, no training.

The oracle models the jamming transition: attempt `a` at size n needs T(n, a) optimizer steps to fit,
T = scale x n / (threshold - n) x lognormal noise below a random threshold, never at or above it, and
a random share of attempts are bad draws that never fit (the retries rescue them). Training stops at
whole epochs (1, 3 or 8 steps each): within a cap C an attempt fits iff the epoch in which it reaches
T ends no later than the epoch that reaches C, so the ladder of caps is modelled as the converge policy
promises: an attempt's trajectory does not depend on its cap.

Properties, for every drawn threshold, noise, resolution, retries, growth rule and ladder:
  * the search terminates within a stated number of attempts, and never runs an (n, attempt) twice;
  * its EMC is the largest fitted size it saw (0 if none), and its bracket's `fitted` is that EMC;
  * the final bracket meets the resolution, and every attempt at its failed size was run and failed;
  * on a ladder (ladder_search + bisect's `below=`): no rung's EMC exceeds the rung above; every
    attempt a rung saw is what `read_off` says of that attempt trained to the top cap; adding a rung on
    top changes none of the rungs under it;
  * a search replayed from the journal (records.Journal, no oracle behind it) gives the same result.
"""
from __future__ import annotations

import contextlib
import math
import random
import signal
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexnet.records import Journal
from flexnet.search import Attempt, bisect_search, fixed_search, linear_search
from flexnet.search.ladder import ladder_search, reach, read_off, rung_end

# examples per property: the profile's (tests/conftest.py: 80; 15 under make mutate, which runs them per mutant)
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
JOURNAL_SETTINGS = settings(SETTINGS, max_examples=max(10, settings.default.max_examples // 2))  # an fsync a line


EXAMPLE_SECONDS = 10  # one example's searches take milliseconds; one that loops fails after this


class OverBudget(AssertionError):
    pass


class Looped(BaseException):
    """An example ran past EXAMPLE_SECONDS. A BaseException: hypothesis does not catch it (it would
    re-run the example to shrink it, and pytest-timeout's one alarm would be spent), so the test fails
    at once with this message and the suite goes on."""


@contextlib.contextmanager
def time_limit(seconds: float = EXAMPLE_SECONDS):
    """Fail a looping example after `seconds` (SIGALRM), keeping pytest-timeout's own alarm running."""

    def on_alarm(signum, frame):
        raise Looped(f"no result within {seconds} s: the search loops (issue 35)")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    t0 = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            signal.setitimer(signal.ITIMER_REAL, max(1e-3, old_delay - (time.monotonic() - t0)))


class Jamming:
    """A synthetic fit oracle: `at(n, attempt, cap)` (the ladder's protocol) and `oracle(n, attempt)`
    at one cap. Deterministic in (seed, n, attempt): the same attempt gives the same answer."""

    def __init__(self, threshold: int, seed: int, sigma: float, p_bad: float, scale: float, cap: int,
                 budget: int = 10**9, spe: int = 1):
        self.threshold, self.seed, self.sigma, self.p_bad, self.scale = threshold, seed, sigma, p_bad, scale
        self.cap, self.budget, self.spe = cap, budget, spe  # spe: optimizer steps per epoch
        self.calls: list[tuple] = []

    def time_to_fit(self, n: int, a: int) -> float:
        rng = random.Random(f"{self.seed}:{n}:{a}")
        bad = rng.random() < self.p_bad
        noise = math.exp(rng.gauss(0.0, self.sigma))
        if bad or n >= self.threshold:
            return math.inf
        return self.scale * n / (self.threshold - n) * noise

    def epoch_end(self, step: float) -> int:
        """Training stops at whole epochs: the end of the epoch in which `step` falls."""
        return max(1, math.ceil(step / self.spe)) * self.spe

    def fits(self, n: int, a: int, cap: int) -> bool:
        """Within `cap` the attempt fits iff its fit (checked at an epoch's end) comes no later than the end
        of the epoch that reaches the cap."""
        t = self.time_to_fit(n, a)
        return math.isfinite(t) and self.epoch_end(t) <= self.epoch_end(cap)

    def record(self, n: int, a: int, cap: int) -> dict:
        """The journal record of attempt (n, a) trained to `cap`."""
        fit = self.fits(n, a, cap)
        steps = self.epoch_end(self.time_to_fit(n, a)) if fit else self.epoch_end(cap)
        return {"n": n, "attempt": a, "seed": a, "status": "fitted" if fit else "unverified",
                "stop_reason": "fitted" if fit else "cap", "fitted": fit, "train_acc": 1.0 if fit else 0.9,
                "train_loss": 0.0 if fit else 0.5, "steps": steps, "epochs": steps // self.spe, "cap_steps": cap,
                "cost": float(n * (steps // self.spe))}

    def attempt_of(self, rec: dict) -> Attempt:
        return Attempt(rec["n"], rec["attempt"], rec["status"] == "fitted", cost=rec["cost"], status=rec["status"],
                       record=rec)

    def at(self, n: int, a: int, cap: int) -> Attempt:
        self.calls.append((n, a, cap))
        if len(self.calls) > self.budget:
            raise OverBudget(f"more than {self.budget} attempts: the search does not terminate in its bound")
        return self.attempt_of(self.record(n, a, cap))

    def __call__(self, n: int, a: int) -> Attempt:
        return self.at(n, a, self.cap)


class Batched(Jamming):
    """The same oracle, also training several attempts of a size together (`batch_at`, as oracle.py's
    stacked attempts do; `batch` at its one cap), each call logged with the cap it was given."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.batches: list[tuple] = []

    def batch_at(self, n: int, attempts: list, cap: int) -> list:
        self.batches.append((n, tuple(attempts), cap))
        return [self.at(n, a, cap) for a in attempts]

    def batch(self, n: int, attempts: list) -> list:
        return self.batch_at(n, attempts, self.cap)


def bound(pool: int, resolution: float, max_attempts: int, growth: str, rescues: int) -> int:
    """The stated bound on a bisect search's attempts. A phase (growth from a size until a first attempt
    fails, then bisection of the bracket) probes at most P sizes: doubling reaches the pool in
    log2(pool) + 1 sizes and halving a bracket takes log2(pool) + 1 more; the fit-time aim may step by as
    little as a factor (1 + resolution), log(pool) / log(1 + resolution) sizes at most. The failed size
    of a phase gets its max_attempts - 1 retries; a retry that fits (a rescue) starts a new phase."""
    lg = math.ceil(math.log2(pool)) + 1
    per_phase = 2 * lg + (0 if growth == "double" else math.ceil(math.log(pool) / math.log1p(resolution)))
    return (1 + rescues) * (per_phase + max_attempts)


@st.composite
def problems(draw):
    pool = draw(st.integers(min_value=8, max_value=20000))
    threshold = draw(st.integers(min_value=1, max_value=int(pool * 1.5)))
    start = draw(st.integers(min_value=2, max_value=min(pool, 512)))
    return dict(
        pool=pool, threshold=threshold, start=start,
        min_n=draw(st.integers(min_value=1, max_value=min(2, start))),
        resolution=draw(st.sampled_from([0.01, 0.05, 0.1, 0.3])),
        max_attempts=draw(st.integers(min_value=1, max_value=5)),
        growth=draw(st.sampled_from(["fit_time", "fit_time_power", "double"])),
        seed=draw(st.integers(min_value=0, max_value=10**6)),
        sigma=draw(st.sampled_from([0.0, 0.3, 1.0])),
        p_bad=draw(st.sampled_from([0.0, 0.2, 0.5])),
        scale=draw(st.sampled_from([5.0, 50.0, 400.0])),
        cap=draw(st.sampled_from([100, 1000, 10000])),
        spe=draw(st.sampled_from([1, 3, 8])),
    )


def oracle_of(p: dict, budget: int = 10**9) -> Jamming:
    return Jamming(p["threshold"], p["seed"], p["sigma"], p["p_bad"], p["scale"], p["cap"], budget, p["spe"])


def search_kw(p: dict) -> dict:
    return {k: p[k] for k in ("start", "pool", "resolution", "max_attempts", "growth", "min_n")}


def rescues(res) -> int:
    return len({a.n for a in res.attempts if a.fitted and a.attempt > 0})


def check_bracket(res, p: dict, fits) -> None:
    """The invariants of a finished search's result; `fits(n, a)` is the oracle's answer at this cap."""
    fitted_sizes = [a.n for a in res.attempts if a.fitted]
    assert res.emc == max(fitted_sizes, default=0), "the EMC is the largest fitted size seen"
    assert res.fitted == (res.emc or None)
    assert res.cost == sum(a.cost for a in res.attempts) and res.fits == len(res.attempts)
    assert res.unverified == sum(a.status == "unverified" for a in res.attempts)
    keys = [(a.n, a.attempt) for a in res.attempts]
    assert len(keys) == len(set(keys)), "an (n, attempt) run twice"
    if res.failed is None:
        assert res.lower_bound and res.emc == p["pool"], "no failed size: the whole pool fitted"
        return
    assert not res.lower_bound and res.emc < res.failed <= p["pool"]
    # the paper's rule: every attempt at the failed size was run and failed
    at_failed = sorted(a.attempt for a in res.attempts if a.n == res.failed)
    assert at_failed == list(range(p["max_attempts"]))
    assert not any(fits(res.failed, a) for a in range(p["max_attempts"]))
    # the resolution (or the smallest size tried failed: EMC 0 at min_n)
    gap = res.failed - res.emc
    assert gap <= max(1.0, p["resolution"] * res.failed) or (res.emc + res.failed) // 2 < p["min_n"], \
        f"bracket ({res.emc}, {res.failed}) wider than the resolution {p['resolution']}"


@SETTINGS
@given(problems())
def test_bisect_terminates_and_its_bracket_obeys_the_rule(p):
    with time_limit():
        o = oracle_of(p, budget=bound(p["pool"], p["resolution"], p["max_attempts"], p["growth"], p["pool"]))
        res = bisect_search(o, **search_kw(p))
        assert len(o.calls) == res.fits and res.search == "bisect"
        assert res.fits <= bound(p["pool"], p["resolution"], p["max_attempts"], p["growth"], rescues(res))
        check_bracket(res, p, lambda n, a: o.fits(n, a, p["cap"]))
        # the truth is known: the EMC is a size where some attempt fits, and without noise the bracket
        # holds the threshold (every size below it fits on the first attempt)
        if res.emc:
            assert any(o.fits(res.emc, a, p["cap"]) for a in range(p["max_attempts"]))
        if p["p_bad"] == 0 and p["sigma"] == 0 and res.failed is not None:
            true_emc = max((n for n in range(1, p["pool"] + 1) if o.fits(n, 0, p["cap"])), default=0)
            assert res.emc <= true_emc < res.failed


@SETTINGS
@given(problems())
def test_linear_terminates_and_its_failed_size_had_every_attempt_fail(p):
    with time_limit():
        step = max(1, p["pool"] // 37)
        o = oracle_of(p, budget=p["max_attempts"] * (p["pool"] // step + 2))
        seen = []
        res = linear_search(o, start=p["start"], pool=p["pool"], step=step, max_attempts=p["max_attempts"],
                            progress=lambda a, lo, hi: seen.append((a.n, a.attempt)))
        assert res.search == "linear" and seen == [(a.n, a.attempt) for a in res.attempts]
        fitted_sizes = [a.n for a in res.attempts if a.fitted]
        assert res.emc == max(fitted_sizes, default=0) and res.fitted == (res.emc or None)
        if res.failed is not None:
            assert sorted(a.attempt for a in res.attempts if a.n == res.failed) == list(range(p["max_attempts"]))
            assert not any(a.fitted for a in res.attempts if a.n == res.failed)
            assert res.failed == (min(res.emc + step, p["pool"]) if res.emc else p["start"])
        else:
            assert res.emc == p["pool"] and res.lower_bound


@SETTINGS
@given(problems(), st.booleans())
def test_fixed_trains_one_size_and_its_emc_is_that_size_if_any_attempt_fits(p, give_n):
    with time_limit():
        o = oracle_of(p)
        n = p["start"] if not give_n else max(1, p["pool"] // 2)
        seen = []
        res = fixed_search(o, start=p["start"], pool=p["pool"], n=n if give_n else None,
                           max_attempts=p["max_attempts"], progress=lambda a, lo, hi: seen.append((a.n, a.attempt)))
        ok = any(o.fits(n, a, p["cap"]) for a in range(p["max_attempts"]))
        assert (res.emc, res.fitted, res.failed) == ((n, n, None) if ok else (0, None, n))
        assert res.search == "fixed" and res.lower_bound is False
        assert {a.n for a in res.attempts} == {n} and seen == [(a.n, a.attempt) for a in res.attempts]
        # attempts stop at the first fit
        assert not any(a.fitted for a in res.attempts[:-1]) and res.attempts[-1].fitted == ok
        assert len(res.attempts) == (next(a for a in range(p["max_attempts"]) if o.fits(n, a, p["cap"])) + 1
                                     if ok else p["max_attempts"])


@st.composite
def ladders(draw):
    p = draw(problems())
    first = draw(st.sampled_from([20, 50, 200]))
    k = draw(st.integers(min_value=2, max_value=4))
    factors = draw(st.lists(st.sampled_from([1.5, 2, 4]), min_size=k - 1, max_size=k - 1))
    caps = [first]
    for f in factors:
        caps.append(int(caps[-1] * f))
    return p, caps


@SETTINGS
@given(ladders())
def test_ladder_rungs_are_monotone_and_agree_with_read_off(pc):
    with time_limit():
        p, caps = pc
        o = oracle_of(p)
        rungs = ladder_search(bisect_search, o, caps, **search_kw(p))
        assert [r.cap for r in rungs] == caps
        assert len(o.calls) == len(set(o.calls)), "an attempt trained twice at one cap"
        for lower, upper in zip(rungs, rungs[1:]):
            assert lower.result.emc <= upper.result.emc, "a lower rung's EMC above a higher rung's"
        top = caps[-1]
        for r in rungs:
            res = r.result
            check_bracket(res, p, lambda n, a, c=r.cap: o.fits(n, a, c))
        for lower, r in zip([None, *rungs], rungs):
            res = r.result
            # a rung above the first replays the first-attempt fits of the rung below, and its EMC's fit, within
            # its own cap (they feed the aim) before its own search
            replays = 0 if lower is None else len({a.n for a in lower.result.attempts if a.fitted and a.attempt == 0}) + 1
            assert res.fits <= bound(p["pool"], p["resolution"], p["max_attempts"], p["growth"], rescues(res)) + replays
            for a in res.attempts:
                assert a.record["cap_steps"] == r.cap
                # the attempt within this cap, read off the same attempt trained to the top cap
                seen = read_off(o.record(a.n, a.attempt, top), r.cap)
                assert seen is not None and bool(seen["fitted"]) == a.fitted, (a.n, a.attempt, r.cap)
            if res.emc:
                assert any(read_off(o.record(res.emc, k, top), r.cap)["fitted"] for k in range(p["max_attempts"]))
        # adding a rung on top changes none of the rungs under it
        shorter = ladder_search(bisect_search, oracle_of(p), caps[:-1], **search_kw(p))
        for a, b in zip(shorter, rungs):
            assert (a.result.emc, a.result.failed, [(x.n, x.attempt) for x in a.result.attempts]) == \
                   (b.result.emc, b.result.failed, [(x.n, x.attempt) for x in b.result.attempts])
        # the first rung is the configured search at that cap alone
        alone = bisect_search(oracle_of({**p, "cap": caps[0]}), **search_kw(p))
        assert (alone.emc, alone.failed, alone.fits) == (rungs[0].result.emc, rungs[0].result.failed, rungs[0].result.fits)


@SETTINGS
@given(ladders())
def test_batched_retries_and_progress_change_nothing_but_the_order(pc):
    """batch_attempts=True (a size's remaining retries trained together, through the rung's `batch_at`
    at that rung's cap) gives every rung the same EMC and bracket as one attempt at a time; the progress
    callback sees every attempt once, in the order run, with the bracket's lower end as it stood."""
    with time_limit():
        p, caps = pc
        plain = ladder_search(bisect_search, oracle_of(p), caps, **search_kw(p))
        o = Batched(p["threshold"], p["seed"], p["sigma"], p["p_bad"], p["scale"], p["cap"], spe=p["spe"])
        seen = []
        batched = ladder_search(bisect_search, o, caps, batch_attempts=True,
                                progress=lambda a, lo, hi: seen.append((a.n, a.attempt, a.record["cap_steps"], lo, hi)),
                                **search_kw(p))
        for a, b in zip(plain, batched):
            assert (a.result.emc, a.result.fitted, a.result.failed, a.result.lower_bound) == \
                   (b.result.emc, b.result.fitted, b.result.failed, b.result.lower_bound)
            if b.result.failed is not None and p["max_attempts"] > 2:
                # the failed size's retries (attempts 1..) were one batch at this rung's cap
                assert (b.result.failed, tuple(range(1, p["max_attempts"])), b.cap) in o.batches
        assert all(cap in caps for _, _, cap in o.batches)
        ran = [(a.n, a.attempt, r.cap) for r in batched for a in r.result.attempts]
        assert [s_[:3] for s_ in seen] == ran
        # the bracket's lower end as each attempt came in: never above the rung's EMC, never falling
        for r in batched:
            los = [lo for n, att, cap, lo, hi in seen if cap == r.cap]
            assert los == sorted(los) and all(lo <= r.result.emc for lo in los)


def test_read_off_within_a_smaller_cap():
    """read_off itself, on the records the oracle writes: a fit at step s holds within every cap at or
    past s; below s the attempt was stopped by the cap, unfitted; a record capped below the asked cap
    decides nothing (None: resume it)."""
    rec = {"n": 10, "attempt": 0, "status": "fitted", "stop_reason": "fitted", "fitted": True, "train_acc": 1.0,
           "steps": 120, "epochs": 120, "cap_steps": 400, "cost": 1200.0}
    assert read_off(rec, 120)["fitted"] and read_off(rec, 400) is rec
    low = read_off(rec, 119)
    assert low["fitted"] is False and low["stop_reason"] == "cap" and low["steps"] == 119 and low["cap_steps"] == 119
    capped = {**rec, "status": "unverified", "stop_reason": "cap", "fitted": False, "steps": 400, "epochs": 400}
    assert read_off(capped, 800) is None and read_off(capped, 400) is capped
    assert read_off(capped, 200)["fitted"] is False
    assert read_off(rec, None) is rec  # no ladder: the record as trained


def test_rung_end_and_reach():
    """Where an attempt given a cap stops at the latest (the end of the epoch reaching it, an int for the
    journal), and how far a record saw its attempt (its fit or verdict step; its own cap when capped)."""
    assert rung_end({"epochs": 25, "steps": 100}, 101) == 104 and isinstance(rung_end({"epochs": 25, "steps": 100}, 101), int)
    assert rung_end({"epochs": 25, "steps": 100}, 100) == 100
    assert rung_end({"epochs": 0, "steps": 0}, 7) == 7  # no epochs recorded: one step each
    assert rung_end({}, 7) == 7
    capped = {"n": 10, "stop_reason": "cap", "steps": 404, "epochs": 101, "cap_steps": 401}
    assert reach(capped) == 401 and reach({**capped, "cap_steps": None}) == 404
    assert reach({"stop_reason": "fitted", "steps": 120, "cap_steps": 400}) == 120
    assert reach({"stop_reason": "cap"}) == 0 and reach({}) == 0
    # stopped by cap 401 (at step 404): within cap 402 (rung end 404 as well) it is undecided, resume it
    assert read_off(capped, 402) is None
    assert read_off(capped, 401) is capped and read_off(capped, 399)["read_off"] == 401


def test_read_off_in_whole_epochs_with_the_rung_evaluations():
    """Four steps per epoch: an attempt stops at the end of the epoch that reaches the cap, so within a cap
    of 101 it ran to step 104; the accuracy and loss within a cap are those evaluated at that rung; the
    record says how far the attempt it was read off went (`read_off`: its fit step, or its own cap)."""
    rungs = [{"cap": 50, "step": 52, "train_acc": 0.5, "train_loss": 1.5},
             {"cap": 101, "step": 104, "train_acc": 0.8, "train_loss": 0.7}]
    ident = {"trial": 1, "n": 10, "attempt": 2, "seed": 5, "config_hash": "c0", "code_hash": "h0", "policy": "converge"}
    fit = {**ident, "status": "fitted", "stop_reason": "fitted", "fitted": True,
           "train_acc": 1.0, "steps": 120, "epochs": 30, "cap_steps": 400, "cost": 300.0, "rungs": rungs}
    within = read_off(fit, 117)  # rung end 120: the fit at step 120 is seen
    assert within["fitted"] and within["cap_steps"] == 117 and within["read_off"] == 120
    low = read_off(fit, 101)
    assert (low["steps"], low["epochs"], low["cap_steps"], low["cost"]) == (104, 26, 101, 260.0)
    assert isinstance(low["steps"], int) and isinstance(low["epochs"], int)  # the journal takes ints only
    assert (low["train_acc"], low["train_loss"]) == (0.8, 0.7) and low["read_off"] == 120
    assert low["rungs"] == rungs and read_off(fit, 50)["rungs"] == rungs[:1]
    assert {k: low[k] for k in ident} == ident and low["status"] == "unverified"  # who it is, kept
    # stopped by the cap: no fit, no test accuracy, no time of its own (the fields are there, empty)
    assert {k: low[k] for k in ("seconds", "fitted_epoch", "fitted_step", "test_acc")} == dict.fromkeys(
        ("seconds", "fitted_epoch", "fitted_step", "test_acc"))
    one = read_off({**fit, "epochs": 120}, 101)  # one step per epoch
    assert (one["steps"], one["epochs"]) == (101, 101)
    assert read_off(fit, 60)["train_acc"] is None  # no evaluation at a cap the attempt had no rung for
    capped = {**fit, "status": "unverified", "stop_reason": "cap", "fitted": False, "steps": 400, "epochs": 100}
    assert read_off(capped, 101)["read_off"] == 400 and read_off(capped, 101)["steps"] == 104
    # a capped record without cap_steps reached its steps
    bare = {k: v for k, v in capped.items() if k != "cap_steps"}
    assert read_off(bare, 101)["read_off"] == 400 and read_off(bare, 401) is None
    # solved in closed form (no epochs): the same record within any cap
    closed = {**fit, "epochs": 0, "steps": 0}
    assert read_off(closed, 7) is closed
    # a fixed-policy attempt (a schedule whose length is the job's one cap; extensions run past it): as trained
    fixed = {**fit, "policy": "fixed", "steps": 600, "epochs": 150, "cap_steps": 400}
    assert read_off(fixed, 101) is fixed and read_off({**fit, "policy": "converge"}, 101)["fitted"] is False


class Replay:
    """An oracle that only replays a journal: asked for an attempt the journal lacks, it fails."""

    def __init__(self, journal: Journal, cap: int):
        self.journal, self.cap = journal, cap

    def at(self, n: int, a: int, cap: int) -> Attempt:
        rec = self.journal.get(n, a)
        assert rec is not None, f"attempt (n={n}, {a}) is not in the journal: the replay would train"
        got = read_off(rec, cap)
        assert got is not None, f"attempt (n={n}, {a}) journalled below cap {cap}"
        return Attempt(n, a, got["status"] == "fitted", cost=float(got["cost"]), status=got["status"], record=got)

    def __call__(self, n: int, a: int) -> Attempt:
        return self.at(n, a, self.cap)


class Journalled(Jamming):
    """The synthetic oracle writing every attempt (trained to the top cap) to a real journal."""

    def __init__(self, p: dict, journal: Journal, top: int):
        super().__init__(p["threshold"], p["seed"], p["sigma"], p["p_bad"], p["scale"], p["cap"], spe=p["spe"])
        self.journal, self.top = journal, top

    def at(self, n, a, cap):
        if self.journal.get(n, a) is None:
            self.journal.append(self.record(n, a, self.top))
        rec = read_off(self.journal.get(n, a), cap)
        return self.attempt_of(rec)


def _summary(rungs):
    return [(r.cap, r.result.emc, r.result.fitted, r.result.failed, r.result.lower_bound,
             [(a.n, a.attempt, a.fitted, a.status) for a in r.result.attempts]) for r in rungs]


@JOURNAL_SETTINGS
@given(ladders())
def test_a_search_replayed_from_its_journal_gives_the_same_result(pc):
    with time_limit():
        p, caps = pc
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "fits.jsonl"
            first = ladder_search(bisect_search, Journalled(p, Journal(path, "h"), caps[-1]), caps, **search_kw(p))
            again = Journal(path, "h")  # a new job on the same directory: the journal read back from disk
            assert not again.rejected
            replayed = ladder_search(bisect_search, Replay(again, caps[-1]), caps, **search_kw(p))
            assert _summary(replayed) == _summary(first)
            # another config's journal replays nothing
            assert not Journal(path, "other").replayed


@pytest.mark.parametrize("max_attempts", [1, 4])
def test_a_rescue_raises_the_bracket_and_the_search_goes_on(max_attempts):
    """A fixed example of the rescue path (the looping regression of issue 35: the bracket not raised
    after a retry fits at the failed size). The first attempt fails at every size in (60, 100];
    retries fit below 100; nothing fits from 100 on."""

    def oracle(n, a):
        ok = n < 100 and (n <= 60 or a > 0)
        return Attempt(n, a, ok, status="fitted" if ok else "failed")

    with time_limit():
        res = bisect_search(oracle, start=8, pool=1000, resolution=0.05, max_attempts=max_attempts, growth="double")
    if max_attempts == 1:
        assert res.emc == 60 and 60 < res.failed <= 63
    else:  # rescued at some failed size in (60, 100): the search goes on above it, to the real edge
        assert 95 <= res.emc <= 99 and 100 <= res.failed <= 105 and rescues(res) >= 1
        assert sorted(a.attempt for a in res.attempts if a.n == res.failed) == [0, 1, 2, 3]


@pytest.mark.parametrize("call,line", [
    (lambda o: linear_search(o, start=8, pool=100, step=0), "search.step=0: must be a positive integer"),
    (lambda o: bisect_search(o, start=0, pool=100), "search.start=0: must be a positive integer"),
    (lambda o: bisect_search(o, start=200, pool=100), "search.start=200: must not exceed the training pool (100"),
    (lambda o: fixed_search(o, start=8, pool=100, max_attempts=0), "search.max_attempts=0: must be a positive integer"),
    (lambda o: bisect_search(o, start=8, pool=100, resolution=1.0), "search.resolution=1.0: must lie in (0, 1)"),
    (lambda o: bisect_search(o, start=8, pool=100, min_n=9), "search.min_n=9: must be an integer in [1, search.start=8]"),
    (lambda o: bisect_search(o, start=8, pool=100, regrow_step=0), "search.regrow_step=0: must be > 0 (first growth"),
    (lambda o: bisect_search(o, start=8, pool=100, growth="bogus"),
     "search.growth='bogus': must be one of fit_time, fit_time_power, double"),
])
def test_bad_search_settings_are_one_line_with_the_value_and_what_is_allowed(call, line):
    from flexnet.errors import ConfigError

    o = Jamming(50, 0, 0.0, 0.0, 5.0, 100)
    with pytest.raises(ConfigError) as e:
        call(o)
    assert str(e.value).startswith(line) and not o.calls  # refused before anything trains


def test_attempts_are_trained_one_at_a_time_unless_batching_is_asked_for():
    o = Batched(60, 0, 0.0, 0.5, 5.0, 100)
    linear_search(o, start=8, pool=100, step=8, max_attempts=4)
    bisect_search(o, start=8, pool=100, max_attempts=4)
    assert o.batches == [] and o.calls


def test_each_growth_rule_probes_its_own_sizes():
    """growth picks where the search probes (never the rule): fit_time aims with the hyperbola,
    fit_time_power with the power law, double doubles; on the same oracle their probes differ."""
    probes = {}
    for growth in ("fit_time", "fit_time_power", "double"):
        o = Jamming(3000, 1, 0.0, 0.0, 400.0, 10000)
        res = bisect_search(o, start=64, pool=20000, growth=growth)
        probes[growth] = [a.n for a in res.attempts if a.attempt == 0]
        assert res.emc <= 2884 < res.failed  # 400 n / (3000 - n) <= 10000 steps up to n = 2884
    assert len({tuple(p) for p in probes.values()}) == 3, probes
    assert probes["double"][:4] == [64, 128, 256, 512]
