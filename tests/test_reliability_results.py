"""Results that cannot be silently replaced or faked (issue 32; docs/reliability.md).

Real `python -m flexnet` processes, real files, real signals; nothing under test is mocked. Most
refusals come before any data loads, so those runs take a couple of seconds each.
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
from test_reliability import FAST, MID, _env, _lines, _one_error_line, _snapshot, _start, _wait_for


def _refused(p: subprocess.CompletedProcess, *words: str) -> str:
    line = _one_error_line(p, *words)
    assert p.returncode == 2, (p.returncode, p.stderr)
    return line


# ------------------------------------------------------------------ paths, before anything is written

def _path_cases(tmp: Path) -> list:
    (tmp / "afile").write_text("x")
    os.symlink(tmp / "loop1", tmp / "loop2")
    os.symlink(tmp / "loop2", tmp / "loop1")
    emcdir = tmp / "emcdir"
    (emcdir / "emc.json").mkdir(parents=True)
    fitsdir = tmp / "fitsdir"
    (fitsdir / "fits.jsonl").mkdir(parents=True)
    logdir = tmp / "logdir"
    (logdir / "flexnet.log").mkdir(parents=True)
    sweep = tmp / "sweepdir"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return [
        (["hydra.run.dir="], {}, ["hydra.run.dir=''", "current directory"]),
        ([f"hydra.run.dir=/proc/flexnet-{os.getpid()}"], {}, ["/proc"]),
        ([f"hydra.run.dir={tmp / 'afile' / 'out'}"], {}, ["afile is a file"]),
        ([f"hydra.run.dir={tmp / 'afile'}"], {}, ["is a file"]),
        ([f"hydra.run.dir={tmp / 'loop1' / 'out'}"], {}, ["symlink loop"]),
        ([f"hydra.run.dir={emcdir}"], {}, ["emc.json", "not a plain file"]),
        ([f"hydra.run.dir={fitsdir}"], {}, ["fits.jsonl", "not a plain file"]),
        ([f"hydra.run.dir={logdir}"], {}, ["flexnet.log", "not a plain file"]),
        ([f"hydra.run.dir={sweep}"], {}, ["sweep directory"]),  # a single run into a sweep's directory
        ([f"hydra.run.dir={tmp / 'new'}"], {"FLEXNET_CACHE": str(tmp / "afile")}, ["FLEXNET_CACHE", "is a file"]),
        ([f"hydra.run.dir={tmp / 'new'}"], {"FLEXNET_CACHE": str(tmp / "loop1")}, ["FLEXNET_CACHE", "symlink loop"]),
        ([f"hydra.run.dir={tmp / 'new'}"], {"FLEXNET_CACHE": f"/proc/flexnet-{os.getpid()}"}, ["FLEXNET_CACHE", "/proc"]),
        (["-m", f"hydra.sweep.dir={tmp / 'afile'}"], {}, ["hydra.sweep.dir", "is a file"]),
        (["--cfg", "job", "-m"], {}, ["-m and --cfg", "only one of"]),
    ]


@pytest.mark.slow  # 14 refused runs, ~3 s each
def test_unusable_paths_are_refused_in_one_line_before_anything_runs(tmp_path):
    """Output and cache paths that are a file, a symlink loop, under /proc, result files that are
    directories, a run into a sweep directory, Hydra's mode flags combined: one line, exit 2, within
    seconds (before data generation), and nothing written anywhere."""
    cases = _path_cases(tmp_path)
    for args, env, words in cases:
        before = _snapshot(tmp_path)
        t0 = time.monotonic()
        p = run_cli([*FAST, *args], cwd=tmp_path, env=env)
        _refused(p, *words)
        assert time.monotonic() - t0 < 30, args
        assert _snapshot(tmp_path) == before, args
        assert not (tmp_path / "new").exists() and not list(tmp_path.glob("outputs")), args


@pytest.mark.slow  # ~3 s
def test_slurm_without_its_commands_is_one_line(tmp_path):
    env = dict(PATH=str(tmp_path))  # sys.executable is absolute: no sbatch, srun or sacct on this PATH
    p = run_cli(["-m", "hydra/launcher=slurm", *FAST, f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path, env=env)
    _refused(p, "hydra/launcher=slurm", "sbatch")
    assert not (tmp_path / "s" / "multirun.yaml").exists()


@pytest.mark.slow  # ~10 s
def test_a_model_too_large_for_memory_is_refused_with_the_estimate(tmp_path):
    """A 5e7-parameter MLP under an address-space limit 256 MiB above what the CLI itself maps: refused
    before the model is built (it used to start and die with `can't allocate memory`), with the estimate."""
    import resource

    probe = subprocess.run([sys.executable, "-c", "import torch, hydra, flexnet.pipeline, flexnet.__main__; "
                            "print(open('/proc/self/status').read().split('VmSize:')[1].split()[0])"],
                           env=_env(), capture_output=True, text=True, check=True)
    limit_bytes = int(probe.stdout.strip()) * 1024 + (256 << 20)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "flexnet", *FAST, "scaling.params=5e7",
                        f"hydra.run.dir={tmp_path / 'big'}"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=300, preexec_fn=limit)
    line = _refused(p, "scaling.params=5e+07", "0.6 GiB", "ulimit -v")
    assert time.monotonic() - t0 < 60, line
    assert not (tmp_path / "big").exists()


# ------------------------------------------------------------------ sweeps: one line for every refusal

@pytest.mark.slow  # ~4 s (it used to start every job, ~17 s each, and end in a 40-line traceback)
def test_a_sweep_with_a_bad_job_is_refused_before_any_job_starts(tmp_path):
    sweep = tmp_path / "sweep"
    t0 = time.monotonic()
    p = run_cli(["-m", *FAST, "scaling.params=300,1e12", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    line = _refused(p, "scaling.params", "sweep job #1")
    assert time.monotonic() - t0 < 30, line
    assert not (sweep / "multirun.yaml").exists() and not (sweep / "0").exists() and not (sweep / ".submitit").exists()
    p = run_cli(["-m", *FAST, "train.epochs=abc", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    _refused(p, "train.epochs='abc'")


def _plant_one_label_cache(cache: Path) -> Path:
    """Generate the FAST mnist1d set into `cache`, then set every training label to 0 (as an edited
    cache of an older flexnet, without a checksum, would be)."""
    import torch

    from flexnet.data import load_dataset

    old = os.environ.get("FLEXNET_CACHE")
    os.environ["FLEXNET_CACHE"] = str(cache)
    try:
        load_dataset({"name": "mnist1d", "num_samples": 1200})
    finally:
        os.environ["FLEXNET_CACHE"] = old or ""
    (f,) = cache.glob("mnist1d-*.pt")
    d = torch.load(f, weights_only=True)
    d.pop("sha256", None)
    d["y"] = torch.zeros_like(d["y"])
    torch.save(d, f)
    return f


@pytest.mark.slow  # ~40 s: two jobs of the local launcher start, load the data and are refused
def test_a_job_refused_under_the_local_launcher_ends_the_sweep_in_one_line(tmp_path):
    cache = tmp_path / "cache"
    _plant_one_label_cache(cache)
    sweep = tmp_path / "sweep"
    p = run_cli(["-m", *FAST, "scaling.params=300,400", f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                env={"FLEXNET_CACHE": str(cache)})
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("flexnet: error: 2 of 2 jobs of the sweep failed"), p.stderr
    assert "class counts" in lines[0] and p.returncode == 1
    for j in ("0", "1"):
        assert not (sweep / j / "emc.json").exists() and "class counts" in (sweep / j / "error.txt").read_text()


# ------------------------------------------------------------------ meaningless data

def test_meaningless_data_is_refused(tmp_path):
    """A one-label CSV, a cache whose labels were all set to 0 (no checksum: its histogram), a cache
    edited under its checksum, one class kept by dataset.classes: one line each, no measurement."""
    import torch

    from flexnet.data import load_dataset
    from flexnet.errors import ConfigError
    from flexnet.schema import validate_config

    rows = ["a,b,label"] + [f"{i},{i % 7},yes" for i in range(240)]
    (tmp_path / "one.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ConfigError) as e:
        load_dataset({"name": "adult", "root": str(tmp_path), "file": "one.csv", "target": "label"})
    assert "single class" in str(e.value) and "\n" not in str(e.value)

    f = _plant_one_label_cache(tmp_path / "cache")
    os.environ["FLEXNET_CACHE"], old = str(tmp_path / "cache"), os.environ["FLEXNET_CACHE"]
    try:
        with pytest.raises(ConfigError) as e:
            load_dataset({"name": "mnist1d", "num_samples": 1200})
        assert str(f) in str(e.value) and "class counts" in str(e.value)
        f.unlink()
        load_dataset({"name": "mnist1d", "num_samples": 1200})  # generated again, with its checksum
        d = torch.load(f, weights_only=True)
        assert isinstance(d.get("sha256"), str)
        d["y"][:50] = (d["y"][:50] + 1) % 10  # a small edit keeps the histogram plausible ...
        torch.save(d, f)
        with pytest.raises(ConfigError) as e:  # ... but not the checksum
            load_dataset({"name": "mnist1d", "num_samples": 1200})
        assert "checksum" in str(e.value)
    finally:
        os.environ["FLEXNET_CACHE"] = old
    with pytest.raises(ConfigError) as e:
        validate_config(compose(["dataset.classes=[3]"]))
    assert str(e.value).startswith("dataset.classes=[3]:")


# ------------------------------------------------------------------ a finished result is not replaced

def _finished(d: Path, cfg: dict) -> None:
    from flexnet.records import result_hash

    d.mkdir(parents=True)
    (d / "emc.json").write_text(json.dumps({"emc": 26, "params": {"actual": 300}, "config": cfg}))
    (d / "fits.jsonl").write_text(json.dumps({"n": 16, "attempt": 0, "status": "fitted",
                                              "config_hash": result_hash(cfg)}) + "\n")


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _set(cfg: dict, key: str, value) -> dict:
    import copy

    cfg = copy.deepcopy(cfg)
    node = cfg
    *path, last = key.split(".")
    for k in path:
        node = node[k]
    node[last] = value
    return cfg


def _other(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + 1
    if isinstance(v, float):
        return v * 1.5 + 0.125
    if isinstance(v, list):
        return [*v, v[-1] if v else 1]
    if v is None:
        return 7
    return f"{v}-other"


def test_every_key_outside_the_allowlist_counts(tmp_path):
    """Walk every key of the composed config (a few options of each group, so every option's keys are
    walked): the journal hash changes with each key but the result-neutral allowlist and the explicit
    attempt-neutral keys; and a finished emc.json is never replaced by a run that differs in any key
    but the result-neutral ones, except an extension (train.caps extended, search.trials increased)."""
    from flexnet import outdir as od
    from flexnet.errors import ConfigError
    from flexnet.records import ATTEMPT_NEUTRAL_KEYS, RESULT_NEUTRAL_KEYS, result_hash

    attempt_neutral = ("search.trials", "search.trial_workers", "search.growth", "train.caps")
    assert set(ATTEMPT_NEUTRAL_KEYS) == set(attempt_neutral)  # short and explicit: widening it is a decision
    assert set(RESULT_NEUTRAL_KEYS) == {"logger", "threads", "hydra", "curve", "progress"}

    def neutral(k: str) -> bool:
        return any(k == n or k.startswith(n + ".") for n in RESULT_NEUTRAL_KEYS)

    walked = set()
    for overrides in ([], ["search=linear", "optimizer=adam", "regularizer=sam", "reparam=subspace",
                           "labeling=corrupt", "logger=wandb"], ["search=fixed", "arch=cnn", "dataset=gaussian"]):
        base = compose(overrides)
        h0 = result_hash(base)
        d = tmp_path / f"f{len(walked)}"
        _finished(d, base)
        for key, value in _leaves(base).items():
            walked.add(key)
            changed = _set(base, key, _other(value))
            if neutral(key):
                assert result_hash(changed) == h0, key
                assert od.check_claim(d, changed, result_hash, False, "hydra.run.dir") == "resume", key
                continue
            if key not in attempt_neutral:
                assert result_hash(changed) != h0, f"{key} is treated as result-neutral by the journal hash"
            if key in ("train.caps", "search.trials"):
                assert od.check_claim(d, changed, result_hash, False, "hydra.run.dir") == "extend", key
                continue
            with pytest.raises(ConfigError, match="different configuration"):
                od.check_claim(d, changed, result_hash, False, "hydra.run.dir")
            assert od.check_claim(d, changed, result_hash, True, "hydra.run.dir") == "fresh"
    assert {"search.growth", "search.trial_workers", "optimizer.lr", "seed", "logger.name"} <= walked


def test_a_finished_result_is_extended_only_by_more_caps_or_trials(tmp_path):
    from flexnet import outdir as od
    from flexnet.errors import ConfigError
    from flexnet.records import result_hash

    base = _set(compose([]), "train.caps", [5000, 10000])
    d = tmp_path / "run"
    _finished(d, base)
    old = (d / "emc.json").read_bytes()
    for bad in ([5000], [5000, 20000], [10000, 20000], [2500, 5000, 10000]):  # shorter, replaced, reordered
        with pytest.raises(ConfigError, match="train.caps"):
            od.check_claim(d, _set(base, "train.caps", bad), result_hash, False, "hydra.run.dir")
    with pytest.raises(ConfigError, match="search.trials"):
        od.check_claim(d, _set(base, "search.trials", 0), result_hash, False, "hydra.run.dir")
    assert od.claim(d, _set(base, "train.caps", [5000, 10000, 20000]), result_hash, False, "hydra.run.dir") == "extend"
    kept = list(d.glob("emc.*.json"))
    assert len(kept) == 1 and kept[0].read_bytes() == old and (d / "emc.json").read_bytes() == old


@pytest.mark.slow  # a finished run, then 2 CLI runs: ~15 s
def test_rerun_of_a_finished_dir_with_another_search_rule_is_refused(tmp_path):
    d = tmp_path / "run"
    p = run_cli([*FAST, f"hydra.run.dir={d}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    before = _snapshot(d)
    p = run_cli([*FAST, "search.growth=double", f"hydra.run.dir={d}"], cwd=tmp_path)
    _refused(p, "different configuration", "search.growth", "+fresh=true")
    assert _snapshot(d) == before
    p = run_cli([*FAST, "search.growth=double", "+fresh=true", f"hydra.run.dir={d}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert [json.loads((m / "emc.json").read_text())["config"]["search"]["growth"] for m in d.glob("replaced-*")] \
        == ["fit_time"]


# ------------------------------------------------------------------ signals and orphans

@pytest.mark.slow  # ~6 s
def test_sigterm_ends_like_ctrl_c(tmp_path):
    d = tmp_path / "run"
    long = [o for o in MID if not o.startswith("train.min_steps=")] + ["train.min_steps=1000000"]
    p = _start([*long, f"hydra.run.dir={d}"], tmp_path)
    try:
        _wait_for(lambda: _lines(d / "fits.jsonl") >= 1 or p.poll() is not None)
        done = _lines(d / "fits.jsonl")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143 and "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("flexnet: terminated (SIGTERM): "), err
    assert f"hydra.run.dir={d}" in lines[0]
    assert _lines(d / "fits.jsonl") >= done and all("status" in r for r in read_jsonl(d / "fits.jsonl"))
    assert not (d / "emc.json").exists() and not (d / "error.txt").exists()


def _sweep_processes(sweep: Path) -> list:
    left = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(sweep).encode() in cmd.read_bytes():
                left.append(cmd.parent.name)
        except OSError:
            pass
    return left


@pytest.mark.slow  # ~60 s: a parallel sweep started twice and killed, then resumed
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_sweep_jobs_die_with_their_parent_and_resume_cleanly(tmp_path, how):
    """-m (local launcher): the sweep's process killed (kill -9) or terminated: its jobs stop within
    seconds (no orphan goes on writing), SIGTERM ends the sweep with one line (exit 143); the resumed
    sweep finishes and no finished job carries an error.txt."""
    sweep = tmp_path / "sweep"
    args = ["-m", *MID, "scaling.params=300,400", f"hydra.sweep.dir={sweep}"]
    p = _start(args, tmp_path)
    try:
        _wait_for(lambda: _lines(sweep / "0" / "fits.jsonl") >= 1 or p.poll() is not None, timeout=120)
        assert p.poll() is None, p.communicate()[1][-3000:]
        p.send_signal(how)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    if how == signal.SIGTERM:
        assert p.returncode == 143 and "Traceback" not in err, err[-3000:]
        line = [l for l in err.splitlines() if l.startswith("flexnet: ")]
        assert len(line) == 1 and line[0].startswith("flexnet: terminated (SIGTERM): "), err[-3000:]
    _wait_for(lambda: not _sweep_processes(sweep), timeout=20)  # the jobs went with their parent
    journalled = _lines(sweep / "0" / "fits.jsonl")
    time.sleep(2)
    assert _lines(sweep / "0" / "fits.jsonl") == journalled  # nothing writes there any more
    r = run_cli(args, cwd=tmp_path, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    for j in ("0", "1"):
        assert (sweep / j / "emc.json").exists() and not (sweep / j / "error.txt").exists()


# ------------------------------------------------------------------ the journal: records not taken on trust

def test_journal_records_are_checked_field_by_field(tmp_path, capsys):
    """A hand-written line without train_acc, a duplicated JSON key, seconds 1e300, epochs -5, steps
    "many", a bad rung, cap_steps 0: none is replayed; each is set aside with its reason."""
    from flexnet.records import Journal

    good = {"n": 16, "attempt": 0, "status": "fitted", "fitted": True, "train_acc": 1.0, "seconds": 0.5,
            "epochs": 5, "steps": 40, "cost": 80.0, "cap_steps": 5000, "fitted_step": 40, "resumed_from_step": None,
            "rungs": [{"cap": 5000, "step": 40, "train_acc": 1.0, "train_loss": 0.01}], "code_hash": None,
            "config_hash": "h"}
    bad = [({k: v for k, v in good.items() if k != "train_acc"}, "train_acc"),
           ({**good, "seconds": 1e300}, "seconds"),
           ({**good, "epochs": -5}, "epochs"),
           ({**good, "steps": "many"}, "steps"),
           ({**good, "cap_steps": 0}, "cap_steps"),
           ({**good, "fitted_step": -1}, "fitted_step"),
           ({**good, "rungs": [{"cap": 5000, "step": 40, "train_acc": 2.0}]}, "rungs"),
           ({**good, "code_hash": 5}, "code_hash")]
    lines = [json.dumps(good)] + [json.dumps({**r, "n": 32 + i}) for i, (r, _) in enumerate(bad)]
    lines.append(json.dumps({**good, "n": 99}).replace('"n": 99', '"n": 99, "n": 4'))  # duplicated key
    (tmp_path / "fits.jsonl").write_text("\n".join(lines) + "\n")
    j = Journal(tmp_path / "fits.jsonl", "h")
    assert set(j.replayed) == {(0, 16, 0)}
    reasons = [why for _, why in j.rejected]
    assert len(reasons) == len(bad) + 1
    for why, (_, key) in zip(reasons, bad):
        assert key in why, (key, why)
    assert "appears twice" in reasons[-1]


def test_a_full_disk_leaves_no_partial_journal_line(tmp_path):
    """Appends under a 2 kB file-size limit (what a full disk does to a write): the one that does not fit
    raises OSError naming the journal and leaves the file ending on a whole record."""
    code = f"""
