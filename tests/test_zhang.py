"""Zhang et al. (ICLR 2017) support: Theorem 1's 2n + d construction, the min-norm kernel
interpolant, data augmentation as a regularizer, and learning curves with search=fixed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flexnet.config import compose
from flexnet.errors import ConfigError
from flexnet.fit.loop import Budget, Checks, Recipe, train_to_minimum
from flexnet.models import ARCHS, count_built_params, plan_model
from flexnet.models.zhang_construction import ZhangConstruction
from flexnet.optim import Stepper, build_procedure
from flexnet.pipeline import run_job
from flexnet.records import CURVE_FILE

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["convergence.hessian=false", "train.max_extensions=0", "logger=none", "train.caps=null"]


def config(*overrides: str) -> dict:
    return compose(overrides)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- Theorem 1 construction

def random_points(n=200, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), g


def test_construction_fits_random_labels_of_200_points_with_410_weights():
    x, g = random_points()
    y = torch.randint(0, 10, (200,), generator=g)
    torch.manual_seed(1)
    model = ZhangConstruction((10,), num_classes=10, n_points=200)
    # 2n + d weights: the random direction a (d), biases b (n), output weights w (n)
    assert sum(p.numel() for p in model.parameters()) == 2 * 200 + 10 == 410
    assert count_built_params(ARCHS.get("zhang_construction"), (10,), 10, {"n_points": 200}) == 410
    plan = plan_model({"name": "zhang_construction", "n_points": 200}, {"name": "none"}, (10,), 10)
    assert plan.actual == 410
    model.fit_closed_form(x, y)
    assert torch.equal(model(x).argmax(1), y)  # every random class label fitted
    assert (model.raw(x)[:, 0] - y.double()).abs().max() < 1e-6  # the label index itself, exactly

    # any real labels: c(x_i) = y_i, and w solves the lower-triangular system A w = y
    yr = torch.randn(200, dtype=torch.float64, generator=g) * 5
    model.fit_closed_form(x, yr)
    t = model.project(x)
    order = torch.argsort(t)
    A = torch.relu(t[order][:, None] - model.b[None, :])
    assert torch.equal(A, torch.tril(A)) and bool((A.diagonal() > 0).all())
    with torch.no_grad():
        assert (A @ model.w[:, 0] - yr[order]).abs().max() < 1e-6
        assert (model.raw(x)[:, 0] - yr).abs().max() < 1e-6


def test_construction_stops_at_its_capacity_and_onehot_count():
    x, g = random_points()
    y = torch.randint(0, 10, (200,), generator=g)
    small = ZhangConstruction((10,), 10, n_points=100).fit_closed_form(x, y)
    acc = (small(x).argmax(1) == y).float().mean().item()
    assert 0.5 <= acc < 1.0  # the 100 interpolated points plus the others it happens to get right
    # fewer points than units: the extra units are unused and the fit is still exact
    big = ZhangConstruction((10,), 10, n_points=300).fit_closed_form(x, y)
    assert torch.equal(big(x).argmax(1), y)
    onehot = ZhangConstruction((10,), 10, n_points=200, output="onehot").fit_closed_form(x, y)
    assert sum(p.numel() for p in onehot.parameters()) == 10 + 200 + 10 * 200
    assert torch.equal(onehot(x).argmax(1), y)
    with pytest.raises(ConfigError, match="arch.output"):
        ZhangConstruction((10,), 10, n_points=5, output="softmax")


def test_construction_capacity_from_scaling_params():
    plan = plan_model({"name": "zhang_construction", "n_points": 7, "output": "index"},
                      {"name": "width", "params": 2 * 300 + 10}, (10,), 10)
    assert plan.shape["n_points"] == 300 and plan.actual == 610  # n = (p - d) / 2


def test_construction_through_the_oracle_with_search_fixed(tmp_path):
    cfg = config("search=fixed", "search.n=300", "dataset=digits", "labeling=random_labels",
                 "arch=zhang_construction", "scaling=none", *QUICK)
    assert cfg["arch"]["n_points"] == 300  # defaults to search.n
    res = run_job(cfg, tmp_path)
    assert res["emc"] == 300 and res["train_accuracy"] == 1.0
    assert res["params"]["actual"] == 2 * 300 + 8 * 8
    fits = read_jsonl(tmp_path / "fits.jsonl")
    assert [f["status"] for f in fits] == ["fitted"] and fits[0]["epochs"] == 0
    assert res["test_accuracy"] is not None and res["test_accuracy"] < 0.3  # random labels: chance


def test_construction_emc_equals_its_capacity_under_bisect(tmp_path):
    cfg = config("dataset=digits", "labeling=random_labels", "arch=zhang_construction",
                 "scaling=width", f"scaling.params={2 * 200 + 64}", "search.start=64",
                 "search.resolution=0.01", *QUICK)
    res = run_job(cfg, tmp_path)
    assert res["shape"]["n_points"] == 200
    assert res["emc"] == 200 and res["bracket"]["failed"] is not None


# ---------------------------------------------------------------- min-norm kernel interpolant

@pytest.mark.parametrize("labeling,test_lo,test_hi", [("semantic", 0.9, 1.0), ("random_labels", 0.0, 0.3)])
def test_kernel_minnorm_interpolates_digits(tmp_path, labeling, test_lo, test_hi):
    cfg = config("search=fixed", "search.n=1000", "dataset=digits", f"labeling={labeling}",
                 "arch=kernel_minnorm", "scaling=none", *QUICK)
    res = run_job(cfg, tmp_path)
    assert res["train_accuracy"] == 1.0 and res["emc"] == 1000  # train error 0
    assert test_lo <= res["test_accuracy"] <= test_hi
    assert res["params"]["actual"] == 1000 * 10  # alpha: n x k


def test_kernel_minnorm_beyond_capacity_and_bad_bandwidth():
    from sklearn.datasets import load_digits

    from flexnet.models.kernel import KernelMinNorm

    xs, ys = load_digits(return_X_y=True)
    x, y = torch.tensor(xs[:400] / 16, dtype=torch.float32), torch.randint(0, 10, (400,),
                                                                           generator=torch.Generator().manual_seed(0))
    k = KernelMinNorm((64,), 10, n_points=200).fit_closed_form(x, y)
    assert torch.equal(k(x[:200]).argmax(1), y[:200]) and k.solver == "cholesky"
    assert (k(x[200:]).argmax(1) == y[200:]).float().mean() < 0.5
    with pytest.raises(ConfigError, match="arch.bandwidth"):
        KernelMinNorm((64,), 10, n_points=5, bandwidth=-1.0)


# ---------------------------------------------------------------- augmentation

class RecordingStepper(Stepper):
    seen: list = []

    def step(self, x, y):
        RecordingStepper.seen.append((x.clone(), y.clone()))
        return super().step(x, y)


def test_augment_changes_inputs_each_epoch_not_labels():
    proc = build_procedure({"name": "sgd", "lr": 0.01, "batch_size": None},
                           {"name": "augment", "pad": 2, "flip": True})
    proc.stepper_cls = RecordingStepper
    RecordingStepper.seen = []
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (16,), generator=g)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    recipe = Recipe(procedure=proc, budget=Budget(epochs=4, min_steps=1, max_extensions=0),
                    checks=Checks(hessian=False, early_verdict=False, check_fitted=False), fit_threshold=2.0)
    res = train_to_minimum(model, x, y, recipe, g=torch.Generator().manual_seed(1))
    seen = RecordingStepper.seen
    assert res.epochs == 4 and len(seen) == 4  # full batch: one step per epoch, samples in order
    for xb, yb in seen:
        assert torch.equal(yb, y)  # labels fixed
        assert not torch.equal(xb, x)
        # every image is a crop of the zero-padded original, possibly mirrored
        padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
        for i in range(16):
            crops = [v for oy in range(5) for ox in range(5)
                     for v in (padded[i, :, oy:oy + 8, ox:ox + 8], padded[i, :, oy:oy + 8, ox:ox + 8].flip(-1))]
            assert any(torch.equal(xb[i], c) for c in crops)
    assert all(not torch.equal(seen[e][0], seen[e + 1][0]) for e in range(3))  # a new view each epoch


def test_augment_rejects_non_images_and_bad_knobs():
    proc = build_procedure({"name": "sgd", "lr": 0.01, "batch_size": None}, {"name": "augment"})
    with pytest.raises(ConfigError, match="regularizer=augment: needs image inputs"):
        proc.batch_transform(torch.zeros(4, 40), torch.Generator())
    with pytest.raises(ConfigError, match="regularizer.pad"):
        build_procedure({"name": "sgd", "lr": 0.01, "batch_size": None}, {"name": "augment", "pad": -1})
    assert build_procedure({"name": "sgd", "lr": 0.01}, {"name": "none"}).batch_transform is None


def test_augment_in_a_job_online_on_augmented_stream_verdict_on_clean(tmp_path):
    cfg = config("search=fixed", "search.n=200", "dataset=digits", "regularizer=augment", "regularizer.pad=1",
                 "scaling.params=3000", "train.epochs=6", "train.min_steps=1", *QUICK)
    res = run_job(cfg, tmp_path)
    curve = read_jsonl(tmp_path / CURVE_FILE)
    assert len(curve) == read_jsonl(tmp_path / "fits.jsonl")[0]["epochs"]
    # the running accuracy is on the augmented stream, train_acc on the clean subset: they differ
    assert any(abs(c["online_acc"] - c["train_acc"]) > 1e-9 for c in curve)
    assert res["train_accuracy"] == pytest.approx(curve[-1]["train_acc"])


# ---------------------------------------------------------------- learning curves

@pytest.mark.slow  # ~15 s here
def test_search_fixed_writes_learning_curve_cli(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "flexnet", "search=fixed", "dataset=digits", "labeling=random_labels", "arch=mlp",
           "search.n=100", "train.epochs=5", "train.min_steps=1", *QUICK, f"hydra.run.dir={out}"]
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    curve = read_jsonl(out / CURVE_FILE)
    fit = read_jsonl(out / "fits.jsonl")[0]
    emc = json.loads((out / "emc.json").read_text())
    assert [c["epoch"] for c in curve] == list(range(1, fit["epochs"] + 1))
    for c in curve:
        assert {"n", "attempt", "step", "train_loss", "online_acc", "train_acc", "test_acc"} <= set(c)
        assert c["n"] == 100 and 0 <= c["test_acc"] <= 1
    assert emc["best_test_accuracy"] == max(c["test_acc"] for c in curve)
    assert emc["test_accuracy"] == pytest.approx(curve[-1]["test_acc"])


def test_rerun_replaces_partial_curve_of_a_killed_attempt(tmp_path):
    cfg = config("search=fixed", "search.n=100", "dataset=digits", "train.epochs=3", "train.min_steps=1", *QUICK)
    # what a run killed during attempt (100, 0) leaves: curve lines, one cut short, no journal entry
    stale = {"n": 100, "attempt": 0, "epoch": 1, "train_loss": 9.0, "test_acc": 0.0}
    (tmp_path / CURVE_FILE).write_text(json.dumps(stale) + "\n" + json.dumps(dict(stale, epoch=2))[:20])
    run_job(cfg, tmp_path)
    curve = read_jsonl(tmp_path / CURVE_FILE)
    assert [c["epoch"] for c in curve] == [1, 2, 3] and all(c["train_loss"] != 9.0 for c in curve)
