"""Results that survive bad input, faults and concurrent runs (docs/reliability.md).

Real processes and real files throughout: `python -m flexnet` subprocesses for the CLI paths
(locks, kill -9, Ctrl-C, refusals), the real Journal on planted files, real pickles with payloads.
The bad-input battery runs in-process through the same `validate_config` the CLI calls first
(composed with Hydra exactly as `python -m flexnet` composes), plus a handful of CLI runs
against a finished directory that must come out unchanged.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, compose, read_jsonl, run_cli

# a search of ~14 short attempts: a few seconds per run on one core
FAST = ["dataset.num_samples=1200", "train.caps=null", "train.epochs=5", "train.min_steps=0", "train.max_extensions=0",
        "search.start=16", "scaling.params=300", "convergence.hessian=false"]
# longer attempts (a process is caught mid-search, then frozen with SIGSTOP while it holds its lock)
# sweeps whose jobs run in this process (Hydra's basic launcher): the test freezes, kills and reads them
# through the process it started; -m's default (local) runs each job in a process of its own
BASIC = ["hydra/launcher=basic"]
MID = ["dataset.num_samples=1200", "train.caps=null", "train.epochs=30", "train.min_steps=300", "train.max_extensions=0",
       "search.start=16", "scaling.params=300", "convergence.hessian=false"]


def _one_error_line(p: subprocess.CompletedProcess, *words: str) -> str:
    assert p.returncode != 0, p.stdout[-2000:]
    assert "Traceback" not in p.stderr, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("flexnet: error: "), p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ bad input, in-process battery

BAD = [  # (overrides, key named in the message)
    (["+scaling.parms=100"], "scaling.parms"),
    (["+search.resoluton=0.2"], "search.resoluton"),
    (["logger=wandb", "+logger.projct=x"], "logger.projct"),
    (["+train.bogus=1"], "train.bogus"),
    (["train.policy=cosine"], "train.policy"),
    (["train.lr_decay=1.5"], "train.lr_decay"),
    (["train.min_lr_factor=0"], "train.min_lr_factor"),
    (["convergence.grad_tol=maybe"], "convergence.grad_tol"),
    (["convergence.blowup=0.5"], "convergence.blowup"),
    (["+convergence.grad_rule=init"], "convergence.grad_rule"),
    (["+convergence.bogus=1"], "convergence.bogus"),
    (["+dataset.bogus=1"], "dataset.bogus"),
    (["+foo=1"], "foo"),
    (["regularizer=sam", "regularizer.adaptive=maybe"], "regularizer.adaptive"),
    (["regularizer=sam", "regularizer.adaptive='no'"], "regularizer.adaptive"),
    (["search.batch_attempts=maybe"], "search.batch_attempts"),
    (["curve=maybe"], "curve"),
    (["optimizer.nesterov=true", "optimizer.momentum=0"], "optimizer.nesterov"),
    (["train.epochs=abc"], "train.epochs"),
    (["train.epochs=1.5"], "train.epochs"),
    (["train.min_steps=abc"], "train.min_steps"),
    (["convergence.patience=abc"], "convergence.patience"),
    (["convergence.grad_tol=abc"], "convergence.grad_tol"),
    (["optimizer.warmup_fraction=abc"], "optimizer.warmup_fraction"),
    (["optimizer.schedule=bogus"], "optimizer.schedule"),
    (["optimizer.lr=inf"], "optimizer.lr"),
    (["optimizer=adam", "optimizer.betas=[0.9,2]"], "optimizer.betas"),
    (["scaling=none", "arch.width=abc"], "arch.width"),
    (["arch.dropout=abc"], "arch.dropout"),
    (["arch.activation=bogus"], "arch.activation"),
    (["dataset=gaussian", "dataset.num_samples=abc"], "dataset.num_samples"),
    (["dataset.classes=[]"], "dataset.classes"),
    (["dataset.classes=[3]"], "dataset.classes"),
    (["convergence.rel_tol=0"], "convergence.rel_tol"),
    (["convergence.rel_tol=1"], "convergence.rel_tol"),
    (["convergence.smoothing=1.0"], "convergence.smoothing"),
    (["convergence.smoothing=-0.1"], "convergence.smoothing"),
    (["device=cuda:99"], "device"),
    (["device=bogus"], "device"),
    (["labeling=corrupt", "+labeling.prob=2"], "labeling.prob"),
    (["labeling=corrupt", "labeling.p=2"], "labeling.p"),
    (["seed=abc"], "seed"),
    (["threads=0"], "threads"),
    (["search.trials=0"], "search.trials"),
    (["search=fixed", "search.n=abc"], "search.n"),
    (["search.min_n=1000"], "search.min_n"),
    (["reparam=subspace", "reparam.projection=bogus"], "reparam.projection"),
]


@pytest.mark.parametrize("overrides,key", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_input_is_one_line_naming_the_key(overrides, key):
    from flexnet.errors import ConfigError
    from flexnet.schema import validate_config

    with pytest.raises(ConfigError) as e:
        validate_config(compose(overrides))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{key}="), msg
    assert ":" in msg.split("=", 1)[1]  # `key=value: what is allowed`


@pytest.mark.slow  # composes every preset, ~10 s here
def test_every_shipped_config_validates():
    """Every option of every group and every experiment preset passes the schema."""
    from conftest import CONF
    from flexnet.schema import validate_config

    for g in ("dataset", "labeling", "arch", "scaling", "optimizer", "regularizer", "reparam", "search", "logger"):
        for p in sorted((CONF / g).glob("*.yaml")):
            validate_config(compose([f"{g}={p.stem}"]))
    for p in sorted((CONF / "experiment").glob("*.yaml")):
        validate_config(compose([f"+experiment={p.stem}"]))


def test_config_is_checked_before_data_loads(tmp_path):
    """A bad search key is reported even though the dataset does not exist (nothing is loaded first)."""
    from flexnet.errors import ConfigError
    from flexnet.pipeline import run_job

    cfg = compose(["dataset=cifar10", f"dataset.root={tmp_path / 'nothing'}", "search.resolution=2"])
    with pytest.raises(ConfigError) as e:
        run_job(cfg, tmp_path / "out")
    assert str(e.value).startswith("search.resolution=2:")
    cfg = compose([*FAST, "search=fixed", "search.n=1000000"])
    with pytest.raises(ConfigError) as e:
        run_job(cfg, tmp_path / "out")
    assert str(e.value).startswith("search.n=1000000:")  # not blamed on search.start
    assert not (tmp_path / "out" / "fits.jsonl").exists()


# ------------------------------------------------------------------ the CLI on a finished directory

@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("finished") / "run"
    p = run_cli([*FAST, f"hydra.run.dir={d}"], cwd=d.parent)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (d / "emc.json").exists() and (d / ".hydra" / "config.yaml").exists()
    return d


@pytest.mark.parametrize("bad,words", [
    (["train.epochs=abc"], ["train.epochs='abc'", "integer"]),
    (["+scaling.parms=100"], ["scaling.parms", "unknown key"]),
    (["regularizer=sam", "regularizer.adaptive=maybe"], ["regularizer.adaptive", "true or false"]),
    (["device=bogus"], ["device='bogus'"]),
    (["optimizer.betas=[1]"], ["optimizer.betas", "no such key"]),  # Hydra's own composition error
    (["arch=nosuch"], ["arch='nosuch'", "mlp"]),
    (["seed=1"], ["different configuration", "+fresh=true"]),  # valid, but not this directory's config
    (["search.growth=double"], ["different configuration", "search.growth"]),  # another search of a finished dir
], ids=lambda v: " ".join(v) if isinstance(v, list) and "=" in v[0] else None)
@pytest.mark.slow  # a finished run, then 7 CLI runs: ~38 s here
def test_rejected_run_changes_nothing_in_a_finished_dir(finished, bad, words):
    before = _snapshot(finished)
    p = run_cli([*FAST, *bad, f"hydra.run.dir={finished}"], cwd=finished.parent)
    _one_error_line(p, *words)
    assert p.returncode == 2
    assert _snapshot(finished) == before


@pytest.mark.slow  # ~16 s here
def test_fresh_moves_old_results_aside_and_error_txt_does_not_outlive_a_good_run(tmp_path):
    d = tmp_path / "run"
    p = run_cli([*FAST, "train.epochs=abc", f"hydra.run.dir={d}"], cwd=tmp_path)
    _one_error_line(p, "train.epochs")
    assert not d.exists()  # refused before the directory is made (preflight)
    d.mkdir()  # a job that fails once it holds its (new) directory keeps why in error.txt
    (d / "error.txt").write_text("dataset='x': the training pool holds a single class\n")
    p = run_cli([*FAST, f"hydra.run.dir={d}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not (d / "error.txt").exists()  # stale: removed by the successful run
    old = json.loads((d / "emc.json").read_text())
    p = run_cli([*FAST, "seed=1", "+fresh=true", f"hydra.run.dir={d}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    moved = list(d.glob("replaced-*"))
    assert len(moved) == 1 and json.loads((moved[0] / "emc.json").read_text()) == old
    assert (moved[0] / "fits.jsonl").exists() and (moved[0] / ".hydra" / "config.yaml").exists()
    assert json.loads((d / "emc.json").read_text())["config"]["seed"] == 1
    assert {r["config_hash"] for r in read_jsonl(d / "fits.jsonl")} != {r["config_hash"] for r in
                                                                         read_jsonl(moved[0] / "fits.jsonl")}


# ------------------------------------------------------------------ concurrency, kill -9, resume

def _env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "src") + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def _default_sigint() -> None:
    # a test run started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: give the child the default disposition,
    # as a terminal's foreground process has
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flexnet", *args], cwd=str(cwd), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _wait_for(cond, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.1)


def _lines(path: Path) -> int:
    return len([l for l in path.read_bytes().split(b"\n") if l.strip()]) if path.exists() else 0


@pytest.mark.slow  # ~24 s here
def test_one_writer_per_dir_kill9_and_resume(tmp_path):
    """A sweep holds its sweep dir and its job dir; a second sweep or run there is refused with one
    line and changes nothing; kill -9 leaves no stuck lock; the rerun resumes from the journal, a
    planted bad journal line is reported (one stderr line) and set aside, replayed attempts are marked,
    and emc.json's seconds cover both segments."""
    sweep = tmp_path / "sweep"
    job = sweep / "0"
    a = _start(["-m", *BASIC, *MID, f"hydra.sweep.dir={sweep}"], tmp_path)
    try:
        _wait_for(lambda: _lines(job / "fits.jsonl") >= 1 or a.poll() is not None)
        a.send_signal(signal.SIGSTOP)  # frozen mid-search, lock held
        assert a.poll() is None, a.communicate()[1][-3000:]
        before = _snapshot(sweep)
        b = run_cli(["-m", *BASIC, *MID, "seed=5", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
        _one_error_line(b, "hydra.sweep.dir", "in use")
        c = run_cli([*MID, f"hydra.run.dir={job}"], cwd=tmp_path)
        _one_error_line(c, "hydra.run.dir", "in use", f"pid {a.pid}")
        assert _snapshot(sweep) == before  # multirun.yaml, .hydra/, the journal: untouched
    finally:
        a.send_signal(signal.SIGKILL)
        a.communicate()
    assert a.returncode == -signal.SIGKILL
    done = read_jsonl(job / "fits.jsonl")
    with open(job / "fits.jsonl", "a") as f:  # wrong shape, wrong type, then a record cut by a kill
        f.write("[1, 2, 3]\n" + '{"n": "abc", "attempt": 0}\n' + '{"n": 5, "attem')
    yaml_before = ((sweep / "multirun.yaml").read_bytes(), (sweep / "multirun.yaml").stat().st_mtime_ns)
    r = run_cli(["-m", *BASIC, *MID, "seed=5", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    _one_error_line(r, "different configuration")  # resuming needs the same config ...
    # ... and the refused sweep leaves the sweep's multirun.yaml as it was
    assert ((sweep / "multirun.yaml").read_bytes(), (sweep / "multirun.yaml").stat().st_mtime_ns) == yaml_before
    # ... and with it the job resumes: the killed process left no lock behind
    r = run_cli(["-m", *BASIC, *MID, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    warn = [l for l in r.stderr.splitlines() if "not replayed" in l]
    assert len(warn) == 1 and "3 line(s)" in warn[0], r.stderr
    rejected = read_jsonl(job / "fits.rejected.jsonl")
    assert [x["line"] for x in rejected] == [len(done) + 1, len(done) + 2, len(done) + 3]
    assert r.stdout.count("(replayed from the journal)") == len(done)
    res = json.loads((job / "emc.json").read_text())
    assert res["replayed_attempts"] == len(done)
    journalled = sum(x["seconds"] for x in read_jsonl(job / "fits.jsonl"))
    assert res["seconds"] >= journalled and res["seconds"] > res["seconds_this_segment"]


@pytest.mark.slow  # ~6 s here
def test_ctrl_c_is_one_line_with_the_resume_command(tmp_path):
    d = tmp_path / "run"
    # a cap no attempt reaches in this test: the search is always still running when Ctrl-C comes
    # (with MID's cap an idle machine finished the whole search before the signal)
    long = [o for o in MID if not o.startswith("train.min_steps=")] + ["train.min_steps=1000000"]
    p = _start([*long, f"hydra.run.dir={d}"], tmp_path)
    try:
        _wait_for(lambda: _lines(d / "fits.jsonl") >= 1 or p.poll() is not None)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("flexnet: interrupted: "), err
    assert "finished attempt(s)" in lines[0] and f"hydra.run.dir={d}" in lines[0]


@pytest.mark.slow  # ~25 s here
def test_ctrl_c_on_a_parallel_sweep_stops_its_jobs_and_prints_the_resume_command(tmp_path):
    """-m's default launcher (local) runs each job in a process of its own: Ctrl-C on the sweep stops
    them (none is left running) and prints one line with the command that resumes the sweep."""
    sweep = tmp_path / "sweep"
    long = [o for o in MID if not o.startswith(("train.min_steps=", "scaling.params="))]
    long += ["train.min_steps=1000000", "scaling.params=300,400"]
    p = _start(["-m", *long, f"hydra.sweep.dir={sweep}"], tmp_path)
    try:
        _wait_for(lambda: _lines(sweep / "0" / "fits.jsonl") >= 1 or p.poll() is not None, timeout=120)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and "Traceback" not in err, err[-3000:]
    line = [l for l in err.splitlines() if l.startswith("flexnet: interrupted: ")]
    assert len(line) == 1 and "0 of 2 jobs finished" in line[0], err[-3000:]
    assert line[0].endswith(f"hydra.sweep.dir={sweep}") and "scaling.params=300,400" in line[0]
    time.sleep(1)
    left = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(sweep).encode() in cmd.read_bytes():
                left.append(cmd.parent.name)
        except OSError:
            pass
    assert not left, f"processes of the sweep still running: {left}"
    assert _lines(sweep / "0" / "fits.jsonl") >= 1  # finished attempts stay journalled


# ------------------------------------------------------------------ the journal, record by record

def test_journal_sets_aside_bad_records(tmp_path, capsys):
    from flexnet.records import REJECTED_FILE, Journal

    path = tmp_path / "fits.jsonl"
    good = {"n": 16, "attempt": 0, "status": "fitted", "fitted": True, "train_acc": 1.0, "seconds": 0.5,
            "cost": 80.0, "config_hash": "h"}
    lines = [good,
             [1, 2, 3],
             {**good, "n": "abc"},
             {k: v for k, v in good.items() if k != "status"},
             {**good, "n": 32, "status": "fitted", "fitted": False, "train_acc": 0.93},  # status edited
             {**good, "n": 64, "status": "failed", "fitted": False, "train_acc": 1.0},   # contradicts acc
             {**good, "n": 128, "status": "failed", "fitted": False, "train_acc": 0.97},
             {**good, "n": 128, "status": "failed", "fitted": False, "train_acc": 0.97},  # repeated
             {**good, "n": 256, "config_hash": "other"}]
    path.write_text("".join(json.dumps(l) + "\n" for l in lines) + '{"n": 5, "att')
    j = Journal(path, "h")
    assert set(j.replayed) == {(0, 16, 0), (0, 128, 0)}
    assert [i for i, _ in j.rejected] == [2, 3, 4, 5, 6, 8, 10]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "7 line(s) not replayed" in err[0]
    kept = read_jsonl(path)  # valid records (other configs' included) stay; the file ends cleanly
    assert [r["n"] for r in kept] == [16, 128, 256] and path.read_bytes().endswith(b"\n")
    assert len(read_jsonl(tmp_path / REJECTED_FILE)) == 7
    assert Journal(path, "h").rejected == []  # set aside once, not reported again


# ------------------------------------------------------------------ data files are not executed

class _Payload:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_planted_cifar_pickle_is_refused_not_run(tmp_path):
    import pickle

    from test_data import cfg, make_cifar

    from flexnet.data import load_dataset
    from flexnet.errors import ConfigError

    _, folder = make_cifar(tmp_path)
    ran = tmp_path / "payload-ran"
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": _Payload(ran), "labels": [0]}, protocol=2))
    with pytest.raises(ConfigError) as e:  # not the official release: refused by md5 ...
        load_dataset(cfg("cifar10", root=str(tmp_path), verify=True))
    assert "md5" in str(e.value) and "\n" not in str(e.value) and "verify=false" not in str(e.value)
    with pytest.raises(ConfigError) as e:  # ... and without the md5 check, by the unpickler's allowlist
        load_dataset(cfg("cifar10", root=str(tmp_path), verify=False))
    assert "\n" not in str(e.value) and "system" in str(e.value) and "data_batch_2" in str(e.value)
    assert not ran.exists()


def test_planted_covertype_cache_is_refused_not_run(tmp_path):
    import joblib
    import numpy as np

    from test_data import cfg

    from flexnet.data import load_dataset
    from flexnet.errors import ConfigError

    d = tmp_path / "covertype"
    d.mkdir()
    ran = tmp_path / "payload-ran"
    joblib.dump(np.zeros((70, 54)), d / "samples_py3", compress=9)
    joblib.dump({"y": _Payload(ran)}, d / "targets_py3", compress=9)
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("covertype", root=str(tmp_path)))
    assert "\n" not in str(e.value) and "system" in str(e.value) and not ran.exists()
    (d / "targets_py3").write_bytes(b"\x00garbage")  # a corrupt cache: one line too
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("covertype", root=str(tmp_path)))
    assert "\n" not in str(e.value) and "cannot read" in str(e.value)


# ------------------------------------------------------------------ W&B without network

@pytest.mark.slow  # ~5 s here
def test_wandb_online_failure_keeps_metrics_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from test_wandb import _key, _summary, finished_records

    from flexnet.loggers import make_logger

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: online start fails
    t0 = time.perf_counter()
    lg = make_logger({"name": "wandb", "mode": "online", "init_timeout": 3, "finish_timeout": 3},
                     {"seed": 0}, tmp_path / "o", {"sweep_dir": str(tmp_path), "num": 0})
    for n in (16, 32):
        lg.log_attempt({"n": n, "attempt": 0, "fitted": True, "train_acc": 1.0, "epochs": 5})
    lg.log_summary({"emc": 32, "params": {"actual": 300, "target": 300}})
    lg.finish(0)
    assert time.perf_counter() - t0 < 60
    runs = list((tmp_path / "o" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    recs = finished_records(runs[0])
    ns = [json.loads(it.value_json) for r in recs if r.WhichOneof("record_type") == "history"
          for it in r.history.item if _key(it) == "fit/n"]
    assert ns == [16, 32] and _summary(recs)["emc"] == 32


def test_a_search_that_mostly_blows_up_is_reported_and_exits_nonzero(tmp_path):
    """Adam at lr 1e6: the attempts blow up (NaN, or a loss far above its initial value). They are
    counted as diverged / degenerate in emc.json, the summary warns, and a single run exits 3 with
    a line suggesting a lower lr; nothing is certified as a verified minimum."""
    out = tmp_path / "run"
    r = run_cli(["optimizer=adam", "optimizer.lr=1e6", "scaling.params=300", "dataset.num_samples=1200",
                 "search.start=16", "train.caps=null", "train.epochs=50", "train.min_steps=200", "search.max_attempts=2",
                 f"hydra.run.dir={out}"], tmp_path)
    assert r.returncode == 3, r.stderr[-2000:]
    err = [l for l in r.stderr.splitlines() if l.startswith("flexnet: error:")]
    assert len(err) == 1 and "optimizer.lr" in err[0] and "Traceback" not in r.stderr
    res = json.loads((out / "emc.json").read_text())
    fits = read_jsonl(out / "fits.jsonl")
    broken = [f for f in fits if f["status"] in ("diverged", "degenerate")]
    assert res["diverged"] + res["degenerate"] == len(broken) and 2 * len(broken) >= len(fits)
    assert res["mostly_broken"] is True and "WARNING" in r.stdout
    assert not any(f["stop_reason"] == "verified_minimum" for f in fits)
