"""`hydra/launcher=local`: parallel jobs on this machine, at most `max_parallel` at once; each job
reported as it finishes; a failing job reported with its log path without hiding the others."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a few seconds of fit attempts per job on one thread
TINY = ["train.caps=null", "train.epochs=300", "train.min_steps=300", "search.start=32", "dataset.num_samples=1000",
        "train.max_extensions=0", "convergence.hessian=false", "search.max_attempts=1", "threads=1"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("WANDB_MODE", "disabled")
    return env


def _sweep(tmp_path: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "flexnet", "-m", "hydra/launcher=local", *TINY, *overrides,
           f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    return subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda t: (t[0], t[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


@pytest.mark.slow
def test_local_sweep_runs_at_most_two_jobs_at_once(tmp_path):
    r = _sweep(tmp_path, "scaling.params=300,400,500,600", "hydra.launcher.max_parallel=2")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    sweep = tmp_path / "sweep"
    results = [json.loads((sweep / str(i) / "emc.json").read_text()) for i in range(4)]
    assert [x["params"]["target"] for x in results] == [300, 400, 500, 600]
    # each job's measurement window (wall clock, written by the job itself)
    spans = [(x["started_at"], x["finished_at"]) for x in results]
    assert all(s < e for s, e in spans)
    assert _max_overlap(spans) == 2, spans  # capped at 2, and the two slots were really used
    log = r.stdout + r.stderr
    for i, x in enumerate(results):  # each job's EMC printed as it finished
        done = [ln for ln in log.splitlines() if f"#{i} scaling.params=" in ln and "EMC = " in ln]
        assert done and done[0].split("EMC = ")[1].split()[0] == str(x["emc"]), log[-3000:]
    assert "at most 2 at once" in log


@pytest.mark.slow
def test_failing_job_is_reported_with_its_log_and_others_still_shown(tmp_path, monkeypatch):
    # a bad value is refused before any job starts (flexnet.preflight): one line, exit 2, nothing run
    r = _sweep(tmp_path, "scaling.params=300,-5")
    assert r.returncode == 2 and r.stderr.strip().startswith("flexnet: error: scaling.params=-5"), r.stderr[-3000:]
    assert not (tmp_path / "sweep" / "0").exists()
    # a job that fails inside its process (its data cache edited: every label 0) is reported with its log;
    # the other job still finishes, and the sweep ends with one line
    import torch

    from flexnet.data import load_dataset

    cache = tmp_path / "cache"
    monkeypatch.setenv("FLEXNET_CACHE", str(cache))
    load_dataset({"name": "mnist1d", "num_samples": 1300})
    (f,) = cache.glob("mnist1d-*.pt")
    d = torch.load(f, weights_only=True)
    d.pop("sha256")
    d["y"] = torch.zeros_like(d["y"])
    torch.save(d, f)
    r = _sweep(tmp_path, "dataset.num_samples=1200,1300", "scaling.params=choice(300)")
    log = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in r.stderr, log[-3000:]
    good = json.loads((tmp_path / "sweep" / "0" / "emc.json").read_text())
    assert f"EMC = {good['emc']}" in log
    failed_lines = [ln for ln in log.splitlines() if "#1 dataset.num_samples=1300" in ln and "FAILED" in ln]
    assert failed_lines, log[-3000:]
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("flexnet: error: 1 of 2 jobs of the sweep failed"), r.stderr[-3000:]
    # the error names the job's log file, which exists and holds the job's own error message
    err_logs = [Path(tok) for ln in log.splitlines() if "log: " in ln
                for tok in [ln.split("log: ", 1)[1].split()[0]]]
    assert err_logs and all(p.exists() for p in err_logs), log[-3000:]
    assert any("class counts" in p.read_text() for p in err_logs)
    assert (tmp_path / "sweep" / "1" / "error.txt").exists()


# submitit's own signal handling (its local job environment, whose handler checkpoints, "requeues" and
# exits like the Slurm one) in a process that has finished its work and then gets the timeout signal
_LATE_SIGNAL = """
import os, signal, sys, time
import submitit
from submitit.core.utils import DelayedSubmission
from hydra_plugins.flexnet_launcher.launcher import ignore_late_preemption_signal

class Job:
    def __call__(self):
        return 1
    def checkpoint(self):
        return DelayedSubmission(self)

env = submitit.JobEnvironment()
delayed = DelayedSubmission(Job())
delayed.set_timeout(1, 3)
env._handle_signals(env.paths, delayed)
delayed.result()
if sys.argv[1] == "done":
    ignore_late_preemption_signal()
os.kill(os.getpid(), submitit.JobEnvironment._usr_sig())
time.sleep(0.5)
print("exited normally")
"""


@pytest.mark.parametrize("after_return", [True, False])
def test_a_timeout_signal_after_the_job_returned_does_not_fail_it(tmp_path, after_return):
    """Slurm's timeout signal can land after the job's work returned (while submitit pickles the result
    and exits): it made a finished job FAILED in CI. The launcher ignores it from then on."""
    (tmp_path / "sub").mkdir()
    env = {**_env(), "SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "7", "SUBMITIT_FOLDER": str(tmp_path / "sub")}
    r = subprocess.run([sys.executable, "-c", _LATE_SIGNAL, "done" if after_return else "running"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    if after_return:
        assert r.returncode == 0 and "exited normally" in r.stdout, r.stderr[-2000:]
    else:  # while the job runs, submitit's handler still checkpoints and requeues (exits non-zero)
        assert r.returncode != 0 and "Requeued job 7" in r.stdout + r.stderr, (r.returncode, r.stderr[-2000:])
