"""flexnet.report on sweep trees of synthetic emc.json / curve.jsonl files in the real layout."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr

import flexnet
from flexnet.analysis.build import build_report, write_report
from flexnet.analysis.cli import main as report_main
from flexnet.analysis.collect import corruption_level
from flexnet.analysis.figures import CAP_FIGURE, FIGURES
from flexnet.analysis.labels import short_label
from flexnet.analysis.stats import cap_series, fit_power_law, time_to_fit
from flexnet.analysis.wandb_upload import upload_wandb

PNG_SIG = b"\x89PNG\r\n\x1a\n"
SRC = str(Path(flexnet.__file__).resolve().parents[1])


def make_report(dirs, **kw):
    """The report computed and written (build_report, then write_report), as `python -m flexnet.report` does."""
    return write_report(build_report(dirs, **kw))


def _config(labeling: str, params: float, seed: int, search: str = "bisect", **lab) -> dict:
    return {
        "dataset": {"name": "mnist1d", "num_samples": 4000, "seed": seed},
        "labeling": {"name": labeling, "seed": seed, **lab},
        "arch": {"name": "mlp", "depth": 1, "width": 64, "activation": "relu"},
        "scaling": {"name": "width", "params": params},
        "optimizer": {"name": "sgd", "lr": 0.1, "batch_size": 128},
        "search": {"name": search, "start": 64, "fit_threshold": 1.0, **({"n": 400} if search == "fixed" else {})},
        "seed": seed, "device": "auto", "threads": 1, "curve": "auto",
        "logger": {"name": "none"},
    }


def _result(cfg: dict, emc: int, actual: int, test_acc: float, train_acc: float = 1.0, **kw) -> dict:
    return {"emc": emc, "bracket": {"fitted": emc, "failed": emc + 8}, "lower_bound": False,
            "params": {"target": cfg["scaling"]["params"], "actual": actual}, "fits": 9,
            "cost_sample_epochs": 1.0e5, "seconds": 3.0, "unverified": 1, "unverified_attempts": [],
            "test_accuracy": test_acc, "train_accuracy": train_acc, "best_test_accuracy": test_acc + 0.01,
            "search": cfg["search"]["name"], "device": "cpu", "pool_size": 3600, "num_classes": 10,
            "input_shape": [40], "arch": "mlp", "job": {"num": kw.pop("num", 0), "sweep_dir": kw.pop("sweep", "")},
            "config": cfg, **kw}


# EMC = A * p^B exactly (semantic) and with a different constant (random labels)
SIZES = {500: 520, 1000: 979, 2000: 1999}
B_TRUE = {"semantic": 0.8, "random_labels": 1.0}
A_TRUE = {"semantic": 2.0, "random_labels": 0.2}


def _emc(labeling: str, actual: int, seed: int) -> int:
    return int(round(A_TRUE[labeling] * actual ** B_TRUE[labeling] * (1.0 + 0.05 * seed)))


def _test_acc(labeling: str, actual: int, seed: int) -> float:
    if labeling == "random_labels":
        return 0.1
    return round(0.2 + 0.03 * math.log(actual) + 0.013 * seed + 0.007 * (actual % 7), 4)


@pytest.fixture()
def sweep(tmp_path) -> Path:
    """multirun/<date>/<time>/<num>/ with 12 finished jobs, a broken and an unfinished one."""
    root = tmp_path / "multirun" / "2026-01-02" / "10-00-00"
    num = 0
    for labeling in ("semantic", "random_labels"):
        for target, actual in SIZES.items():
            for seed in (0, 1):
                cfg = _config(labeling, target, seed)
                d = root / str(num)
                d.mkdir(parents=True)
                (d / ".hydra").mkdir()
                (d / "fits.jsonl").write_text('{"n": 64, "attempt": 0, "status": "fitted"}\n')
                res = _result(cfg, _emc(labeling, actual, seed), actual, _test_acc(labeling, actual, seed),
                              num=num, sweep=str(root))
                (d / "emc.json").write_text(json.dumps(res))
                num += 1
    broken = root / str(num)
    broken.mkdir()
    (broken / "emc.json").write_text('{"emc": 12, "params": {')  # cut mid-write
    missing = root / str(num + 1)
    (missing / ".hydra").mkdir(parents=True)
    (missing / "fits.jsonl").write_text('{"n": 64, "attempt": 0, "status": "failed"}\n')
    return root


def _curve(n: int, steps_per_epoch: int, epochs: int, fit_epoch) -> list[dict]:
    out = []
    for e in range(1, epochs + 1):
        acc = 1.0 if fit_epoch is not None and e >= fit_epoch else min(0.99, 0.1 + 0.02 * e)
        out.append({"n": n, "attempt": 0, "epoch": e, "step": e * steps_per_epoch,
                    "train_loss": 2.3 / e, "online_acc": acc, "lr": 0.1, "train_acc": acc, "test_acc": 0.3})
    return out


@pytest.fixture()
def fixed_sweep(tmp_path) -> Path:
    """search=fixed jobs with curve.jsonl over corruption levels and two parameter counts."""
    root = tmp_path / "fixed"
    num = 0
    levels = [("semantic", None), ("corrupt", 0.2), ("corrupt", 0.5), ("random_labels", None)]
    for target in (1000, 4000):
        for lab, p in levels:
            for seed in (0, 1):
                cfg = _config(lab, target, seed, search="fixed", **({"p": p} if p is not None else {}))
                d = root / str(num)
                d.mkdir(parents=True)
                level = {"semantic": 0.0, "random_labels": 1.0}.get(lab, p)
                fit_epoch = 5 + int(20 * level) + seed if target == 4000 else (None if level > 0.4 else 30)
                curve = _curve(400, 4, 40, fit_epoch)
                (d / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve) + '{"cut')
                te = 0.3 + 0.6 * level + 0.01 * seed
                res = _result(cfg, 400 if fit_epoch else 0, target, 1 - te, train_acc=1.0 if fit_epoch else 0.9,
                              num=num, sweep=str(root))
                (d / "emc.json").write_text(json.dumps(res))
                num += 1
    return root


def _read_csv(p: Path) -> list[dict]:
    with open(p) as f:
        return list(csv.DictReader(f))


def _assert_png(p: Path) -> None:
    import matplotlib.image as mpimg

    assert p.exists(), p
    assert p.read_bytes()[:8] == PNG_SIG
    img = mpimg.imread(p)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(np.std(img)) > 0.01  # not a blank canvas


def test_csv_numbers_groups_and_listing(sweep):
    rep = make_report([sweep], n_boot=300)
    out = sweep / "report"
    assert rep.out == out
    rows = _read_csv(out / "emc.csv")
    assert len(rows) == 12
    assert rep.by == ["labeling.name"]
    assert set(rep.swept) == {"labeling.name", "scaling.params", "seed"}  # dataset/labeling seed copies dropped
    for r in rows:
        lab, seed, actual = r["labeling.name"], int(r["seed"]), int(r["params_actual"])
        assert SIZES[int(float(r["params_target"]))] == actual
        assert int(r["emc"]) == _emc(lab, actual, seed)
        assert int(r["bracket_failed"]) == int(r["emc"]) + 8
        assert float(r["test_accuracy"]) == pytest.approx(_test_acc(lab, actual, seed))
        if lab == "random_labels":
            assert float(r["bits_per_param"]) == pytest.approx(_emc(lab, actual, seed) * math.log2(10) / actual)
        else:
            assert r["bits_per_param"] == ""
        assert r["group"] == f"labeling={lab}"

    groups = {g["group"]: g for g in _read_csv(out / "groups.csv")}
    assert set(groups) == {"labeling=semantic", "labeling=random_labels"}
    for lab in ("semantic", "random_labels"):
        g = groups[f"labeling={lab}"]
        # independent least squares on log-log over the same 6 jobs
        x = np.log([a for a in SIZES.values() for _ in (0, 1)])
        y = np.log([_emc(lab, a, s) for a in SIZES.values() for s in (0, 1)])
        b_ref = np.polyfit(x, y, 1)[0]
        assert float(g["power_law_b"]) == pytest.approx(b_ref, rel=1e-6)
        assert abs(b_ref - B_TRUE[lab]) < 0.05
        assert float(g["power_law_b_lo95"]) <= b_ref <= float(g["power_law_b_hi95"])
        trials = [np.mean([math.log10(_emc(lab, a, s)) for a in SIZES.values()]) for s in (0, 1)]
        assert float(g["mean_log10_emc"]) == pytest.approx(np.mean(trials))
        assert float(g["mean_log10_emc_se"]) == pytest.approx(np.std(trials, ddof=1) / math.sqrt(2))
    assert float(groups["labeling=random_labels"]["bits_per_param"]) == pytest.approx(np.mean(
        [_emc("random_labels", a, s) * math.log2(10) / a for a in SIZES.values() for s in (0, 1)]))

    md = (out / "emc.md").read_text()
    assert "| labeling=semantic |" in md and "Unfinished jobs" in md and "Unreadable results" in md
    summary = json.loads((out / "report.json").read_text())
    assert summary["unfinished"] == [str((sweep / "13").resolve())]
    assert [Path(b["path"]).parent.name for b in summary["broken"]] == ["12"]


def test_generalization_correlation_matches_scipy(sweep):
    rep = make_report([sweep], n_boot=100)
    gx, gy = [], []
    for actual in SIZES.values():
        for seed in (0, 1):
            sem, rnd = _emc("semantic", actual, seed), _emc("random_labels", actual, seed)
            gy.append(100.0 * (sem - rnd) / rnd)
            gx.append(1.0 - _test_acc("semantic", actual, seed))
    ref = pearsonr(gx, gy)
    assert rep.generalization["r"] == pytest.approx(float(ref[0]), abs=1e-12)
    pts = _read_csv(sweep / "report" / "generalization.csv")
    assert len(pts) == 6
    assert sorted(float(p["emc_increase_pct"]) for p in pts) == pytest.approx(sorted(gy))
    assert f"Pearson r = {ref[0]:.3f}" in (sweep / "report" / "emc.md").read_text()


def test_every_figure_is_a_valid_png(sweep, fixed_sweep, tmp_path):
    out = tmp_path / "both"
    rep = make_report([sweep, fixed_sweep], out=out, n_boot=100)
    names = sorted(p.name for p in rep.figures)
    assert names == sorted(FIGURES)
    for p in rep.figures:
        _assert_png(p)
    # the PNGs are linked from the markdown report
    md = (out / "emc.md").read_text()
    for n in FIGURES:
        assert f"]({n})" in md


def test_fixed_sweep_learning_curve_numbers(fixed_sweep):
    rep = make_report([fixed_sweep], n_boot=50)
    assert {p.name for p in rep.figures} == {"double_descent.png", "learning_curves.png", "time_to_fit.png",
                                             "corruption_test_error.png"}
    jobs = rep.collection.jobs
    assert all(j.curve and len(j.curve) == 40 for j in jobs)  # the cut last line is dropped
    j = next(j for j in jobs if j.target == 4000 and j.labeling == "corrupt" and j.config["labeling.p"] == 0.5
             and j.seed == 1)
    assert corruption_level(j) == 0.5
    assert time_to_fit(j.curve, 1.0) == (5 + 10 + 1) * 4
    assert time_to_fit(_curve(400, 4, 40, None), 1.0) is None
    # double descent per-size mean over seeds: test error
    g = rep.groups["labeling=semantic"]
    s = next(s for s in g["sizes"] if s["target"] == 1000)
    assert s["test_error"] == pytest.approx(np.mean([0.3, 0.31]))
    assert s["test_error_se"] == pytest.approx(np.std([0.3, 0.31], ddof=1) / math.sqrt(2))
    assert all(g["power_law"] is None for g in rep.groups.values())  # no EMC search in a fixed sweep
    assert any("never reached" in n for n in rep.notes)


def test_power_law_exact_and_degenerate():
    p = [100, 200, 400, 800]
    pl = fit_power_law(p, [3 * x ** 0.7 for x in p], n_boot=200)
    assert pl.b == pytest.approx(0.7) and pl.a == pytest.approx(3.0)
    assert pl.b_lo == pytest.approx(0.7) and pl.b_hi == pytest.approx(0.7)
    assert fit_power_law([100, 100], [5, 6]) is None
    assert fit_power_law([100, 200], [0, 0]) is None


@pytest.mark.slow  # ~3 s here
def test_cli_by_key_and_errors(sweep, tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC)
    out = tmp_path / "r"
    cp = subprocess.run([sys.executable, "-m", "flexnet.report", str(sweep), "--by", "labeling", "seed",
                         "--out", str(out), "--bootstrap", "50"], capture_output=True, text=True, env=env)
    assert cp.returncode == 0, cp.stderr
    assert "unfinished" in cp.stdout and "flexnet.report: warning: skipped" in cp.stderr
    groups = {g["group"] for g in _read_csv(out / "groups.csv")}
    assert groups == {f"labeling={l}, seed={s}" for l in ("semantic", "random_labels") for s in (0, 1)}
    cp = subprocess.run([sys.executable, "-m", "flexnet.report", str(sweep), "--by", "nope"],
                        capture_output=True, text=True, env=env)
    assert cp.returncode == 2 and "--by nope" in cp.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    cp = subprocess.run([sys.executable, "-m", "flexnet.report", str(empty)], capture_output=True, text=True, env=env)
    assert cp.returncode == 1 and "no readable emc.json" in cp.stderr


def test_wandb_upload_offline(sweep, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from test_wandb import finished_records

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    rep = make_report([sweep], n_boot=50)
    run_dir = upload_wandb(rep, [sweep])
    assert run_dir is not None and run_dir.name.startswith("offline-run-")
    recs = finished_records(next(run_dir.glob("run-*.wandb")))
    run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
    assert run.run_group == "2026-01-02_10-00-00" and run.job_type == "report"
    keys = {"/".join(it.nested_key) or it.key for r in recs if r.WhichOneof("record_type") == "history"
            for it in r.history.item}
    for prefix in ("emc_curve/", "emc_jobs/", "emc_vs_params_line_table/", "figures/emc_vs_params/"):
        assert any(k.startswith(prefix) for k in keys), (prefix, sorted(keys))


@pytest.mark.slow
def test_cli_sweep_then_report(tmp_path):
    """A real (tiny) Hydra sweep over labelings, then the report on it."""
    env = dict(os.environ, PYTHONPATH=SRC, FLEXNET_CACHE=str(tmp_path / "cache"))
    sweep = tmp_path / "sweep"
    cp = subprocess.run([sys.executable, "-m", "flexnet", "-m", "labeling=semantic,random_labels",
                         "scaling.params=500,1500", "train.caps=null", "train.epochs=5", "train.min_steps=20", "search.start=16",
                         "dataset.num_samples=400", "convergence.hessian=false", "threads=1",
                         f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, env=env, timeout=600)
    assert cp.returncode == 0, cp.stderr[-2000:]
    cp = subprocess.run([sys.executable, "-m", "flexnet.report", str(sweep), "--bootstrap", "50"],
                        capture_output=True, text=True, env=env)
    assert cp.returncode == 0, cp.stderr
    rows = _read_csv(sweep / "report" / "emc.csv")
    assert len(rows) == 4
    for r in rows:
        res = json.loads((sweep / r["job"] / "emc.json").read_text())
        assert int(r["emc"]) == res["emc"] and int(r["params_actual"]) == res["params"]["actual"]
    for name in ("emc_vs_params.png", "log_emc.png", "generalization.png"):
        _assert_png(sweep / "report" / name)


@pytest.mark.slow  # ~3 s here
def test_budget_sweep_report_draws_emc_against_the_cap(tmp_path):
    """A real tiny cap sweep (two caps, both lr policies, trained in-process): emc.json carries the
    convergence certificate, the report draws EMC against the cap with converged vs not, tabulates
    the change per cap, and --converged-only keeps only certified EMCs."""
    from conftest import TINY, compose

    from flexnet.pipeline import run_job

    for policy in ("converge", "fixed"):
        for num, cap in enumerate((40, 160)):
            cfg = compose(TINY + ["labeling=random_labels", "train.caps=null", "train.epochs=1", f"train.min_steps={cap}",
                                  f"train.policy={policy}", "search.max_attempts=2", "convergence.hessian=false"])
            run_job(cfg, tmp_path / policy / str(num))
    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/*/emc.json"))]
    assert len(results) == 4
    for r in results:
        c = r["convergence"]
        assert r["converged"] in (True, False, None) and c["cap"]["min_steps"] in (40, 160)
        assert sum(c["stop_reasons"].values()) == r["fits"]
        if r["bracket"]["failed"] is not None:  # the certificate is about the attempts at the failed size
            assert sum(c["failed_size_stops"].values()) >= 1
            assert r["converged"] == all(k in ("verified_minimum", "diverged", "degenerate")
                                         for k in c["failed_size_stops"])
    rep = make_report([tmp_path / "converge", tmp_path / "fixed"], out=tmp_path / "rep", n_boot=50)
    assert CAP_FIGURE in {p.name for p in rep.figures}
    _assert_png(tmp_path / "rep" / CAP_FIGURE)
    series = cap_series(rep.collection.jobs, rep.swept)
    assert sorted(series) == ["policy=converge", "policy=fixed"]  # short labels (train.policy)
    assert all([p["cap"] for p in pts] == [40, 160] for pts in series.values())
    md = (tmp_path / "rep" / "emc.md").read_text()
    assert "## EMC against the cap" in md and "converged EMCs" in md
    n_conv = sum(1 for r in results if r["converged"] is True)
    only = make_report([tmp_path / "converge", tmp_path / "fixed"], out=tmp_path / "rep2", n_boot=50,
                          converged_only=True)
    assert len(only.rows) == n_conv and all(row["converged"] is True for row in only.rows)


# ---------------------------------------------------------------- figures a reader understands

ARCH_KNOBS = {"mlp": {"depth": 1, "width": 64, "activation": "relu", "dropout": 0.0},
              "vit": {"patch_size": 4, "embed_dim": 64, "depth": 2, "num_heads": 2, "mlp_dim": 128,
                      "class_token": True, "global_pool": "token", "qkv_bias": True, "activation": "gelu",
                      "dropout": 0.0, "drop_path": 0.0, "fused_attn": False}}


def _arch_sweep(root: Path, archs=("mlp", "vit"), sizes=SIZES, seeds=(0, 1)) -> Path:
    """A sweep over arch (each family with its own knobs, as a real arch=mlp,vit sweep has) and labelings."""
    num = 0
    for arch in archs:
        for labeling in ("semantic", "random_labels"):
            for target, actual in sizes.items():
                for seed in seeds:
                    cfg = _config(labeling, target, seed)
                    cfg["arch"] = {"name": arch, **ARCH_KNOBS[arch]}
                    cfg["scaling"]["name"] = "width" if arch == "mlp" else "sovit"
                    d = root / str(num)
                    d.mkdir(parents=True)
                    res = _result(cfg, _emc(labeling, actual, seed) + (5 if arch == "vit" else 0), actual,
                                  _test_acc(labeling, actual, seed), num=num, sweep=str(root))
                    res["arch"] = arch
                    (d / "emc.json").write_text(json.dumps(res))
                    num += 1
    return root


def test_series_labels_are_short_and_only_the_keys_that_vary(tmp_path):
    """arch=mlp,vit x labeling: the vit knobs and the law follow arch.name, so they name no series;
    the figures call the series by the option values."""
    rep = make_report([_arch_sweep(tmp_path / "sw")], n_boot=50)
    assert rep.by == ["arch.name", "labeling.name"]
    assert "arch.embed_dim" in rep.swept and "scaling.name" in rep.swept  # still columns of emc.csv
    assert set(rep.groups) == {f"arch={a}, labeling={lab}" for a in ("mlp", "vit")
                               for lab in ("semantic", "random_labels")}
    labels = {g["label"] for g in rep.groups.values()}
    assert labels == {"mlp, semantic", "mlp, random_labels", "vit, semantic", "vit, random_labels"}
    legend = rep.figure_text["emc_vs_params.png"]["legend"]
    for lab in labels:
        assert any(e.startswith(lab + "  (b=") for e in legend), (lab, legend)
    assert max(len(e) for e in legend) < 60
    # log_emc.png: one row per series, named by the label (its lr and cap below it)
    assert {t.split("\n")[0] for t in rep.figure_text["log_emc.png"]["yticks"]} == labels
    # a key that varies on its own still names the series, by its last part
    job = rep.collection.jobs[0]
    assert short_label(job, ["optimizer.lr", "arch.name"]) == "lr=0.1, " + job.config["arch.name"]


def test_titles_name_the_fixed_settings(tmp_path, sweep):
    rep = make_report([_arch_sweep(tmp_path / "sw")], n_boot=50)
    title = rep.figure_text["emc_vs_params.png"]["title"]
    assert title.splitlines()[1] == "dataset mnist1d, optimizer sgd, lr 0.1"  # arch, labels, law vary
    single = make_report([sweep], n_boot=50, out=tmp_path / "single")  # only the labeling varies
    for name, text in single.figure_text.items():
        assert text["title"].splitlines()[-1] == "dataset mnist1d, arch mlp, scaling width, optimizer sgd, lr 0.1", name


def test_construction_line_only_for_relu_mlps(tmp_path):
    both = make_report([_arch_sweep(tmp_path / "both")], n_boot=50)
    assert sum("2-layer ReLU" in e for e in both.figure_text["emc_vs_params.png"]["legend"]) == 1  # mnist1d: d = 40
    vit = make_report([_arch_sweep(tmp_path / "vit", archs=("vit",))], n_boot=50)
    assert not any("2-layer ReLU" in e for e in vit.figure_text["emc_vs_params.png"]["legend"])


def test_no_interval_from_fewer_than_three_points(tmp_path):
    """Two sizes, two seeds: a power law but no bootstrap interval (figure, emc.md, groups.csv); no
    error bars from two seeds either."""
    two = {500: 520, 1000: 979}
    rep = make_report([_arch_sweep(tmp_path / "sw", archs=("vit",), sizes=two)], n_boot=50)
    for g in rep.groups.values():
        pl = g["power_law"]
        assert pl is not None and math.isfinite(pl.b) and math.isnan(pl.b_lo) and math.isnan(pl.b_hi)
    assert not any("[" in e for e in rep.figure_text["emc_vs_params.png"]["legend"])
    assert all(r["power_law_b_lo95"] == "" for r in _read_csv(rep.out / "groups.csv"))
    md = (rep.out / "emc.md").read_text()
    assert "·p^" in md and "[nan" not in md
    three = make_report([_arch_sweep(tmp_path / "sw3", archs=("vit",))], n_boot=50)
    assert all(math.isfinite(g["power_law"].b_lo) for g in three.groups.values())


def test_figures_draw_without_warnings(sweep, fixed_sweep, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tight-layout, missing-legend, ... warnings fail the test
        rep = make_report([sweep, fixed_sweep, _arch_sweep(tmp_path / "sw")], out=tmp_path / "r", n_boot=50)
    assert sorted(p.name for p in rep.figures) == sorted(FIGURES)


def test_cli_lists_every_file_it_writes(sweep, capsys):
    assert report_main([str(sweep), "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    listed = {Path(l.strip()).name for l in out.splitlines() if l.startswith("  ") and "/report/" in l}
    written = {p.name for p in (sweep / "report").iterdir()}
    assert listed == written and {"emc.csv", "groups.csv", "report.json", "emc.md", "generalization.csv",
                                  "emc_vs_params.png", "log_emc.png", "generalization.png"} <= written
