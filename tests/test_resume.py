"""Resume from the journal: a `python -m flexnet` killed with SIGKILL after some fit attempts and
started again on the same output dir replays the finished attempts, runs each attempt once, and
ends with the same emc.json as an uninterrupted run."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flexnet.records import Journal

ROOT = Path(__file__).resolve().parents[1]
# ~10 fit attempts of 0.1-3 s each on one CPU thread (no Hessian check, no extensions)
TINY = ["scaling.params=1000", "train.caps=null", "train.epochs=300", "train.min_steps=300", "search.start=32",
        "dataset.num_samples=2000", "train.max_extensions=0", "convergence.hessian=false",
        "search.max_attempts=2", "threads=1"]
OUTCOME_KEYS = ("emc", "bracket", "fits", "cost_sample_epochs", "test_accuracy", "lower_bound", "unverified",
                "params")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("WANDB_MODE", "disabled")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flexnet", *TINY, *extra, f"hydra.run.dir={run_dir}"]


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def _attempts(run_dir: Path) -> list[tuple]:
    return [(r["n"], r["attempt"], r["status"], r["train_acc"], r["epochs"]) for r in _lines(run_dir / "fits.jsonl")]


def _outcome(run_dir: Path) -> dict:
    r = json.loads((run_dir / "emc.json").read_text())
    return {k: r[k] for k in OUTCOME_KEYS}


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    ref_dir, dir_ = tmp_path / "reference", tmp_path / "killed"
    ref = subprocess.Popen(_cmd(ref_dir), env=_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    proc = subprocess.Popen(_cmd(dir_), env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    journal = dir_ / "fits.jsonl"
    deadline = time.monotonic() + 300
    while len(_lines(journal)) < 4:
        assert proc.poll() is None, "the run ended before it could be killed; the test budget is too small"
        assert time.monotonic() < deadline, "no fit attempts recorded after 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (dir_ / "emc.json").exists(), "killed too late: the run had already finished"
    done_before = len(_lines(journal))
    assert done_before >= 4

    resumed = subprocess.run(_cmd(dir_), env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out[-3000:]

    result = json.loads((dir_ / "emc.json").read_text())
    assert result["replayed_attempts"] == done_before
    assert _outcome(dir_) == _outcome(ref_dir)
    # the same attempts with the same outcomes, in the same order, each run exactly once
    assert _attempts(dir_) == _attempts(ref_dir)
    counts = collections.Counter((r["n"], r["attempt"]) for r in _lines(journal))
    assert counts and max(counts.values()) == 1, counts


def test_journal_drops_a_line_cut_by_a_kill_and_appends_cleanly(tmp_path):
    """A kill in the middle of writing a line leaves a partial last line: it is dropped (that attempt
    simply runs again), the file is repaired, and later appends start on a fresh line."""
    path = tmp_path / "fits.jsonl"
    j = Journal(path, "h1")
    j.append({"n": 8, "attempt": 0, "status": "fitted", "train_acc": 1.0})
    j.append({"n": 16, "attempt": 0, "status": "failed", "train_acc": 0.9})
    full = path.read_bytes()
    third = json.dumps({"n": 12, "attempt": 0, "status": "fitted", "train_acc": 1.0, "config_hash": "h1"}).encode()
    path.write_bytes(full + third[: len(third) // 2])  # as if killed mid-write

    j2 = Journal(path, "h1")
    assert sorted(j2.replayed) == [(0, 8, 0), (0, 16, 0)]  # (trial, n, attempt)
    assert j2.get(12, 0) is None
    assert path.read_bytes() == full  # the broken tail is gone
    j2.append({"n": 12, "attempt": 0, "status": "fitted", "train_acc": 1.0})
    recs = _lines(path)  # every line parses
    assert [(r["n"], r["attempt"]) for r in recs] == [(8, 0), (16, 0), (12, 0)]
    # a journal written under another config is not replayed
    assert Journal(path, "other").replayed == {}
