"""flexnet.taskpool: tasks a few at once, longest first, follow-up tasks once their input is done."""
import threading
import time

import pytest

from flexnet.taskpool import Task, run_tasks


def _sleeper(log, key, secs, state):
    def run():
        with state["lock"]:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        log.append(("start", key))
        time.sleep(secs)
        with state["lock"]:
            state["now"] -= 1
        return key
    return run


def _state():
    return {"lock": threading.Lock(), "now": 0, "peak": 0}


def test_at_most_slots_at_once_and_every_task_runs():
    log, st = [], _state()
    run = run_tasks([Task(f"t{i}", _sleeper(log, f"t{i}", 0.05, st)) for i in range(6)], slots=2)
    assert st["peak"] == 2
    assert sorted(d.key for d in run.done) == [f"t{i}" for i in range(6)]
    assert all(d.result == d.key and d.error is None and d.end >= d.start for d in run.done)
    assert run.wall < 6 * 0.05   # two at a time, not one after another


def test_longest_first_then_given_order():
    log, st = [], _state()
    tasks = [Task("short", _sleeper(log, "short", 0.01, st), priority=1.0),
             Task("long", _sleeper(log, "long", 0.01, st), priority=10.0),
             Task("unknown-a", _sleeper(log, "unknown-a", 0.01, st)),
             Task("unknown-b", _sleeper(log, "unknown-b", 0.01, st))]
    run_tasks(tasks, slots=1)
    assert [k for _, k in log] == ["unknown-a", "unknown-b", "long", "short"]


def test_then_unlocks_follow_ups_with_the_result():
    log, st = [], _state()

    def then(result):
        assert result == "tune"
        return [Task(f"sweep-{i}", _sleeper(log, f"sweep-{i}", 0.01, st), group="p") for i in range(2)]

    run = run_tasks([Task("tune", _sleeper(log, "tune", 0.05, st), then=then, group="p"),
                     Task("other", _sleeper(log, "other", 0.01, st), group="q")], slots=2)
    starts = [k for _, k in log]
    assert starts.index("sweep-0") > starts.index("tune") and starts.index("sweep-1") > starts.index("tune")
    tune = next(d for d in run.done if d.key == "tune")
    assert all(d.start >= tune.end for d in run.done if d.key.startswith("sweep-"))
    spans = run.spans()
    assert set(spans) == {"p", "q"} and spans["p"][0] == tune.start and spans["p"][1] >= tune.end


def test_an_error_is_recorded_and_unlocks_nothing():
    def boom():
        raise RuntimeError("no such preset")

    called = []
    run = run_tasks([Task("bad", boom, then=lambda r: called.append(r) or []),
                     Task("good", lambda: 1)], slots=2)
    bad = next(d for d in run.done if d.key == "bad")
    assert isinstance(bad.error, RuntimeError) and not called
    assert next(d for d in run.done if d.key == "good").result == 1


def test_slots_must_be_positive():
    with pytest.raises(ValueError, match="slots=0"):
        run_tasks([], slots=0)
