"""Double descent: the report's figures and numbers (threshold, peak, EMC line, epoch-wise curve), the
mnist1d preset run past the fit, and the CIFAR-10 car/frog/horse/ship preset on generated files in the
real format."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import compose, read_jsonl
from flexnet.analysis.cli import main as report_main
from flexnet.analysis.double_descent import emc_crossing, epoch_curve
from flexnet.analysis.figures_fixed import EPOCHS_FIGURE
from flexnet.pipeline import load_data, run_job
from flexnet.records import CURVE_FILE
from test_data import CIFAR10_NAMES, make_cifar
from test_report import _config, _result, make_report

# ---------------------------------------------------------------- synthetic sweeps in the real layout

SIZES = {250: 265, 1000: 979, 2000: 1999, 8000: 7999}          # target -> actual
TEST_ERR = {250: 0.60, 1000: 0.70, 2000: 0.66, 8000: 0.55}     # a peak at 1000 parameters
TRAIN_ERR = {250: 0.50, 1000: 0.20, 2000: 0.005, 8000: 0.0}    # ~0 from 2000 on: the threshold
FIT_EPOCH = {250: None, 1000: None, 2000: 80, 8000: 20}


def _dd_curve(target: int, seed: int, epochs: int = 100, every: int = 10) -> list[dict]:
    out = []
    for e in [1, *range(every, epochs + 1, every)]:
        fit = FIT_EPOCH[target]
        train_err = 0.0 if fit is not None and e >= fit else max(TRAIN_ERR[target], 0.9 - 0.01 * e)
        test_err = TEST_ERR[target] + 0.1 * math.exp(-e / 30) + 0.002 * seed
        out.append({"n": 400, "attempt": 0, "epoch": e, "step": 4 * e, "train_loss": 1.0, "online_acc": 1 - train_err,
                    "lr": 1e-3, "train_acc": 1 - train_err, "train_eval_loss": 1.0, "test_acc": 1 - test_err,
                    "test_loss": 2.0})
    return out


@pytest.fixture()
def dd_sweep(tmp_path) -> Path:
    """search=fixed jobs trained past the fit: 4 sizes x 3 seeds with curves and fitted epochs."""
    root = tmp_path / "dd"
    num = 0
    for target, actual in SIZES.items():
        for seed in (0, 1, 2):
            cfg = _config("corrupt", target, seed, search="fixed", p=0.2)
            cfg["search"].update(stop_at_fit=False, curve_every=10)
            d = root / str(num)
            d.mkdir(parents=True)
            (d / CURVE_FILE).write_text("".join(json.dumps(r) + "\n" for r in _dd_curve(target, seed)))
            te = TEST_ERR[target] + 0.002 * seed
            tr = TRAIN_ERR[target] + (0.004 * seed if TRAIN_ERR[target] else 0.0)
            res = _result(cfg, 400 if tr == 0 else 0, actual, 1 - te, train_acc=1 - tr, num=num,
                          fitted_epoch=FIT_EPOCH[target], past_fit=True)
            (d / "emc.json").write_text(json.dumps(res))
            num += 1
    return root


@pytest.fixture()
def emc_sweep(tmp_path) -> Path:
    """An EMC search sweep on the same setting: mean EMC 200 / 300 / 800 at 500 / 1000 / 2000 parameters."""
    root = tmp_path / "emc"
    for i, (params, emcs) in enumerate({500: (190, 210), 1000: (290, 310), 2000: (780, 820)}.items()):
        for seed, emc in enumerate(emcs):
            d = root / f"{i}{seed}"
            d.mkdir(parents=True)
            (d / "emc.json").write_text(json.dumps(_result(_config("corrupt", params, seed, p=0.2), emc, params, 0.3)))
    return root


def test_emc_crossing_interpolates_log_log_and_never_extrapolates():
    pts = [(500, 200), (1000, 300), (2000, 800)]
    p = emc_crossing(pts, 400)
    t = (math.log(400) - math.log(300)) / (math.log(800) - math.log(300))
    assert p == pytest.approx(math.exp(math.log(1000) + t * math.log(2)))
    assert emc_crossing(pts, 300) == 1000 and emc_crossing(pts, 800) == 2000
    assert emc_crossing(pts, 100) is None and emc_crossing(pts, 5000) is None
    assert emc_crossing([(10, 0), (20, 50)], 30) is None  # an EMC of 0 has no logarithm: left out


def test_threshold_peak_emc_line_and_epoch_curve(dd_sweep, emc_sweep, tmp_path):
    rep = make_report([dd_sweep], out=tmp_path / "r", n_boot=50, emc_dirs=[emc_sweep])
    names = {p.name for p in rep.figures}
    assert {"double_descent.png", EPOCHS_FIGURE} <= names
    (group, d), = [(k, v) for k, v in rep.double_descent.items() if not k.startswith("_")]
    assert d["past_fit"] and d["n"] == 400
    assert d["interpolation_threshold"] == 1999 and d["threshold_target"] == 2000  # mean train error 0.009 <= 0.01
    assert d["peak_params"] == 979 and d["peak_test_error"] == pytest.approx(0.702)
    by = {s["target"]: s for s in d["sizes"]}
    assert by[1000]["test_error"] == pytest.approx(0.702) and by[1000]["test_error_se"] == pytest.approx(0.002 / math.sqrt(3))
    assert by[8000]["fitted"] == 3 and by[8000]["fitted_epoch"] == 20 and by[250]["fitted"] == 0
    line = rep.double_descent["_emc_line"]
    assert line["n"] == 400 and line["params"] == pytest.approx(emc_crossing([(500, 200), (1000, 300), (2000, 800)], 400))
    text = rep.figure_text["double_descent.png"]
    assert any("interpolation threshold: 1999 params" in e for e in text["legend"])
    assert any(e.startswith(f"EMC = n at {line['params']:.0f} params") for e in text["legend"])
    assert any("test error" in e for e in text["legend"]) and any("train error" in e for e in text["legend"])
    epochs = rep.figure_text[EPOCHS_FIGURE]
    assert any("1999 params (at the interpolation threshold): test error" in e for e in epochs["legend"])
    assert any("first fit, mean epoch 80 (3/3 seeds)" in e for e in epochs["legend"])
    assert any("7999 params (largest)" in e for e in epochs["legend"])
    # the epoch-wise numbers: mean over the 3 seeds at each curve epoch
    c = epoch_curve([j for j in rep.collection.jobs if j.target == 2000])
    assert [r["epoch"] for r in c] == [1, *range(10, 101, 10)]
    assert c[-1]["test_error"] == pytest.approx(0.66 + 0.1 * math.exp(-100 / 30) + 0.002) and c[-1]["jobs"] == 3
    summary = json.loads((rep.out / "report.json").read_text())["double_descent"]
    assert summary[group]["interpolation_threshold"] == 1999 and summary["_emc_line"]["params"] == pytest.approx(line["params"])
    md = (rep.out / "emc.md").read_text()
    assert "## Double descent" in md and "interpolation threshold (mean train error <= 0.01) at 1999 parameters" in md
    assert f"EMC = n = 400 at {line['params']:.0f} parameters" in md


def test_cli_options_and_no_threshold(dd_sweep, tmp_path, capsys):
    assert report_main([str(dd_sweep), "--out", str(tmp_path / "a"), "--emc-params", "1500", "--bootstrap", "20",
                   "--interpolation-tol", "0.001"]) == 0
    out = capsys.readouterr().out
    assert EPOCHS_FIGURE in out
    d = json.loads((tmp_path / "a" / "report.json").read_text())["double_descent"]
    assert d["_emc_line"]["params"] == 1500 and d["_emc_line"]["source"] == "--emc-params"
    (g,) = [k for k in d if not k.startswith("_")]
    assert d[g]["interpolation_threshold"] == 7999  # 2000's mean train error 0.009 > 0.001
    # no size interpolates: no threshold, the epoch-wise figure shows the largest size
    rep = make_report([dd_sweep], out=tmp_path / "b", n_boot=20, interpolation_tol=-1.0)
    (d2,) = [v for k, v in rep.double_descent.items() if not k.startswith("_")]
    assert d2["interpolation_threshold"] is None
    assert any("7999 params (largest size (no size reached the threshold))" in e
               for e in rep.figure_text[EPOCHS_FIGURE]["legend"])
    # an EMC sweep that does not bracket n: a note, no line
    far = tmp_path / "far"
    (far / "0").mkdir(parents=True)
    (far / "0" / "emc.json").write_text(json.dumps(_result(_config("corrupt", 500, 0, p=0.2), 50, 500, 0.3)))
    rep = make_report([dd_sweep], out=tmp_path / "c", n_boot=20, emc_dirs=[far])
    assert rep.double_descent["_emc_line"]["params"] is None
    assert any("do not bracket n = 400" in n for n in rep.notes)
    assert not any(e.startswith("EMC = n") for e in rep.figure_text["double_descent.png"]["legend"])


def test_stop_at_fit_sweeps_draw_no_epoch_figure(tmp_path):
    """Jobs that stopped at the fit (the default): double_descent.png as before, no epoch-wise figure."""
    root = tmp_path / "f"
    for i, target in enumerate((1000, 4000)):
        d = root / str(i)
        d.mkdir(parents=True)
        (d / "emc.json").write_text(json.dumps(_result(_config("corrupt", target, 0, search="fixed", p=0.2), 400,
                                                       target, 0.4)))
        (d / CURVE_FILE).write_text(json.dumps(_dd_curve(2000, 0)[0]) + "\n")
    rep = make_report([root], n_boot=20)
    assert "double_descent.png" in {p.name for p in rep.figures}
    assert EPOCHS_FIGURE not in {p.name for p in rep.figures}


# ---------------------------------------------------------------- the presets, for real

def test_double_descent_preset_runs_past_the_fit_and_reports(tmp_path, emc_sweep):
    """The mnist1d preset at a tiny scale (two sizes, a short length): every job trains the whole
    length past the fit, and the report draws both figures from what the jobs wrote."""
    base = compose(["+experiment=double_descent"])
    assert base["search"]["stop_at_fit"] is False and base["labeling"] == {**base["labeling"], "name": "corrupt", "p": 0.2}
    assert base["optimizer"]["name"] == "adam" and base["optimizer"]["schedule"] == "constant"
    ds = load_data(base | {"dataset": {**base["dataset"], "num_samples": 1200}}, torch.device("cpu"))
    assert ds.x_test.shape[0] == 120  # the preset's 20,000 samples give 2,000 (>= 1,000) test samples
    sweep = tmp_path / "sw"
    for i, params in enumerate((300, 6000)):
        cfg = compose(["+experiment=double_descent", "dataset.num_samples=1200", "search.n=64", "train.epochs=300",
                       "search.curve_every=100", "progress=false", f"scaling.params={params}"])
        (sweep / str(i)).mkdir(parents=True)
        res = run_job(cfg, sweep / str(i))
        fit = read_jsonl(sweep / str(i) / "fits.jsonl")[0]
        assert res["past_fit"] and fit["epochs"] == 300 and fit["policy"] == "past_fit"
        assert [c["epoch"] for c in read_jsonl(sweep / str(i) / CURVE_FILE)] == [1, 100, 200, 300]
    big = json.loads((sweep / "1" / "emc.json").read_text())
    assert big["fitted_epoch"] is not None and big["fitted_epoch"] < 300  # 6000 parameters fit 64 samples early
    rep = make_report([sweep], n_boot=20, emc_dirs=[emc_sweep])
    assert {"double_descent.png", EPOCHS_FIGURE} <= {p.name for p in rep.figures}


def test_cifar10_car_frog_horse_ship_from_generated_batches(tmp_path):
    """The course report's CIFAR-10 subset, read from python-pickle batches in the real format (no
    download): four classes relabelled 0..3 in the listed order, pool and test split alike."""
    files, _ = make_cifar(tmp_path, per_class_train=3, per_class_test=2)
    cfg = compose(["+experiment=double_descent_cifar", f"dataset.root={tmp_path}", "dataset.verify=false"])
    assert cfg["dataset"]["classes"] == ["automobile", "frog", "horse", "ship"]
    assert cfg["arch"]["variant"] == "lenet" and cfg["search"]["stop_at_fit"] is False
    data = load_data(cfg, torch.device("cpu"))
    assert data.num_classes == 4 and data.class_names == ["automobile", "frog", "horse", "ship"]
    assert data.pool_size == 5 * 3 * 4 and data.x_test.shape == (2 * 4, 3, 32, 32)
    # every kept image and its new label, against the raw batches
    want = [CIFAR10_NAMES.index(c) for c in ("automobile", "frog", "horse", "ship")]
    raw = [(x, y) for f in [f"data_batch_{i}" for i in range(1, 6)] for x, y in zip(files[f]["data"], files[f]["labels"])]
    kept = [(x, want.index(y)) for x, y in raw if y in want]
    got = sorted((bytes((data.x_train[i] * 255).round().to(torch.uint8).reshape(-1).numpy()), int(data.y_train[i]))
                 for i in range(data.pool_size))
    assert got == sorted((bytes(np.asarray(x, dtype=np.uint8)), y) for x, y in kept)
    test_labels = sorted(want.index(y) for y in files["test_batch"]["labels"] if y in want)
    assert sorted(data.y_test.tolist()) == test_labels


def test_double_descent_cifar_preset_runs_on_generated_batches(tmp_path):
    make_cifar(tmp_path / "data", per_class_train=3, per_class_test=2)
    sweep = tmp_path / "sw"
    for i, params in enumerate((5000, 20000)):
        cfg = compose(["+experiment=double_descent_cifar", f"dataset.root={tmp_path / 'data'}", "dataset.verify=false",
                       "search.n=40", "train.epochs=6", "search.curve_every=3", "labeling.p=0.2", "progress=false",
                       f"scaling.params={params}"])
        (sweep / str(i)).mkdir(parents=True)
        res = run_job(cfg, sweep / str(i))
        assert res["past_fit"] and res["num_classes"] == 4 and res["input_shape"] == [3, 32, 32]
        assert res["shape"]["variant"] == "lenet" and res["params"]["actual"] > 0
        curve = read_jsonl(sweep / str(i) / CURVE_FILE)
        assert [c["epoch"] for c in curve] == [1, 3, 6] and all(c["test_acc"] is not None for c in curve)
    rep = make_report([sweep], n_boot=20)
    assert {"double_descent.png", EPOCHS_FIGURE} <= {p.name for p in rep.figures}
