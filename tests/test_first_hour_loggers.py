"""Issue 33, points 4 and 5: loggers that do not flood (EpochThrottle), logger=csv read by the report,
log_emc.png as points with intervals on a log axis, tables without option-only columns."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import compose, run_cli


def test_epoch_throttle_keeps_first_last_every_k_steps_and_lr_changes():
    from flexnet.loggers import EpochThrottle

    t = EpochThrottle(every_steps=100)
    sent = []

    def epoch(n, a, step, lr):
        sent.extend((r["n"], r["attempt"], r["step"]) for r in t.offer({"n": n, "attempt": a, "step": step, "lr": lr}))

    for step in range(10, 351, 10):  # attempt 0: 35 epochs of 10 steps, the lr halves at step 220
        epoch(64, 0, step, 0.1 if step < 220 else 0.05)
    sent.extend((r["n"], r["attempt"], r["step"]) for r in t.end())  # the attempt ends (log_attempt)
    for step in range(10, 41, 10):  # attempt 1: 4 epochs, no end() before the next attempt's first epoch
        epoch(64, 1, step, 0.1)
    epoch(96, 0, 10, 0.1)
    assert sent == [(64, 0, 10), (64, 0, 110), (64, 0, 210), (64, 0, 220), (64, 0, 320), (64, 0, 350),
                    (64, 1, 10), (64, 1, 40), (96, 0, 10)]
    assert t.end() == []


@pytest.mark.slow  # ~12 s: a real job with logger=csv, then flexnet.report on it
def test_csv_logger_writes_plain_files_that_the_report_reads(tmp_path):
    from flexnet.analysis.build import build_report, write_report
    from flexnet.loggers import read_csv_log

    out = tmp_path / "run"
    p = run_cli(["experiment=debug", "train.caps=[100,200]", "logger=csv", "logger.every_steps=50",
                 f"hydra.run.dir={out}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "emc.json").read_text())
    log = read_csv_log(out)
    assert log["config"]["dataset"]["num_samples"] == 1200 and "hydra" not in log["config"]
    assert log["summary"]["emc"] == res["emc"] and "config" not in log["summary"]
    fits = [json.loads(l) for l in (out / "fits.jsonl").read_text().splitlines()]
    assert len(log["attempts"]) == len(fits)  # one row per attempt trained
    assert [(a["n"], a["attempt"], a["status"]) for a in log["attempts"]] == [(f["n"], f["attempt"], f["status"]) for f in fits]
    ep = log["epochs"]
    attempts = {(f["n"], f["attempt"]) for f in fits}
    assert {(r["n"], r["attempt"]) for r in ep} == attempts  # every attempt has rows ...
    assert len(ep) < sum(f["epochs"] for f in fits) / 2  # ... but not one per epoch
    assert all(isinstance(r["train_loss"], float) and isinstance(r["step"], int) for r in ep)
    rep = write_report(build_report([out], n_boot=50))
    assert (rep.out / "training.png") in rep.figures
    job = rep.collection.jobs[0]
    assert job.train_log == ep


def _job(path, emc, failed, seed=0, lr=0.1, opt="sgd", params=1000, stable=True, cap=20000, extra=None):
    res = {"emc": emc, "bracket": {"fitted": emc, "failed": failed}, "params": {"target": params, "actual": params},
           "search": "bisect", "converged": False, "budget_stable": stable, "emc_cap_steps": cap, "fits": 10,
           "config": {"seed": seed, "optimizer": {"name": opt, "lr": lr, **(extra or {})}, "dataset": {"name": "mnist1d"},
                      "labeling": {"name": "semantic"}, "arch": {"name": "mlp"}, "scaling": {"name": "width", "params": params},
                      "search": {"name": "bisect"}}}
    path.mkdir(parents=True)
    (path / "emc.json").write_text(json.dumps(res))


def test_log_emc_is_points_with_intervals_on_a_log_axis(tmp_path):
    """Two arms whose EMCs differ by 7% (813 and 871, log10 2.91 and 2.94): points on a log axis, one
    seed's interval is its bracket (no SE bar), several seeds' is the SE; budget-unstable is hollow; lr
    and cap in the labels; the summary table has no option-only columns (momentum beside adam)."""
    from flexnet.analysis.build import build_report, write_report
    from flexnet.analysis.figures import log_emc_points

    _job(tmp_path / "0", 813, 853, lr=0.1, opt="sgd", extra={"momentum": 0.9})
    for s, e in enumerate((860, 871, 882)):
        _job(tmp_path / f"a{s}", e, e + 40, seed=s, lr=0.001, opt="adam", stable=s != 1, cap=10000,
             extra={"betas": [0.9, 0.999]})
    rep = write_report(build_report([tmp_path], n_boot=50))
    pts = {p["label"]: p for p in log_emc_points({n: g for n, g in rep.groups.items() if g["emc_jobs"]})}
    sgd = next(p for l, p in pts.items() if "sgd" in l)
    adam = next(p for l, p in pts.items() if "adam" in l)
    assert sgd["interval"] == "bracket" and (sgd["lo"], sgd["hi"]) == pytest.approx((813, 853))
    assert adam["interval"] == "SE" and adam["lo"] < adam["emc"] < adam["hi"]
    assert adam["emc"] == pytest.approx(10 ** (sum(math.log10(e) for e in (860, 871, 882)) / 3))
    assert sgd["budget_stable"] and not adam["budget_stable"]
    assert sgd["note"] == "lr 0.1, cap 20k steps" and adam["note"] == "lr 0.001, cap 10k steps"
    text = rep.figure_text["log_emc.png"]
    assert "hollow: budget-unstable" in text["title"] and "±SE over trials" in text["title"]
    import matplotlib.image as mpimg

    assert mpimg.imread(rep.out / "log_emc.png").shape[0] > 100
    md = (rep.out / "emc.md").read_text()
    jobs_header = next(l for l in md.splitlines() if l.startswith("| group |") and "params_target" in l)
    assert "momentum" not in jobs_header and "betas" not in jobs_header
    assert "optimizer.lr" in jobs_header or "lr" in jobs_header


def test_differing_keys_drops_keys_that_only_come_with_an_option():
    from flexnet.analysis.collect import Job
    from flexnet.analysis.labels import differing_keys

    def job(**cfg):
        return Job(Path("."), {}, cfg)

    jobs = [job(**{"optimizer.name": "sgd", "optimizer.momentum": 0.9, "optimizer.lr": 0.1}),
            job(**{"optimizer.name": "adam", "optimizer.betas": "[0.9, 0.999]", "optimizer.lr": 0.001})]
    keys = ["optimizer.betas", "optimizer.lr", "optimizer.momentum", "optimizer.name"]
    assert differing_keys(jobs, keys) == ["optimizer.lr", "optimizer.name"]
    jobs.append(job(**{"optimizer.name": "sgd", "optimizer.momentum": 0.0, "optimizer.lr": 0.1}))
    assert differing_keys(jobs, keys) == ["optimizer.lr", "optimizer.momentum", "optimizer.name"]  # sgd arms differ


def test_sweep_table_names_the_ladders_caps(tmp_path):
    """The EMC-per-job table's header line says the ladder's rungs (it said the unused epoch cap)."""
    from flexnet.sweep_end import summary_table

    for k in range(2):
        _job(tmp_path / str(k), 50 + k, 60, params=300 + k)
        p = tmp_path / str(k) / "emc.json"
        r = json.loads(p.read_text())
        r["convergence"] = {"cap": {"caps": [100, 200, 400], "epochs": 2000, "min_steps": 20000}}
        p.write_text(json.dumps(r))
    head = summary_table(tmp_path).splitlines()[0]
    assert head.endswith("caps 100, 200, 400 steps") and "2000 epochs" not in head
