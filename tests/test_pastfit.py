"""Training past interpolation (search=fixed, search.stop_at_fit=false): real training on CPU, no mocks."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import compose, read_jsonl
from flexnet.errors import ConfigError
from flexnet.fit.loop import Budget, Recipe, train_to_minimum
from flexnet.fit.pastfit import length, train_past_fit
from flexnet.optim import build_procedure
from flexnet.pipeline import run_job
from flexnet.records import CURVE_FILE, result_hash

# digits, n = 100, a 3000-parameter MLP: fitted within ~20 epochs by Adam at 1e-2
BASE = ["dataset=digits", "search=fixed", "search.n=100", "scaling.params=3000", "optimizer=adam",
        "optimizer.lr=0.01", "optimizer.schedule=constant", "train.min_steps=0", "progress=false", "threads=1"]
PAST = [*BASE, "search.stop_at_fit=false"]


def test_job_keeps_training_after_the_fit_and_records_the_fitted_epoch(tmp_path):
    res = run_job(compose([*PAST, "train.epochs=60"]), tmp_path)
    fit = read_jsonl(tmp_path / "fits.jsonl")
    assert len(fit) == 1
    rec = fit[0]
    fe = rec["fitted_epoch"]
    assert fe is not None and 1 <= fe < 40, fe     # first fitted well before the end ...
    assert rec["epochs"] == 60 and rec["steps"] == 60  # ... and trained on to the whole length (1 step/epoch)
    assert rec["fitted_step"] == fe and rec["policy"] == "past_fit" and rec["stop_reason"] == "budget"
    assert rec["status"] == "fitted" and rec["train_acc"] == 1.0
    curve = read_jsonl(tmp_path / CURVE_FILE)
    assert [c["epoch"] for c in curve] == list(range(1, 61))  # the curve continues past the fit
    after = [c for c in curve if c["epoch"] > fe]
    assert len(after) == 60 - fe
    for c in curve:
        assert {"train_loss", "online_acc", "train_acc", "train_eval_loss", "test_acc", "test_loss"} <= set(c)
        assert 0 <= c["test_acc"] <= 1 and c["test_loss"] > 0
    # the first curve epoch at 100% train accuracy is the fitted epoch (every epoch is on the curve here)
    assert min(c["epoch"] for c in curve if c["train_acc"] >= 1.0) == fe
    # training goes on: the training loss keeps falling after the fit
    assert curve[-1]["train_eval_loss"] < next(c for c in curve if c["epoch"] == fe)["train_eval_loss"]
    assert res["fitted_epoch"] == fe and res["past_fit"] is True and res["converged"] is None
    assert res["convergence"]["policy"] == "past_fit" and res["emc"] == 100
    assert res["test_accuracy"] == pytest.approx(curve[-1]["test_acc"])
    assert res["test_loss"] == pytest.approx(curve[-1]["test_loss"])
    assert res["train_accuracy"] == 1.0 and res["train_loss"] == pytest.approx(curve[-1]["train_eval_loss"])
    assert res["best_test_accuracy"] == max(c["test_acc"] for c in curve)


def test_default_stops_at_the_fit_and_records_it_too(tmp_path):
    res = run_job(compose([*BASE, "train.epochs=60", "train.policy=fixed", "train.caps=null", "train.max_extensions=0",
                           "convergence.hessian=false"]), tmp_path)
    rec = read_jsonl(tmp_path / "fits.jsonl")[0]
    assert rec["status"] == "fitted" and rec["epochs"] < 60
    assert rec["fitted_epoch"] == rec["epochs"] and rec["fitted_step"] == rec["steps"]
    assert res["fitted_epoch"] == rec["epochs"] and res["past_fit"] is False
    assert len(read_jsonl(tmp_path / CURVE_FILE)) == rec["epochs"]


def test_curve_every_and_a_never_fitted_attempt(tmp_path):
    """A model far too small for random labels never fits: fitted_epoch stays null, the attempt
    ends unverified at the length; the curve has every 7th epoch plus the first and the last."""
    res = run_job(compose([*PAST, "labeling=random_labels", "scaling.params=700", "train.epochs=30",
                           "search.curve_every=7"]), tmp_path)
    rec = read_jsonl(tmp_path / "fits.jsonl")[0]
    assert rec["fitted_epoch"] is None and rec["fitted_step"] is None
    assert rec["status"] == "unverified" and rec["epochs"] == 30 and rec["train_acc"] < 1.0
    assert [c["epoch"] for c in read_jsonl(tmp_path / CURVE_FILE)] == [1, 7, 14, 21, 28, 30]
    assert res["emc"] == 0 and res["fitted_epoch"] is None and res["converged"] is None


def test_rerun_replays_the_past_fit_attempt(tmp_path):
    cfg = compose([*PAST, "train.epochs=25"])
    first = run_job(cfg, tmp_path)
    again = run_job(cfg, tmp_path)
    assert again["replayed_attempts"] == 1
    assert again["fitted_epoch"] == first["fitted_epoch"] and again["test_accuracy"] == first["test_accuracy"]
    assert len(read_jsonl(tmp_path / CURVE_FILE)) == 25  # nothing trained twice


@pytest.mark.parametrize("overrides", [
    ["arch=cnn", "optimizer=sgd", "optimizer.lr=0.05", "labeling=corrupt", "labeling.p=0.3"],
    ["regularizer=sam", "labeling=permuted_inputs", "search.trials=2"],
])
def test_other_archs_optimizers_labelings_and_trials(tmp_path, overrides):
    res = run_job(compose([*PAST, "train.epochs=8", "search.curve_every=4", *overrides]), tmp_path)
    fits = read_jsonl(tmp_path / "fits.jsonl")
    trials = 2 if "search.trials=2" in overrides else 1
    assert len(fits) == trials and all(f["epochs"] == 8 and f["policy"] == "past_fit" for f in fits)
    curve = read_jsonl(tmp_path / CURVE_FILE)
    assert len(curve) == 3 * trials  # epochs 1, 4, 8 of each trial
    if trials > 1:
        assert [r["fitted_epoch"] for r in res["trials"]] == [f["fitted_epoch"] for f in fits]


def test_length_and_the_pure_loop():
    """length(): train.epochs epochs, never fewer than train.min_steps steps. The loop itself, on a
    subset fitted early, trains every epoch of it and gives the curve from on_curve."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 10, generator=g), torch.randint(0, 3, (64,), generator=g)
    proc = build_procedure({"name": "adam", "lr": 0.02, "batch_size": 16, "schedule": "constant"}, {"name": "none"})
    assert length(64, Recipe(proc, Budget(epochs=10, min_steps=0))) == (10, 4)
    assert length(64, Recipe(proc, Budget(epochs=10, min_steps=101))) == (26, 4)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 128), torch.nn.ReLU(), torch.nn.Linear(128, 3))
    seen = []
    res, extra = train_past_fit(model, x, y, Recipe(proc, Budget(epochs=80, min_steps=0)), x[:8], y[:8],
                                curve_every=20, on_curve=seen.append)
    assert res.epochs == 80 and res.steps == 320 and res.status == "fitted"
    assert extra["fitted_epoch"] is not None and extra["fitted_epoch"] < 80
    assert extra["fitted_step"] == 4 * extra["fitted_epoch"]
    assert [c["epoch"] for c in seen] == [1, 20, 40, 60, 80] and extra["test_acc"] == seen[-1]["test_acc"]
    # train_to_minimum on the same data stops at the fit: the past-fit loop is what goes on
    torch.manual_seed(0)
    model2 = torch.nn.Sequential(torch.nn.Linear(10, 128), torch.nn.ReLU(), torch.nn.Linear(128, 3))
    stop = train_to_minimum(model2, x, y, Recipe(proc, Budget(policy="fixed", epochs=80, min_steps=0, max_extensions=0)))
    assert stop.fitted and stop.epochs < 80


def test_options_are_checked_and_defaults_keep_the_journal_hash():
    for bad, key in ((["search.stop_at_fit=maybe"], "search.stop_at_fit"), (["search.curve_every=0"], "search.curve_every")):
        with pytest.raises(ConfigError, match=key):
            run_job(compose([*BASE, *bad]), "/nonexistent")
    with pytest.raises(ConfigError, match="stop_at_fit"):  # only search=fixed has it
        run_job(compose(["+search.stop_at_fit=false"]), "/nonexistent")
    cfg = compose(BASE)
    old = json.loads(json.dumps(cfg))
    for k in ("stop_at_fit", "curve_every"):  # a journal written before these keys existed still replays
        old["search"].pop(k)
    assert result_hash(cfg) == result_hash(old)
    assert result_hash(compose([*BASE, "search.stop_at_fit=false"])) != result_hash(cfg)
    assert result_hash(compose([*BASE, "search.curve_every=5"])) != result_hash(cfg)
