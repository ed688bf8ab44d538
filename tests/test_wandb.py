"""logger=wandb in offline mode (no network): a real run directory with EMC in its summary."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from flexnet.config import compose
from flexnet.loggers import (Logger, config_tags, make_logger, read_offline_run, sweep_group_name, wandb_mode,
                             wandb_records, wandb_run_id)
from flexnet.loggers import main as inspect_offline
from flexnet.pipeline import run_job

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2 as pb  # noqa: E402

TINY = ["dataset=digits", "train.caps=null", "train.epochs=5", "train.min_steps=20", "search.start=16",
        "search.resolution=0.5", "convergence.hessian=false", "scaling.params=2000"]

def read_wandb_records(path: Path) -> list:
    """Records of a `.wandb` transaction log (flexnet's reader, which `python -m flexnet.loggers` uses)."""
    return wandb_records(path)


def _key(it) -> str:
    return "/".join(it.nested_key) if it.nested_key else it.key


def finished_records(path: Path, timeout: float = 20.0) -> list:
    """The run's records once its exit record is on disk (the writer may trail run.finish())."""
    import time

    t0 = time.monotonic()
    while True:
        recs = read_wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in recs) or time.monotonic() - t0 > timeout:
            time.sleep(0.2)
            return read_wandb_records(path)
        time.sleep(0.2)


def _summary(records) -> dict:
    s: dict = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            for it in r.summary.update:
                s[_key(it)] = json.loads(it.value_json)
    return s


def _cfg(overrides):
    return compose(overrides)


