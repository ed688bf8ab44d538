"""The optim config groups through the real Hydra app: composition, presets, CLI sweep, errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flexnet.config import compose

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("group,options", [
    ("optimizer", ["sgd", "gd", "adam", "adamw", "shampoo"]),
    ("regularizer", ["none", "weight_decay", "label_smoothing", "sam"]),
    ("reparam", ["none", "subspace", "quant8"]),
])
def test_every_option_composes_and_names_its_registry_key(group, options):
    from flexnet.optim import OPTIMIZERS, REGULARIZERS, REPARAMS

    reg = {"optimizer": OPTIMIZERS, "regularizer": REGULARIZERS, "reparam": REPARAMS}[group]
    for name in options:
        cfg = compose([f"{group}={name}"])
        assert cfg[group]["name"] == name and name in reg


@pytest.mark.parametrize("preset,opt,lo,hi", [("grid_sgd", "sgd", 1e-3, 1e-2), ("grid_adam", "adam", 1e-5, 1e-2),
                                              ("grid_adamw", "adamw", 1e-5, 1e-2)])
def test_grid_presets_cover_the_papers_ranges(preset, opt, lo, hi):
    cfg = compose([f"hparams_search={preset}"], hydra=True)
    assert cfg["optimizer"]["name"] == opt
    params = cfg["hydra"]["sweeper"]["params"]
    lrs = [float(v) for v in params["optimizer.lr"].split(",")]
    assert min(lrs) == pytest.approx(lo) and max(lrs) == pytest.approx(hi) and len(lrs) >= 3
    assert [int(v) for v in params["optimizer.batch_size"].split(",")] == [32, 64, 128, 256]
    assert str(params["scaling.params"]).isdigit()  # one setup per tuning sweep


def test_best_hparams_picks_the_largest_emc(tmp_path):
    from flexnet.analysis.hparams import best

    for i, (lr, emc, cost) in enumerate([(0.01, 300, 5.0), (0.001, 420, 9.0), (0.005, 420, 7.0)]):
        d = tmp_path / str(i)
        d.mkdir()
        (d / "emc.json").write_text(json.dumps({"emc": emc, "cost_sample_epochs": cost, "config": {
            "optimizer": {"name": "sgd", "lr": lr, "batch_size": 64}, "scaling": {"params": 2000}}}))
    out = best(tmp_path)
    assert out["best"]["optimizer.lr"] == 0.005 and out["emc"] == 420 and out["jobs"] == 3
    assert (tmp_path / "best_hparams.yaml").exists()


def test_choose_lr_takes_the_largest_emc_and_breaks_ties_toward_the_middle():
    from flexnet.analysis.hparams import choose_lr

    # a clear winner at an edge of the grid: chosen, and flagged as an edge
    out = choose_lr([{"lr": 0.033, "emc": 200}, {"lr": 0.1, "emc": 300}, {"lr": 0.3, "emc": 480}], 0.1, 0.1)
    assert out["lr"] == 0.3 and out["emc"] == 480 and out["edge"]
    # 0.3's EMC is within the resolution (10%) of 0.033's: a tie, resolved toward the middle... which is
    # not among the ties, so toward the nearer of the two in log distance (both 3x away): the smaller lr
    out = choose_lr([{"lr": 0.1 / 3, "emc": 480}, {"lr": 0.1, "emc": 300}, {"lr": 0.3, "emc": 450}], 0.1, 0.1)
    assert out["lr"] == 0.1 / 3 and out["edge"]
    # the middle ties with the best: the middle wins, not an edge
    out = choose_lr([{"lr": 0.033, "emc": 400}, {"lr": 0.1, "emc": 390}, {"lr": 0.3, "emc": 100}], 0.1, 0.05)
    assert out["lr"] == 0.1 and not out["edge"] and out["grid"][0] == (0.033, 400)
    # outside the resolution it is not a tie
    out = choose_lr([{"lr": 0.033, "emc": 400}, {"lr": 0.1, "emc": 300}, {"lr": 0.3, "emc": 100}], 0.1, 0.05)
    assert out["lr"] == 0.033
    with pytest.raises(ValueError):
        choose_lr([], 0.1, 0.1)


def _run(args, cwd, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "flexnet", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("override,key", [
    ("optimizer.lr=-0.1", "optimizer.lr"),
    ("regularizer=sam regularizer.rho=0", "regularizer.rho"),
    ("reparam=subspace reparam.d=0", "reparam.d"),
    ("reparam=subspace reparam.d=100000000", "reparam.d"),
])
@pytest.mark.slow  # 4 CLI runs, ~49 s here
def test_cli_bad_values_one_line(tmp_path, override, key):
    r = _run([*override.split(), "scaling.params=300", "train.caps=null", "train.epochs=2", "train.min_steps=0",
              f"hydra.run.dir={tmp_path}"], tmp_path)
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.startswith("flexnet: error:")]
    assert len(err) == 1 and f"{key}=" in err[0]
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_cli_sweep_four_optimizers_writes_four_emc_files(tmp_path):
    r = _run(["optimizer=sgd,gd,adam,shampoo", "scaling.params=300", "train.caps=null", "train.epochs=20", "train.min_steps=40",
              "train.max_extensions=0", "search.start=16", "threads=1", f"hydra.sweep.dir={tmp_path}", "-m"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(tmp_path.rglob("emc.json"))
    assert len(files) == 4
    names = sorted(json.loads(f.read_text())["config"]["optimizer"]["name"] for f in files)
    assert names == ["adam", "gd", "sgd", "shampoo"]
    assert all(json.loads(f.read_text())["emc"] > 0 for f in files)


@pytest.mark.slow
def test_cli_reparams_record_their_counts(tmp_path):
    base = ["scaling.params=300", "train.caps=null", "train.epochs=20", "train.min_steps=40", "train.max_extensions=0",
            "search.start=16", "threads=1", f"hydra.sweep.dir={tmp_path}", "-m"]
    for i, over in enumerate((["reparam=subspace", "reparam.d=100"], ["reparam=quant8"])):
        r = _run([*over, *base[:-2], f"hydra.sweep.dir={tmp_path / str(i)}", "-m"], tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
    res = {json.loads(f.read_text())["config"]["reparam"]["name"]: json.loads(f.read_text())["params"]
           for f in tmp_path.rglob("emc.json")}
    assert res["subspace"]["actual"] == res["subspace"]["trainable"] == 100 and res["subspace"]["full"] >= 100
    q = res["quant8"]
    assert q["bits"] == 8 * q["weights"] and q["fp32_equivalent"] == q["weights"] / 4 == q["actual"]
    assert q["weights"] == pytest.approx(4 * 300, rel=0.15) and q["target"] == 300
