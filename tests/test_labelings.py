"""Labelings: statistics of each transform, seeded reproducibility, and a clean test split."""
from __future__ import annotations

import pytest
import torch
from scipy import stats

from flexnet.data import LABELINGS, apply_labeling, load_dataset
from flexnet.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    return load_dataset({"name": "digits", "seed": 0})


@pytest.fixture(scope="module")
def big():
    """A larger synthetic pool (8000 x 1 x 6 x 6 images, 10 classes) for tight statistics."""
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(8000, 1, 6, 6, generator=g) * torch.linspace(0.2, 2.0, 36).reshape(1, 1, 6, 6)) + 0.5
    y = torch.randint(0, 10, (8000,), generator=g)
    from flexnet.data import DataBundle

    return DataBundle("synthetic", x, y, x[:100].clone(), y[:100].clone(), num_classes=10)


def lab(bundle, name, seed=0, **kw):
    return apply_labeling(bundle, {"name": name, "seed": seed, **kw})


ALL = ["semantic", "random_labels", "corrupt", "random_inputs", "permuted_inputs", "shuffled_pixels"]


def test_every_labeling_has_a_config():
    from pathlib import Path

    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf" / "labeling"
    names = {f.stem for f in conf.glob("*.yaml")}
    assert names == set(LABELINGS.names()) >= set(ALL)
    for f in conf.glob("*.yaml"):
        assert OmegaConf.load(f).name == f.stem


@pytest.mark.parametrize("name", ALL)
def test_reproducible_and_test_split_clean(digits, name):
    a, b = lab(digits, name, seed=5), lab(digits, name, seed=5)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.y_test, digits.y_test)
    if name == "permuted_inputs":  # the one labeling that also transforms the test split (its permutation)
        assert torch.equal(a.x_test, b.x_test) and not torch.equal(a.x_test, digits.x_test)
    else:
        assert torch.equal(a.x_test, digits.x_test)
    assert a.x_train.shape == digits.x_train.shape and a.y_train.dtype == torch.int64
    if name != "semantic":
        c = lab(digits, name, seed=6)
        assert not (torch.equal(a.x_train, c.x_train) and torch.equal(a.y_train, c.y_train))


