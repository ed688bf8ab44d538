"""`search.trials`: T repeats of the measurement in one job, run in lockstep, a round's attempts at one
size trained as one stacked model, or each attempt in a worker process as its trial asks
(search.trial_workers); trial 0 is the trials=1 measurement; error bars in emc.json and report."""
from __future__ import annotations

import json
import threading

import pytest

from conftest import TINY, compose
from flexnet.errors import ConfigError
from flexnet.analysis.build import build_report, write_report
from flexnet.pipeline import run_job
from flexnet.search import SEARCHES, Attempt, run_trials

# random labels, one size class that is clearly over capacity: searches that fail, retry and diverge
BASE = TINY + ["labeling=random_labels", "convergence.hessian=false", "search.max_attempts=2"]


def _fits(d):
    """The journal's attempts, each once: the line that saw it furthest (an attempt resumed at a
    larger cap of the ladder has a line per cap; the later one)."""
    last = {}
    for line in (d / "fits.jsonl").read_text().splitlines():
        r = json.loads(line)
        last[(r.get("trial"), r["n"], r["attempt"])] = r
    return list(last.values())


def _as_if_alone(runs, search, capacity) -> None:
    """Each trial's search visited the sizes and found the EMC it finds run on its own."""
    for k, r in enumerate(runs):
        alone = search(k, lambda n, a, k=k: Attempt(n, a, capacity(k, n, a)))
        assert (r.emc, r.failed) == (alone.emc, alone.failed)
        assert [(a.n, a.attempt) for a in r.attempts] == [(a.n, a.attempt) for a in alone.attempts]


def test_lockstep_groups_the_trials_requests_and_routes_the_answers():
    """Pure scheduling (no training): every round holds one request per live search; each search gets the
    answers to its own requests; the searches' bisections are those of running them one at a time."""
    rounds: list[list] = []

    def capacity(k: int, n: int, a: int) -> bool:  # trial k fits up to 100 + 7k samples; attempt 1 rescues +3
        return n <= 100 + 7 * k + 3 * a

    def train_round(keys):
        rounds.append(sorted(keys))
        assert threading.current_thread() is threading.main_thread()
        return {key: Attempt(key[1], key[2], capacity(*key[:3])) for key in keys}

    def search(k, oracle):
        return SEARCHES.get("bisect")(oracle, start=16, pool=1000, resolution=0.02, max_attempts=2,
                                      batch_attempts=True)

    runs = run_trials(search, 4, train_round)

    _as_if_alone(runs, search, capacity)
    # the doubling phase is the same for all four: its rounds hold all four trials at one n
    assert rounds[0] == [(k, 16, 0, None) for k in range(4)]  # (trial, n, attempt, cap: no ladder here)
    assert all(len({key[0] for key in rd}) == len(rd) or any(key[2] > 0 for key in rd) for rd in rounds)
    assert sum(len(rd) for rd in rounds) == sum(r.fits for r in runs)


def test_lockstep_reraises_a_search_error_after_stopping_the_others():
    def search(k, oracle):
        if k == 1:
            raise ConfigError("search.start: bad")
        return SEARCHES.get("bisect")(oracle, start=16, pool=200, max_attempts=1)

    with pytest.raises(ConfigError, match="search.start"):
        run_trials(search, 3, lambda keys: {key: Attempt(key[1], key[2], key[1] <= 50) for key in keys})


