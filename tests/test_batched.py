"""Batched attempts: K attempts trained as one stacked model mean the same as one at a time."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from flexnet.fit.loop import Budget, Checks, Recipe, train_to_minimum
from flexnet.fit.stacked import batchable, train_batched
from flexnet.optim import build_procedure
from flexnet.search import Attempt, bisect_search


def _setup(K, n, seed=0):
    gs = [torch.Generator().manual_seed(seed + i) for i in range(K)]
    xs = [torch.randn(n, 12, generator=g) for g in gs]
    ys = [torch.randint(0, 5, (n,), generator=g) for g in gs]

    def mk(i):
        torch.manual_seed(1000 + i)
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 5))

    return xs, ys, mk


@pytest.mark.parametrize("opt", [
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 32},
    {"name": "adam", "lr": 0.01, "batch_size": 32},
])
@pytest.mark.parametrize("n", [48, 400])  # 48: every attempt fits; 400: none can (verified or not)
@pytest.mark.slow  # ~14 s here
def test_batched_matches_sequential(opt, n):
    K = 3
    xs, ys, mk = _setup(K, n)
    rec = Recipe(build_procedure(opt, {"name": "none"}), Budget(policy="fixed", epochs=100, min_steps=0, max_extensions=1),
                 # polish_steps=0: the iterate itself, as batched; check_fitted: fits' gradients compared too
                 Checks(patience=5, patience_steps=20, polish_steps=0, check_fitted=True))
    seq = [train_to_minimum(mk(i), xs[i], ys[i], rec, g=torch.Generator().manual_seed(7 + i), seed=i)
           for i in range(K)]
    models = [mk(i) for i in range(K)]
    assert batchable(models, rec)
    bat = train_batched(models, xs, ys, rec, [torch.Generator().manual_seed(7 + i) for i in range(K)], list(range(K)))
    for a, b in zip(seq, bat):
        assert a.status == b.status and a.stop_reason == b.stop_reason
        # same seeds and data; float summation order differs, so trajectories agree closely, not bitwise
        assert abs(a.epochs - b.epochs) <= max(3, 0.1 * a.epochs) and a.extensions == b.extensions
        assert a.train_acc == pytest.approx(b.train_acc, abs=3 / n)
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=0.2, abs=1e-3)
    if n == 48:
        assert all(b.status == "fitted" for b in bat)
    else:
        assert all(b.status != "fitted" for b in bat)


def test_not_batchable_falls_back():
    xs, ys, mk = _setup(2, 32)
    rec = Recipe(build_procedure({"name": "sgd", "lr": 0.1, "batch_size": 16}, {"name": "none"}),
                 Budget(policy="fixed", epochs=20, min_steps=0, max_extensions=0))
    bn = [nn.Sequential(nn.Linear(12, 8), nn.BatchNorm1d(8), nn.Linear(8, 5)) for _ in range(2)]
    assert not batchable(bn, rec)
    res = train_batched(bn, xs, ys, rec, [torch.Generator().manual_seed(i) for i in range(2)], [0, 1])
    assert len(res) == 2 and all(r.epochs > 0 for r in res)


def test_search_batches_the_retries():
    class O:
        def __init__(self):
            self.single, self.batches = [], []

        def __call__(self, n, a):
            self.single.append((n, a))
            return Attempt(n, a, n <= 100)

        def batch(self, n, attempts):
            self.batches.append((n, tuple(attempts)))
            return [Attempt(n, a, n <= 100) for a in attempts]

    o = O()
    r = bisect_search(o, start=16, pool=1000, resolution=0.05, batch_attempts=True)
    assert r.emc <= 100 < r.failed
    assert o.batches == [(r.failed, (1, 2, 3))]
    assert all(a == 0 for _, a in o.single)


def test_converge_policy_is_trained_one_attempt_at_a_time():
    """train.policy=converge lowers each attempt's lr at its own plateaus, which one stacked
    optimizer cannot do: such attempts are not batchable (the caller trains them one at a time)."""
    xs, ys, mk = _setup(2, 48)
    opt = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 32}
    models = [mk(i) for i in range(2)]
    fixed = Recipe(build_procedure(opt, {"name": "none"}), Budget(policy="fixed", epochs=10, min_steps=0))
    conv = Recipe(build_procedure(opt, {"name": "none"}), Budget(policy="converge", epochs=10, min_steps=0))
    assert batchable(models, fixed) and not batchable(models, conv)
    res = train_batched(models, xs[:2], ys[:2], conv, [torch.Generator().manual_seed(i) for i in range(2)], [0, 1])
    assert [r.policy for r in res] == ["converge", "converge"]
