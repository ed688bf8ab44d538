"""The Hydra app end to end: `python -m flexnet` in a temp dir, result files, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY, read_jsonl, run_cli

FITS_FIELDS = {"n", "attempt", "seed", "status", "train_acc", "train_loss", "grad_norm", "plateaued", "min_eig",
               "max_eig", "epochs", "seconds"}
RESULT_FIELDS = {"emc", "bracket", "params", "fits", "cost_sample_epochs", "seconds", "unverified", "test_accuracy",
                 "search", "device", "config"}


def test_single_run_writes_contract_files(tmp_path):
    out = tmp_path / "run"
    p = run_cli([*TINY, "labeling=random_labels", f"hydra.run.dir={out}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "emc.json").read_text())
    assert RESULT_FIELDS <= set(res)
    assert set(res["bracket"]) == {"fitted", "failed"} and set(res["params"]) >= {"target", "actual"}
    lines = read_jsonl(out / "fits.jsonl")
    # an attempt resumed from its checkpoint at a larger cap has a line per cap; the furthest one counts
    last = {}
    for f in lines:
        last[(f["n"], f["attempt"])] = f
    fits = list(last.values())
    assert len(fits) == res["fits"] >= 2
    for f in lines:
        assert FITS_FIELDS <= set(f)
        assert f["status"] in {"fitted", "failed", "diverged", "unverified"}
    # the result is what the attempts say: EMC is the largest fitted n, failed size had every attempt fail
    fitted = [f["n"] for f in fits if f["status"] == "fitted"]
    assert res["emc"] == res["bracket"]["fitted"] == max(fitted)
    failed = res["bracket"]["failed"]
    assert failed is not None and failed > res["emc"]
    assert sorted(f["attempt"] for f in fits if f["n"] == failed) == [0, 1, 2, 3]
    assert res["cost_sample_epochs"] == pytest.approx(sum(f["n"] * f["epochs"] for f in fits))
    assert res["params"]["target"] == 300 and abs(res["params"]["actual"] - 300) <= 30
    assert res["config"]["labeling"]["name"] == "random_labels"
    assert "EMC(60 steps) = " in p.stdout and "bracket" in p.stdout
    assert [b["cap_steps"] for b in res["emc_by_cap"]] == [30, 60]
    assert "Traceback" not in p.stderr and "Warning" not in p.stderr
    # the run log is flexnet.log; it opens with the config tree (print_config), then the solved model (the
    # config shows the arch's default width)
    log = (out / "flexnet.log").read_text()
    assert log.splitlines()[0].endswith("- config (each group's option and what differs from its file; all of it: --cfg job):")
    first = next(l for l in log.splitlines() if "][flexnet][INFO] - " in l and l.split("] - ", 1)[1].startswith("model: "))
    w = res["shape"]["width"]
    assert f"model: mlp depth=1 width={w} " in first and f"{res['params']['actual']} parameters" in first
    assert "replaces the config's arch.width=64" in first


@pytest.mark.slow  # a 3-job sweep, ~11 s here
def test_multirun_default_sweep(tmp_path):
    tiny = [o for o in TINY if not o.startswith("scaling.params")]  # the sweep must come from the config
    p = run_cli(["-m", *tiny, f"hydra.sweep.dir={tmp_path}/sweep", "train.epochs=10"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    results = sorted((tmp_path / "sweep").glob("*/emc.json"))
    assert len(results) == 3  # the primary config's default list: scaling.params=1000,2000,4000
    targets = sorted(json.loads(r.read_text())["params"]["target"] for r in results)
    assert targets == [1000, 2000, 4000]


@pytest.mark.parametrize("override,key", [
    ("scaling.params=-5", "scaling.params"),
    ("search.fit_threshold=1.5", "search.fit_threshold"),
    ("search.fit_threshold=0", "search.fit_threshold"),
    ("search.start=100000", "search.start"),
    ("dataset.max_pool_size=0", "dataset.max_pool_size"),
    ("optimizer.lr=-0.1", "optimizer.lr"),
    ("convergence.patience=0", "convergence.patience"),
    ("convergence.min_eig=0.5", "convergence.min_eig"),
])
@pytest.mark.slow  # 8 CLI runs, ~33 s here (the same checks in-process: test_reliability)
def test_bad_input_one_clear_line(tmp_path, override, key):
    p = run_cli([*TINY, override, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("flexnet: error: ") and key in lines[0], p.stderr
    assert not (tmp_path / "run" / "emc.json").exists()


def test_unknown_option_is_clear(tmp_path):
    p = run_cli([*TINY, "arch=nosuch", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert "arch" in p.stderr and "nosuch" in p.stderr and "mlp" in p.stderr


@pytest.mark.slow  # ~3 s here
def test_start_ratio_scales_the_first_size_with_the_model(tmp_path):
    from conftest import compose
    from flexnet.pipeline import run_job

    res = run_job(compose([*TINY, "search.start_ratio=0.1"]), tmp_path)
    first = read_jsonl(tmp_path / "fits.jsonl")[0]
    assert first["n"] == round(0.1 * res["params"]["actual"]) and first["attempt"] == 0