def test_workers_serve_each_trial_as_it_asks_not_in_lockstep():
    """search.trial_workers: a request goes out as soon as its trial asks, journalled attempts are
    answered at once, each search gets its own answers, and a slow trial does not hold the others."""
    import queue
    import time
    from concurrent.futures import ThreadPoolExecutor

    def capacity(k: int, n: int, a: int) -> bool:
        return n <= 100 + 7 * k + 3 * a

    class Workers:  # threads stand in for the processes: the scheduling is what is tested here
        def __init__(self):
            self.ex, self.done, self.started = ThreadPoolExecutor(2), queue.Queue(), []

        def start(self, key):
            self.started.append(key)
            if key[0] == 2:  # trial 2's attempts are all journalled: answered without a worker
                return Attempt(key[1], key[2], capacity(*key[:3]))

            def run():
                time.sleep(0.3 if key[:3] == (0, 16, 0) else 0.0)  # trial 0's first attempt is slow
                self.done.put((key, Attempt(key[1], key[2], capacity(*key[:3]))))

            self.ex.submit(run)
            return None

        def wait(self):
            return self.done.get()

    def search(k, oracle):
        return SEARCHES.get("bisect")(oracle, start=16, pool=1000, resolution=0.02, max_attempts=2)

    w = Workers()
    runs = run_trials(search, 3, None, w)

    _as_if_alone(runs, search, capacity)
    assert sorted(k[:3] for k in w.started) == sorted((k, a.n, a.attempt) for k, r in enumerate(runs) for a in r.attempts)
    t1 = [key for key in w.started if key[0] == 1]
    t0 = [key for key in w.started if key[0] == 0]
    # trial 1 finished its whole search while trial 0's first attempt was still training (in
    # lockstep, trial 1's last attempt would start after trial 0's attempt of the same round)
    assert w.started.index(t1[-1]) < w.started.index(t0[1])


def test_trial_workers_train_in_processes_with_the_same_results(tmp_path):
    """Real worker processes: the journal holds the same attempts (seeds, outcomes, epochs) as trials
    trained one after another in this process, the EMCs and their mean and SE are the same, and a
    rerun replays every attempt from the journal."""
    common = BASE + ["search.trials=3", "search.batch_attempts=false", "threads=1"]
    one = run_job(compose(common + ["search.trial_workers=1"]), tmp_path / "one")
    two = run_job(compose(common + ["search.trial_workers=2"]), tmp_path / "two")

    def by_key(d):
        return {(r["trial"], r["n"], r["attempt"]): {k: v for k, v in r.items() if "second" not in k}
                for r in _fits(d)}

    assert by_key(tmp_path / "one") == by_key(tmp_path / "two")
    assert [t["emc"] for t in one["trials"]] == [t["emc"] for t in two["trials"]]
    assert (one["emc_mean"], one["emc_se"]) == (two["emc_mean"], two["emc_se"])
    again = run_job(compose(common + ["search.trial_workers=2"]), tmp_path / "two")
    assert again["replayed_attempts"] == len(_fits(tmp_path / "one")) and again["emc_mean"] == two["emc_mean"]


@pytest.mark.parametrize("bad,match", [("0", "positive integer"), ("two", "positive integer")])
def test_bad_trial_workers_is_one_config_line(tmp_path, bad, match):
    with pytest.raises(ConfigError, match=f"search.trial_workers.*{match}"):
        run_job(compose(TINY + ["search.trials=2", f"search.trial_workers={bad}"]), tmp_path / "j")
    with pytest.raises(ConfigError, match="search.trial_workers.*batch_attempts=false"):
        run_job(compose(TINY + ["search.trials=2", "search.trial_workers=2", "search.batch_attempts=true"]),
                tmp_path / "k")


def test_trial_zero_is_the_single_trial_measurement(tmp_path):
    """Unbatched, trial 0 runs exactly the attempts (seeds, outcomes, epochs) of the trials=1 job; other
    trials draw their own subsets and inits; emc.json carries each trial and the mean and SE."""
    one = run_job(compose(BASE), tmp_path / "one")
    three = run_job(compose(BASE + ["search.trials=3", "search.batch_attempts=false"]), tmp_path / "three")
    f1, f3 = _fits(tmp_path / "one"), _fits(tmp_path / "three")
    key = ("n", "attempt", "seed", "status", "epochs", "train_acc")
    assert [tuple(r[k] for k in key) for r in f1] == [tuple(r[k] for k in key) for r in f3 if r["trial"] == 0]
    assert {r["trial"] for r in f3} == {0, 1, 2}
    seeds = {k: {(r["n"], r["attempt"]): r["seed"] for r in f3 if r["trial"] == k} for k in range(3)}
    shared = set(seeds[0]) & set(seeds[1])
    assert shared and all(seeds[0][x] != seeds[1][x] for x in shared)
    assert three["emc"] == one["emc"] and three["bracket"] == one["bracket"]
    emcs = [t["emc"] for t in three["trials"]]
    assert [t["trial"] for t in three["trials"]] == [0, 1, 2] and emcs[0] == one["emc"]
    mean = sum(emcs) / 3
    assert three["emc_mean"] == pytest.approx(mean)
    assert three["emc_se"] == pytest.approx((sum((e - mean) ** 2 for e in emcs) / 2) ** 0.5 / 3 ** 0.5)
    assert three["total_fits"] == len(f3) == sum(t["fits"] for t in three["trials"])
    for t in three["trials"]:
        mine = [r for r in f3 if r["trial"] == t["trial"]]
        assert t["fits"] == len(mine) and max(r["n"] for r in mine if r["fitted"]) == t["emc"]