def test_offline_run_summary_holds_emc_and_params(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: any network use would fail
    cfg = _cfg(TINY + ["logger=wandb", "logger.tags=[smoke]"])
    sweep = tmp_path / "multirun" / "2026-01-02" / "03-04-05-678"
    outdir = sweep / "0"
    result = run_job(cfg, outdir, {"sweep_dir": str(sweep), "num": 0})

    runs = list((outdir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    files = list(runs[0].glob("run-*.wandb"))
    assert len(files) == 1
    expected_id = wandb_run_id(outdir, {"sweep_dir": str(sweep), "num": 0})
    assert files[0].name == f"run-{expected_id}.wandb"
    records = finished_records(files[0])

    summary = _summary(records)
    assert summary["emc"] == result["emc"] > 0
    assert summary["params.actual"] == result["params"]["actual"]
    assert summary["params.target"] == result["params"]["target"] == 2000
    assert summary["fits"] == result["fits"]
    assert summary["bracket.fitted"] == result["bracket"]["fitted"]

    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.run_group == "2026-01-02_03-04-05-678"
    assert "labeling:semantic" in run.tags and "dataset:digits" in run.tags and "smoke" in run.tags
    conf_keys = {it.key for r in records if r.WhichOneof("record_type") == "config" for it in r.config.update}
    conf_keys |= {it.key for it in run.config.update}
    assert {"scaling.params", "labeling.name", "train.epochs"} <= conf_keys

    # one history row per fit attempt (+ the EMC point), exit code 0 recorded
    hist = [r.history for r in records if r.WhichOneof("record_type") == "history"]
    attempt_rows = [h for h in hist if any(_key(it) == "fit/n" for it in h.item)]
    assert len(attempt_rows) == result["fits"]
    exits = [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"]
    assert exits == [0]
    metrics = {r.metric.name: r.metric.step_metric for r in records if r.WhichOneof("record_type") == "metric"}
    assert metrics.get("emc") == "params/actual"
    assert f"wandb sync {runs[0]}" in capsys.readouterr().out


def test_failing_job_finishes_run_with_exit_code_1(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = _cfg(TINY + ["logger=wandb"])
    # an error after the logger started: a calibration subset larger than the data (only checkable
    # once the data is loaded; every value's own type and range is checked before anything starts)
    cfg["convergence"].update(grad_tol="auto", calibration_n=10**7)
    from flexnet.errors import ConfigError

    with pytest.raises(ConfigError, match="convergence.calibration_n"):
        run_job(cfg, tmp_path / "job", {})
    files = list((tmp_path / "job" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    exits = [r.exit.exit_code for r in finished_records(files[0]) if r.WhichOneof("record_type") == "exit"]
    assert exits == [1]
    assert not (tmp_path / "job" / "emc.json").exists()


def test_requeued_job_resumes_same_run_id(tmp_path):
    ji = {"sweep_dir": str(tmp_path / "multirun" / "x"), "num": 3}
    a = wandb_run_id(tmp_path / "elsewhere", ji)
    assert a == wandb_run_id(tmp_path / "other", dict(ji))
    assert a != wandb_run_id(tmp_path, dict(ji, num=4))
    assert wandb_run_id(tmp_path / "a", {}) != wandb_run_id(tmp_path / "b", {})


def test_mode_and_group_rules(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    assert wandb_mode("disabled") == "disabled"
    assert sweep_group_name("multirun/2026-01-02/03-04-05") == "2026-01-02_03-04-05"
    assert sweep_group_name("/tmp/sweeps/widths") == "widths"
    assert sweep_group_name(None) is None
    tags = config_tags({"dataset": {"name": "digits"}, "labeling": {"name": "corrupt", "p": 0.2}}, ["mine"])
    assert tags == ["dataset:digits", "labeling:corrupt", "mine"]


def test_disabled_mode_writes_nothing_and_none_logger(tmp_path):
    lg = make_logger({"name": "wandb", "mode": "disabled"}, {"seed": 0}, tmp_path / "d")
    lg.log_attempt({"n": 4, "attempt": 0, "fitted": True})
    lg.log_summary({"emc": 4, "params": {"actual": 10, "target": 10}})
    lg.finish(0)
    assert not (tmp_path / "d" / "wandb").exists() or not any((tmp_path / "d" / "wandb").glob("*run-*"))
    assert type(make_logger({"name": "none"}, {}, tmp_path)) is Logger


@pytest.mark.slow  # ~6 s here
def test_unreachable_online_server_falls_back_without_failing(tmp_path, monkeypatch):
    """Online requested, server unreachable: the run is not failed and does not hang."""
    import time

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    t0 = time.perf_counter()
    lg = make_logger({"name": "wandb", "mode": "online", "init_timeout": 5, "finish_timeout": 5},
                     {"seed": 0}, tmp_path / "o", {"sweep_dir": str(tmp_path), "num": 0})
    lg.log_summary({"emc": 7, "params": {"actual": 10, "target": 10}})
    lg.finish(0)
    assert time.perf_counter() - t0 < 60
    offline = list((tmp_path / "o" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1  # fell back to offline (not disabled): the summary is on disk for `wandb sync`
    assert _summary(finished_records(offline[0]))["emc"] == 7


@pytest.mark.slow  # ~6 s here (W&B's offline service starts and finishes)
def test_offline_run_has_per_epoch_training_curves_and_a_readable_name(tmp_path, monkeypatch, capsys):
    """With logger.every_steps=1 every epoch of every attempt is a history row (train/loss,
    train/online_acc, train/lr, ...) against the job's cumulative optimizer step (the default throttles
    them: tests/test_first_hour_loggers.py); every epoch is also in files/epochs.csv, beside the run's
    config and summary as readable files; a single run is named after its model and data;
    `python -m flexnet.loggers <offline run dir>` prints them back without uploading anything."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    # one size, up to 4 attempts (random labels at n = 32 within 20 steps: they fail)
    tiny = [o for o in TINY if not o.startswith("search.resolution")]  # not a key of search=fixed
    cfg = _cfg(tiny + ["logger=wandb", "logger.every_steps=1", "labeling=random_labels", "progress=false",
                       "search=fixed", "search.n=32", "curve=false"])
    outdir = tmp_path / "run"
    result = run_job(cfg, outdir, {})
    run_dir = next((outdir / "wandb").glob("offline-run-*"))
    records = finished_records(next(run_dir.glob("run-*.wandb")))
    metrics = {r.metric.name or r.metric.glob_name: r.metric.step_metric for r in records
               if r.WhichOneof("record_type") == "metric"}
    assert metrics.get("train/*") == "train/global_step"
    run = read_offline_run(run_dir)
    assert run["name"] == "mlp-2000p-random_labels-sgd"
    rows = [r for r in run["history"] if "train/loss" in r]
    fits = [json.loads(l) for l in (outdir / "fits.jsonl").read_text().splitlines()]
    assert len(rows) == sum(f["epochs"] for f in fits)  # one row per epoch of every attempt
    assert {"train/n", "train/attempt", "train/epoch", "train/step", "train/online_acc", "train/lr"} <= set(rows[0])
    steps = [r["train/global_step"] for r in rows]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one increasing axis over the attempts
    assert steps[-1] == sum(f["steps"] for f in fits)
    last = [r for r in rows if (r["train/n"], r["train/attempt"]) == (fits[-1]["n"], fits[-1]["attempt"])]
    assert last[-1]["train/epoch"] == fits[-1]["epochs"]
    assert run["summary"]["emc"] == result["emc"]
    files = run_dir / "files"
    assert yaml.safe_load((files / "flexnet_config.yaml").read_text())["search"]["n"] == 32
    assert json.loads((files / "flexnet_summary.json").read_text())["emc"] == result["emc"]
    with (files / "epochs.csv").open() as f:
        curve = list(csv.DictReader(f))
    assert [int(r["global_step"]) for r in curve] == steps  # the whole curve, once
    capsys.readouterr()
    assert inspect_offline([str(run_dir)]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert lines[:-1] == run["history"] and lines[-1]["summary"]["emc"] == result["emc"]
    assert inspect_offline([str(tmp_path)]) == 2  # not a run: one line on stderr
    assert capsys.readouterr().err.startswith("flexnet.loggers: error: ")
