"""The search strategies on fake oracles: brackets, attempt counts, the paper's retry rule."""
from __future__ import annotations

import random

import pytest

from flexnet.errors import ConfigError
from flexnet.search import Attempt, SEARCHES, bisect_search, fixed_search, linear_search


class Monotone:
    """Fits exactly the sizes n <= cap, on every attempt."""

    def __init__(self, cap: int):
        self.cap, self.calls = cap, []

    def __call__(self, n: int, a: int) -> Attempt:
        self.calls.append((n, a))
        return Attempt(n, a, n <= self.cap, cost=float(n * 10), status="fitted" if n <= self.cap else "failed")


class Noisy:
    """Sizes <= cap fit; the first attempt at sizes in (cap - band, cap] fails (a bad draw),
    and every attempt above cap fails. Retries recover the band."""

    def __init__(self, cap: int, band: int):
        self.cap, self.band, self.calls = cap, band, []

    def __call__(self, n: int, a: int) -> Attempt:
        self.calls.append((n, a))
        ok = n <= self.cap and not (a == 0 and n > self.cap - self.band)
        return Attempt(n, a, ok, cost=float(n), status="fitted" if ok else "failed")


@pytest.mark.parametrize("cap", [2, 100, 127, 128, 500, 1000, 3000, 9999])
def test_bisect_monotone_bracket_and_counts(cap):
    o = Monotone(cap)
    r = bisect_search(o, start=128, pool=10000, resolution=0.05)
    # the true cap lies in the bracket, which is as narrow as the resolution
    assert r.fitted == r.emc and r.emc <= cap < r.failed
    assert (r.failed - r.fitted) <= max(1, 0.05 * r.failed)
    # the failed size had all 4 attempts; every other size only its first
    assert sorted(a for n, a in o.calls if n == r.failed) == [0, 1, 2, 3]
    assert all(a == 0 for n, a in o.calls if n != r.failed)
    assert len(o.calls) == len(set(o.calls))  # nothing run twice
    assert r.fits == len(o.calls)
    assert r.cost == sum(n * 10 for n, _ in o.calls)


def test_bisect_noisy_retries_continue_above():
    o = Noisy(cap=1000, band=60)
    r = bisect_search(o, start=128, pool=100000, resolution=0.05)
    # the rule: final failed size had all attempts fail; EMC within the resolution of the true cap
    assert r.failed > 1000
    assert all(not o(r.failed, a).fitted for a in range(4))
    assert 1000 * 0.95 <= r.emc <= 1000
    assert r.failed - r.fitted <= max(1, 0.05 * r.failed)
    fails_at_hi = [c for c in o.calls if c[0] == r.failed]
    assert len(fails_at_hi) >= 4


def test_bisect_whole_pool_fits_is_lower_bound():
    o = Monotone(10**9)
    r = bisect_search(o, start=100, pool=1000)
    assert r.emc == 1000 and r.failed is None and r.lower_bound
    assert [n for n, _ in o.calls] == [100, 200, 400, 800, 1000]


def test_bisect_nothing_fits():
    o = Monotone(0)
    r = bisect_search(o, start=8, pool=1000)
    assert r.emc == 0 and r.fitted is None and r.failed == 2  # min_n: never below 2 samples
    assert min(n for n, _ in o.calls) == 2
    r = bisect_search(Monotone(0), start=8, pool=1000, min_n=1)
    assert r.failed == 1


def test_linear_monotone():
    o = Monotone(1000)
    r = linear_search(o, start=128, pool=10000, step=100)
    assert r.emc == 928 and r.failed == 1028
    assert sorted(a for n, a in o.calls if n == 1028) == [0, 1, 2, 3]
    assert [n for n, a in o.calls if a == 0] == list(range(128, 1029, 100))


def test_linear_noisy_uses_retries():
    o = Noisy(cap=1000, band=300)
    r = linear_search(o, start=100, pool=10000, step=100)
    assert r.emc == 1000 and r.failed == 1100
    # sizes in the band needed a second attempt
    assert (800, 1) in o.calls and (800, 2) not in o.calls


def test_fixed():
    r = fixed_search(Monotone(50), start=16, pool=100, n=40)
    assert r.emc == 40 and r.fits == 1
    r = fixed_search(Monotone(50), start=16, pool=100, n=60)
    assert r.emc == 0 and r.failed == 60


@pytest.mark.parametrize("seed", range(5))
def test_bisect_random_caps_match_linear_within_resolution(seed):
    rng = random.Random(seed)
    cap = rng.randint(50, 5000)
    rb = bisect_search(Monotone(cap), start=32, pool=8000, resolution=0.05)
    rl = linear_search(Monotone(cap), start=32, pool=8000, step=1)
    assert rl.emc == cap
    assert rb.emc <= rl.emc < rb.failed


def test_bad_search_input():
    with pytest.raises(ConfigError, match="search.start"):
        bisect_search(Monotone(10), start=500, pool=100)
    with pytest.raises(ConfigError, match="search.resolution"):
        bisect_search(Monotone(10), start=5, pool=100, resolution=0)
    with pytest.raises(ConfigError, match="search.step"):
        linear_search(Monotone(10), start=5, pool=100, step=0)
    assert set(SEARCHES.names()) >= {"bisect", "linear", "fixed"}