def test_trials_are_trained_stacked_and_mean_the_same(tmp_path):
    """Batched, a round's attempts at one size train as one stacked model; at a size every attempt
    clearly fits, the outcomes match one-at-a-time training (the CPU default) on the same seeds."""
    common = ["search=fixed", "search.n=24", "curve=false", "search.trials=4", "train.epochs=300", "train.min_steps=300",
              "train.policy=fixed", "train.caps=null"]  # stacking: the fixed policy only (per-attempt lr drops are not batched)
    bat = run_job(compose(TINY + common + ["search.batch_attempts=true"]), tmp_path / "bat")
    seq = run_job(compose(TINY + common + ["search.trial_workers=1"]), tmp_path / "seq")
    fb, fs = _fits(tmp_path / "bat"), _fits(tmp_path / "seq")
    assert [r.get("stacked") for r in fb] == [4] * 4 and all("stacked" not in r for r in fs)
    assert [(r["trial"], r["seed"], r["status"]) for r in fb] == [(r["trial"], r["seed"], r["status"]) for r in fs]
    assert all(r["status"] == "fitted" for r in fb)
    for b, s in zip(fb, fs):  # float summation order differs: close, not bitwise
        assert abs(b["epochs"] - s["epochs"]) <= max(3, 0.15 * s["epochs"])
    assert bat["emc_mean"] == seq["emc_mean"] == 24


@pytest.mark.slow  # ~2.5 s here
def test_more_trials_replay_the_journalled_ones_and_report_counts_each_trial(tmp_path):
    out = tmp_path / "job"
    first = run_job(compose(BASE + ["search.trials=2"]), out)
    again = run_job(compose(BASE + ["search.trials=3"]), out)
    assert again["replayed_attempts"] == first["total_fits"]
    assert [t["emc"] for t in again["trials"][:2]] == [t["emc"] for t in first["trials"]]
    rep = write_report(build_report([tmp_path], out=tmp_path / "rep"))
    sizes = [s for g in rep.groups.values() for s in g["sizes"]]
    assert len(sizes) == 1 and sizes[0]["jobs"] == 3
    assert sizes[0]["emc"] == pytest.approx(again["emc_mean"])
    assert sizes[0]["emc_se"] == pytest.approx(again["emc_se"])
    # a job with another seed and no trials joins the same series: trials are seeds, not a group
    single = run_job(compose(BASE + ["seed=5"]), tmp_path / "single")
    rep = write_report(build_report([tmp_path], out=tmp_path / "rep2"))
    assert len(rep.groups) == 1
    sizes = [s for g in rep.groups.values() for s in g["sizes"]]
    assert len(sizes) == 1 and sizes[0]["jobs"] == 4
    assert sizes[0]["emc"] == pytest.approx((3 * again["emc_mean"] + single["emc"]) / 4)
    rows = (tmp_path / "rep2" / "emc.csv").read_text().splitlines()
    assert rows[0].startswith("job,trial,") and len(rows) == 5


@pytest.mark.parametrize("bad", ["0", "1.5", "two"])
def test_bad_trials_is_one_config_line(tmp_path, bad):
    with pytest.raises(ConfigError, match="search.trials"):
        run_job(compose(TINY + [f"search.trials={bad}"]), tmp_path / "j")