import resource, json
from flexnet.records import Journal
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
j = Journal({str(tmp_path / 'fits.jsonl')!r}, "h")
try:
    for n in range(1, 100):
        j.append({{"n": n, "attempt": 0, "status": "failed", "train_acc": 0.5, "pad": "x" * 150}})
except OSError as e:
    print("ERR", e.filename, e.strerror)
"""
    p = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert p.stdout.startswith("ERR") and "fits.jsonl" in p.stdout, (p.stdout, p.stderr)
    raw = (tmp_path / "fits.jsonl").read_bytes()
    assert raw.endswith(b"\n") and all(json.loads(l)["n"] for l in raw.splitlines())


@pytest.mark.slow  # one finished run, then the report: ~15 s
def test_report_skips_a_malformed_emc_json_with_one_warning(tmp_path):
    sweep = tmp_path / "sweep"
    p = run_cli([*FAST, f"hydra.run.dir={sweep / '0'}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    good = json.loads((sweep / "0" / "emc.json").read_text())
    for j, edit in (("1", {"bracket": 5}), ("2", {"emc": float("nan")})):
        (sweep / j).mkdir()
        (sweep / j / "emc.json").write_text(json.dumps({**good, **edit}))
    r = subprocess.run([sys.executable, "-m", "flexnet.report", str(sweep), "--out", str(tmp_path / "rep"),
                        "--bootstrap", "20"], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    warn = [l for l in r.stderr.splitlines() if l.startswith("flexnet.report: warning: skipped")]
    assert len(warn) == 2 and any(str(sweep / "1") in w and "bracket" in w for w in warn), r.stderr
    assert "1 job(s)" in r.stdout and (tmp_path / "rep").is_dir()