def test_bisect_gallops_from_a_rescued_size():
    """start 125 doubles to 1000, whose first attempt fails (noise band) but a retry fits; with no
    failed size pending above, growth resumes from 1000 by the resolution (1050), the step doubling
    after each fit: never by doubling (2000)."""
    o = Noisy(cap=1000, band=60)
    r = bisect_search(o, start=125, pool=100000, resolution=0.05)
    assert [n for n, a in o.calls if n > 1000] == [1050, 1050, 1050, 1050]  # closes the bracket at once
    assert r.emc == 1000 and r.failed == 1050

    calls = []

    def unlucky_at_1000(n, a):  # capacity 1500; only the first attempt at 1000 is a bad draw
        calls.append((n, a))
        return Attempt(n, a, n <= 1500 and (n, a) != (1000, 0))

    r = bisect_search(unlucky_at_1000, start=125, pool=100000, resolution=0.05)
    firsts = [n for n, a in calls if n > 1000 and a == 0]
    assert firsts[:4] == [1050, 1100, 1200, 1400]  # 50, 100, 200, 400 above the rescued size
    assert r.emc <= 1500 < r.failed and r.failed - r.emc <= 0.05 * r.failed
    with pytest.raises(ConfigError, match="search.regrow_step"):
        bisect_search(o, start=125, pool=1000, regrow_step=0)




class Jamming:
    """Fit time diverges at a threshold (Spigler et al. 2019): a first fit at n uses the fraction
    f(n) = a / (N - n) of a fixed step cap, and fits iff f < 1, so the cap is reached at N - a;
    a failure trains the whole cap. Every attempt behaves alike. Records as the oracle writes them."""

    def __init__(self, big_n: float, a: float, cap: int = 20000, record_cap: bool = True):
        self.big_n, self.a, self.cap, self.record_cap, self.calls = big_n, a, cap, record_cap, []

    def __call__(self, n: int, att: int) -> Attempt:
        self.calls.append((n, att))
        f = self.a / (self.big_n - n) if n < self.big_n else float("inf")
        ok = f < 1
        steps = int(f * self.cap) if ok else self.cap
        rec = {"steps": steps, **({"cap_steps": self.cap} if self.record_cap else {})}
        return Attempt(n, att, ok, cost=float(steps), status="fitted" if ok else "unverified", record=rec)


def test_aim_finds_where_a_hyperbolic_fit_time_reaches_the_cap():
    from flexnet.search.bisect import aim

    f = lambda n: 30.0 / (1300 - n)  # noqa: E731  (reaches 1 at n = 1270)
    assert aim({1000: f(1000), 1100: f(1100)}) == pytest.approx(1270)
    assert aim({512: f(512), 900: f(900), 1100: f(1100)}) == pytest.approx(1270)  # all on the line
    assert aim({1100: f(1100)}) is None                     # one fit says nothing of the slope
    assert aim({1000: 0.2, 1100: 0.1}) is None              # no slowing down
    assert aim({1000: 0.01, 1100: 0.02}) is None            # too little of the cap used to extrapolate


def test_aim_is_not_thrown_by_one_noisy_fit():
    """The fractions of a real search (2k config, random labels, seed 0): the largest fit used less of
    its cap than the one before it. Through those two alone the line rises (no aim, and the search
    doubled to 2418, four failures above an EMC of 1246); the weighted line through all of them
    still aims just above the largest fit."""
    from flexnet.search.bisect import aim

    fits = {512: 0.020, 1024: 0.162, 1084: 0.268, 1151: 0.575, 1209: 0.473}
    assert aim({1151: 0.575, 1209: 0.473}) is None
    assert 1209 < aim(fits) < 1209 * 1.05
    assert aim({1024: 0.162, 1084: 0.268, 1151: 0.575}) == pytest.approx(1173, abs=1)
    # the two largest sizes always count, however small the smaller fraction (seed 2's first aim)
    assert aim({256: 0.006, 512: 0.019, 1024: 0.196}) == pytest.approx(1068, abs=1)


def test_fit_time_growth_stops_near_the_threshold_and_keeps_the_rule():
    """With the cap reached at n = 1270, doubling's first failure lands at 2048 (and bisection
    fails at 1536 and 1280 on the way down); aiming at the fit time keeps every failed size within
    the resolution of the threshold. Both searches bracket it within the resolution, the failed size
    has all its attempts, and aiming costs less."""
    runs = {}
    for growth in ("fit_time", "double"):
        o = Jamming(1300, 30)
        r = bisect_search(o, start=128, pool=100000, resolution=0.05, growth=growth)
        assert r.emc < 1270 <= r.failed and r.failed - r.emc <= 0.05 * r.failed
        assert sorted(a for n, a in o.calls if n == r.failed) == [0, 1, 2, 3]
        runs[growth] = (r, o)
    aimed, doubled = runs["fit_time"][0], runs["double"][0]
    assert max(n for n, _ in runs["double"][1].calls) == 2048
    assert max(n for n, _ in runs["fit_time"][1].calls) <= 1270 * 1.05
    assert aimed.cost < doubled.cost


def test_fit_time_growth_is_doubling_without_cap_records():
    """Journals written before `cap_steps` (replayed attempts) give the aim nothing: the search
    probes exactly the sizes growth=double does."""
    plain, doubled = Jamming(1300, 30, record_cap=False), Jamming(1300, 30)
    bisect_search(plain, start=128, pool=100000, resolution=0.05)
    bisect_search(doubled, start=128, pool=100000, resolution=0.05, growth="double")
    assert plain.calls == doubled.calls
    with pytest.raises(ConfigError, match="search.growth"):
        bisect_search(plain, start=128, pool=1000, growth="triple")


def test_growth_is_left_out_of_the_journal_hash():
    from flexnet.config import compose
    from flexnet.records import result_hash

    assert result_hash(compose(["search.growth=double"])) == result_hash(compose([]))
    assert result_hash(compose(["search.resolution=0.1"])) != result_hash(compose([]))