def test_random_labels_uniform_and_independent_of_inputs(big):
    out = lab(big, "random_labels", seed=3)
    counts = torch.bincount(out.y_train, minlength=10)
    assert stats.chisquare(counts.numpy()).pvalue > 0.001  # uniform over the classes
    table = torch.zeros(10, 10)
    for t, r in zip(big.y_train.tolist(), out.y_train.tolist()):
        table[t, r] += 1
    assert stats.chi2_contingency(table.numpy()).pvalue > 0.001  # independent of the true class
    assert abs(float((out.y_train == big.y_train).float().mean()) - 0.1) < 0.02
    # and of the inputs: label vs mean intensity carries no information
    bright = big.x_train.mean((1, 2, 3)) > big.x_train.mean()
    assert stats.chi2_contingency(torch.stack([torch.bincount(out.y_train[bright], minlength=10),
                                               torch.bincount(out.y_train[~bright], minlength=10)]).numpy()).pvalue > 0.001


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_corrupt_rate_matches_p(big, p):
    out = lab(big, "corrupt", seed=1, p=p)
    n = big.pool_size
    assert abs(out.meta["corrupted"] / n - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-9
    changed = float((out.y_train != big.y_train).float().mean())
    assert abs(changed - p * 0.9) < 0.03  # a replaced label hits the true class 1 time in 10
    assert torch.equal(out.x_train, big.x_train)
    excl = lab(big, "corrupt", seed=1, p=p, exclude_true=True)
    assert abs(float((excl.y_train != big.y_train).float().mean()) - p) < 0.03


def test_corrupt_bad_p_is_one_line(big):
    with pytest.raises(ConfigError, match=r"labeling.p=1.5"):
        lab(big, "corrupt", p=1.5)


def test_random_inputs_match_pool_mean_and_std(big):
    out = lab(big, "random_inputs", seed=2)
    # per position (the default): every pixel's mean and std
    assert torch.allclose(out.x_train.mean(0), big.x_train.mean(0), atol=0.03)
    assert torch.allclose(out.x_train.std(0), big.x_train.std(0), rtol=0.05)
    assert abs(float(stats.kurtosis(out.x_train[:, 0, 0, 0].numpy()))) < 0.3  # Gaussian, not uniform (-1.2)
    g = lab(big, "random_inputs", seed=2, stats="global")
    assert abs(float(g.x_train.mean() - big.x_train.mean())) < 0.01
    assert abs(float(g.x_train.std() / big.x_train.std()) - 1) < 0.02
    assert stats.chisquare(torch.bincount(out.y_train, minlength=10).numpy()).pvalue > 0.001
    kept = lab(big, "random_inputs", seed=2, random_labels=False)
    assert torch.equal(kept.y_train, big.y_train)


def test_permuted_inputs_one_fixed_permutation(digits):
    a = lab(digits, "permuted_inputs", seed=4)
    perm = a.meta["permutation"]
    x = digits.x_train.reshape(digits.pool_size, -1)
    ax = a.x_train.reshape(digits.pool_size, -1)
    assert not torch.equal(perm, torch.arange(64))
    assert torch.equal(ax, x[:, perm])  # the same permutation for every sample
    assert torch.equal(lab(digits, "permuted_inputs", seed=4).x_train, a.x_train)  # and across calls
    assert torch.equal(a.y_train, digits.y_train)


def test_permuted_inputs_permutes_the_test_split_the_same_way(digits):
    """Zhang et al.'s shuffled pixels: the test images get the training pool's fixed permutation (Z2);
    test labels stay true, the other labelings leave the test split as it is."""
    a = lab(digits, "permuted_inputs", seed=4)
    perm = a.meta["permutation"]
    nt = digits.x_test.shape[0]
    assert nt > 0 and a.x_test.shape == digits.x_test.shape
    assert torch.equal(a.x_test.reshape(nt, -1), digits.x_test.reshape(nt, -1)[:, perm])
    assert torch.equal(a.y_test, digits.y_test)
    # a pixel at position j of a training image and of a test image land in the same place
    for xs, xt in ((a.x_train, digits.x_train), (a.x_test, digits.x_test)):
        assert torch.equal(xs.reshape(xs.shape[0], -1)[:, 0], xt.reshape(xt.shape[0], -1)[:, int(perm[0])])
    from flexnet.data import DataBundle

    empty = DataBundle("no-test", digits.x_train, digits.y_train, digits.x_test[:0], digits.y_test[:0],
                       num_classes=10)
    assert lab(empty, "permuted_inputs", seed=4).x_test.shape[0] == 0


def test_permuted_inputs_test_accuracy_is_measured_on_permuted_images(tmp_path):
    """In a job, a model trained on permuted digits scores on the permuted test split as it does on
    its training task (well above chance); on the un-permuted images it would be near chance."""
    from conftest import compose

    from flexnet.pipeline import load_data, run_job

    cfg = compose(["dataset=digits", "labeling=permuted_inputs", "search=fixed", "search.n=600", "scaling.params=3000",
                   "optimizer=adam", "optimizer.lr=0.01", "train.policy=fixed", "train.caps=null", "train.epochs=40", "train.min_steps=0",
                   "train.max_extensions=0", "convergence.hessian=false", "progress=false", "threads=1"])
    res = run_job(cfg, tmp_path)
    assert res["test_accuracy"] > 0.6, res["test_accuracy"]
    data = load_data(cfg, torch.device("cpu"))
    clean = load_dataset({"name": "digits", "seed": 0})
    assert not torch.equal(data.x_test, clean.x_test) and torch.equal(data.y_test, clean.y_test)


def test_permuted_inputs_moves_channels_together():
    from flexnet.data import DataBundle

    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    b = DataBundle("rgb", x, torch.tensor([0, 1]), x, torch.tensor([0, 1]), num_classes=2)
    out = lab(b, "permuted_inputs", seed=0)
    perm = out.meta["permutation"]
    assert torch.equal(out.x_train.reshape(2, 3, 16), x.reshape(2, 3, 16)[:, :, perm])


def test_shuffled_pixels_differ_per_sample(digits):
    out = lab(digits, "shuffled_pixels", seed=7)
    x = digits.x_train.reshape(digits.pool_size, -1)
    ox = out.x_train.reshape(digits.pool_size, -1)
    # each sample keeps its own pixel values (a permutation of them) ...
    assert torch.equal(ox.sort(1).values, x.sort(1).values)
    # ... under its own permutation: recover it from a sample with distinct values
    ramp = torch.arange(64, dtype=torch.float32).repeat(50, 1)
    from flexnet.data import DataBundle

    b = DataBundle("ramp", ramp.reshape(50, 1, 8, 8), torch.arange(50) % 2, ramp[:1].reshape(1, 1, 8, 8),
                   torch.zeros(1, dtype=torch.int64), num_classes=2)
    perms = lab(b, "shuffled_pixels", seed=7).x_train.reshape(50, 64).long()
    assert len({tuple(p.tolist()) for p in perms}) == 50
    assert torch.equal(out.y_train, digits.y_train)
    # chunking is a memory detail only
    assert torch.equal(lab(digits, "shuffled_pixels", seed=7, chunk=100).x_train, out.x_train)


def test_labelings_on_tabular_vectors():
    b = load_dataset({"name": "gaussian", "seed": 0, "num_samples": 500, "num_test": 50, "dim": 8})
    for name in ALL:
        out = lab(b, name, seed=0)
        assert out.x_train.shape == (500, 8)
        assert torch.equal(out.x_test, b.x_test) or name == "permuted_inputs"
    perm = lab(b, "permuted_inputs").meta["permutation"]
    assert torch.equal(lab(b, "permuted_inputs").x_train, b.x_train[:, perm])
    assert torch.equal(lab(b, "permuted_inputs").x_test, b.x_test[:, perm])
