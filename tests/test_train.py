"""Training to a minimum: real training on CPU, the stop reasons and the minimum checks."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from flexnet.fit.loop import Budget, Checks, Recipe, train_to_minimum
from flexnet.fit.minimum import Plateau, evaluate, extreme_eigenvalues, grad_norm
from flexnet.optim import build_procedure


def _recipe(opt=None, **kw):
    opt = opt or {"name": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 32}
    budget = kw.pop("budget", Budget(epochs=300, min_steps=0, max_extensions=0))
    checks = kw.pop("checks", Checks())
    return Recipe(build_procedure(opt, {"name": "none"}), budget, checks, **kw)


@pytest.mark.parametrize("check_fitted", [False, True])
def test_mlp_memorises_32_random_labels(check_fitted):
    """A fit is decided by the fit threshold alone; its gradient and Hessian are measured only when
    convergence.check_fitted asks (off by default: a fit is no candidate minimum)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 20, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))
    checks = Checks(check_fitted=True) if check_fitted else Checks()
    res = train_to_minimum(model, x, y, _recipe(checks=checks), g=torch.Generator().manual_seed(1))
    assert res.status == "fitted" and res.stop_reason == "fitted"
    acc, _ = evaluate(model, x, y)
    assert acc == 1.0 == res.train_acc
    assert 0 < res.epochs < 300
    if check_fitted:
        assert res.grad_norm is not None and res.min_eig is not None and res.lanczos_iters > 0
    else:
        assert res.min_eig is None and res.lanczos_iters is None


def test_divergence_is_reported_as_such():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 10, generator=g) * 100
    y = torch.randint(0, 3, (64,), generator=g)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    res = train_to_minimum(model, x, y, _recipe({"name": "sgd", "lr": 1e6, "momentum": 0.9, "batch_size": 64}),
                           g=torch.Generator().manual_seed(1))
    assert res.status == "diverged" and res.stop_reason == "diverged"


def _xor(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    return x, y


def test_unfittable_convex_problem_is_a_verified_failure_found_early():
    """A linear classifier cannot fit XOR; its loss is convex, so training reaches a verified
    minimum (small gradient, plateau, PSD Hessian) and the early verdict stops the attempt."""
    x, y = _xor()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2))
    checks = Checks(grad_tol=1e-3, patience=10, patience_steps=10)
    res = train_to_minimum(model, x, y,
                           _recipe({"name": "gd", "lr": 0.5, "momentum": 0.9, "batch_size": None,
                                    "schedule": "constant"},
                                   budget=Budget(epochs=5000, min_steps=0, max_extensions=0), checks=checks),
                           g=torch.Generator().manual_seed(1))
    assert res.status == "failed" and res.verified is True
    assert res.stop_reason == "verified_minimum" and res.epochs < 5000
    assert res.grad_norm_polished <= 1e-3 and res.min_eig >= -1e-2 and res.plateaued
    assert res.train_acc < 1.0


def _descending(policy):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 20, generator=g)
    y = torch.randint(0, 10, (512,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    return train_to_minimum(model, x, y,
                            _recipe({"name": "sgd", "lr": 0.01, "momentum": 0.0, "batch_size": 512,
                                     "schedule": "constant"},
                                    budget=Budget(policy=policy, epochs=20, min_steps=0, max_extensions=1)),
                            g=torch.Generator().manual_seed(1))


def test_still_descending_at_the_cap_is_unverified():
    """converge policy: the loss still falls when the safety cap is reached: unverified, never a
    verified failure, and the lr was never lowered (no plateau was seen)."""
    res = _descending("converge")
    assert res.status == "unverified" and res.verified is False and res.stop_reason == "cap"
    assert res.plateaued is False and res.lr_decays == 0 and res.lr_final == 1.0
    assert res.steps == 20 and res.train_acc < 1.0


def test_fixed_policy_extends_a_still_descending_failure():
    """fixed policy (the old behaviour): the budget is spent, one extension runs, then unverified."""
    res = _descending("fixed")
    assert res.status == "unverified" and res.verified is False and res.stop_reason == "budget"
    assert res.extensions == 1 and res.train_acc < 1.0 and res.policy == "fixed"


def test_lr_stays_constant_until_a_plateau_then_drops_there():
    """converge policy: no schedule to zero. The lr seen by every epoch is the procedure's lr
    until the first unverified plateau, and each later drop is one lr_decay factor."""
    x, y = _xor()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2))
    lrs = []
    res = train_to_minimum(model, x, y,
                           _recipe({"name": "gd", "lr": 0.5, "momentum": 0.9, "batch_size": None},
                                   budget=Budget(epochs=5000, min_steps=0, lr_decay=0.5),
                                   checks=Checks(grad_tol=1e-4, patience=10, patience_steps=10, polish_steps=0)),
                           g=torch.Generator().manual_seed(1), on_epoch=lambda m, r: lrs.append(r["lr"]))
    assert res.stop_reason == "verified_minimum" and res.lr_decays >= 1
    distinct = sorted(set(lrs), reverse=True)
    assert distinct[0] == 0.5 and lrs[:10] == [0.5] * 10
    assert distinct == [0.5 * 0.5 ** k for k in range(res.lr_decays + 1)]
    assert res.lr_final == 0.5 ** res.lr_decays


def test_a_larger_cap_changes_nothing_for_an_attempt_that_ended_before_it():
    """The converge policy's lr does not depend on the cap: the same attempt under twice the cap
    takes the same trajectory to the same verdict."""
    x, y = _xor()
    out = []
    for cap in (4000, 8000):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        res = train_to_minimum(model, x, y,
                               _recipe({"name": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 32},
                                       budget=Budget(epochs=1, min_steps=cap),
                                       checks=Checks(grad_rule="init", grad_rel=1e-2, patience=10, patience_steps=50)),
                               g=torch.Generator().manual_seed(1))
        out.append(res)
    a, b = out
    assert a.stop_reason != "cap" and a.steps < 4000
    assert (a.status, a.stop_reason, a.steps, a.train_loss, a.grad_norm) == \
        (b.status, b.stop_reason, b.steps, b.train_loss, b.grad_norm)


def test_blown_up_attempt_is_degenerate_not_a_verified_minimum():
    """Adam at lr 1e3 kills the ReLUs: the loss sits flat far above its value at initialisation
    with a tiny gradient. That is no minimum of the loss: status degenerate."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 20, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    res = train_to_minimum(model, x, y,
                           _recipe({"name": "adam", "lr": 1e3, "batch_size": 64},
                                   budget=Budget(epochs=400, min_steps=0),
                                   checks=Checks(grad_tol=0.05, patience=10, patience_steps=20)),
                           g=torch.Generator().manual_seed(1))
    assert res.status == "degenerate" and res.stop_reason == "degenerate" and res.verified is False
    assert res.train_loss is None or res.train_loss >= res.init_loss


def test_relative_gradient_tolerance_is_a_fraction_of_the_initial_gradient():
    """grad_rel: the tolerance is a fraction of the attempt's own full-batch gradient norm at
    initialisation (measured before the first step), and the verdict applies it."""
    x, y = _xor()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2))
    g0 = grad_norm(model, x, y, nn.functional.cross_entropy)
    res = train_to_minimum(model, x, y,
                           _recipe({"name": "gd", "lr": 0.5, "momentum": 0.9, "batch_size": None},
                                   budget=Budget(epochs=5000, min_steps=0),
                                   checks=Checks(grad_rule="init", grad_rel=1e-2, patience=10, patience_steps=10)),
                           g=torch.Generator().manual_seed(1))
    assert res.init_grad_norm == pytest.approx(g0) and res.grad_tol == pytest.approx(1e-2 * g0)
    assert res.stop_reason == "verified_minimum" and res.grad_norm_polished <= res.grad_tol


def test_polish_removes_an_offset_along_a_stiff_direction_but_not_the_model():
    """The iterate of SGD at a finite lr sits off the valley floor along stiff directions, where the
    full-batch gradient is large although the loss is flat. Here: a convex model at its minimum,
    moved along the top Hessian eigenvector. Fifty GD steps at 1/lambda_max on a copy bring the
    gradient back down by orders of magnitude; the model itself is untouched."""
    from flexnet.fit.minimum import hvp_operator, polish

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = torch.randint(0, 3, (256,), generator=g)
    torch.manual_seed(0)
    model = nn.Linear(10, 3)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=500, tolerance_grad=1e-10,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    assert grad_norm(model, x, y, nn.functional.cross_entropy) < 1e-4
    hvp, dim = hvp_operator(model, x, y, nn.functional.cross_entropy)
    v = torch.randn(dim, generator=g)
    for _ in range(50):  # top eigenvector by power iteration
        v = hvp(v).detach()
        v /= v.norm()
    with torch.no_grad():
        off = 0
        for p in model.parameters():
            p += 0.5 * v[off:off + p.numel()].view_as(p)
            off += p.numel()
    before = [p.detach().clone() for p in model.parameters()]
    g_iter = grad_norm(model, x, y, nn.functional.cross_entropy)
    m, lam = polish(model, x, y, nn.functional.cross_entropy, steps=50)
    assert lam > 0 and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    g_pol = grad_norm(m, x, y, nn.functional.cross_entropy)
    assert g_iter > 1e-2 and g_pol < 1e-2 * g_iter
    assert evaluate(m, x, y)[1] < evaluate(model, x, y)[1]


def _dense_hessian_eigs(model, x, y):
    from torch.func import functional_call, hessian

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat):
        ps, off = {}, 0
        for n, s in zip(names, shapes):
            k = math.prod(s)
            ps[n] = flat[off:off + k].view(s)
            off += k
        return nn.functional.cross_entropy(functional_call(model, ps, (x,)), y)

    model.eval()
    H = hessian(loss)(flat0)
    return torch.linalg.eigvalsh((H + H.T) / 2)


def _trained_point(model, x, y, epochs=30):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_lanczos_matches_dense_hessian(kind):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    if kind == "mlp":
        x = torch.randn(60, 5, generator=g, dtype=torch.float64)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    else:
        x = torch.randn(40, 1, 6, 6, generator=g, dtype=torch.float64)
        model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Conv2d(3, 4, 3), nn.Tanh(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()
    y = torch.randint(0, 3, (x.shape[0],), generator=g)
    _trained_point(model, x, y)
    exact = _dense_hessian_eigs(model, x, y)
    assert exact[0] < -1e-4, "test point should have negative curvature"
    rep = extreme_eigenvalues(model, x, y, nn.functional.cross_entropy, tol=1e-10, max_iters=20000, chunk=17)
    assert rep.min_eig == pytest.approx(float(exact[0]), rel=1e-4)
    assert rep.max_eig == pytest.approx(float(exact[-1]), rel=1e-4)
    assert rep.iterations > 0


def test_grad_norm_chunking_is_exact():
    torch.manual_seed(0)
    x = torch.randn(100, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (100,))
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    a = grad_norm(model, x, y, nn.functional.cross_entropy, chunk=7)
    b = grad_norm(model, x, y, nn.functional.cross_entropy, chunk=1000)
    assert a == pytest.approx(b, rel=1e-10) and a > 0


def test_plateau_needs_epochs_and_steps():
    p = Plateau(patience=3, patience_steps=100, rel_tol=1e-3, smoothing=0.0)
    for i, loss in enumerate([1.0, 0.5, 0.5, 0.5, 0.5]):
        flat = p.update(loss, step=(i + 1) * 10)
    assert not flat  # 3 flat epochs but only 30 steps
    for i in range(5, 15):
        flat = p.update(0.5, step=(i + 1) * 10)
    assert flat
    q = Plateau(patience=3, patience_steps=0, rel_tol=1e-3, smoothing=0.0)
    assert not any(q.update(1.0 / (k + 1), step=k) for k in range(20))  # still descending


def test_pyhessian_trace_close_to_exact():
    from flexnet.fit.minimum import hutchinson_trace

    torch.manual_seed(0)
    x = torch.randn(80, 4)
    y = torch.randint(0, 3, (80,))
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    _trained_point(model, x, y, epochs=50)
    exact = float(_dense_hessian_eigs(model, x, y).sum())
    est = hutchinson_trace(model, x, y, nn.functional.cross_entropy, max_iters=200, seed=1)
    assert math.isfinite(est) and est == pytest.approx(exact, rel=0.3)


def test_grad_tol_auto_calibrates_and_is_recorded(tmp_path):
    import json

    from conftest import TINY, compose
    from flexnet.pipeline import run_job

    cfg = compose([*TINY, "convergence.grad_tol=auto", "convergence.calibration_n=16"])
    res = run_job(cfg, tmp_path)
    tol = res["grad_tol"]
    assert tol["mode"] == "auto" and tol["calibration_n"] == 16
    assert tol["grad_tol"] == pytest.approx(tol["calibration_grad_norm"] * tol["calibration_factor"])
    assert json.loads((tmp_path / "emc.json").read_text())["grad_tol"]["grad_tol"] == pytest.approx(tol["grad_tol"])


def test_minibatches_are_balanced_with_no_small_remainder():
    """ceil(n / bs) batches, sizes within one of each other, none above bs, covering [0, n) in order:
    no trailing batch of a few samples (it made sizes with a small remainder much harder to fit)."""
    from flexnet.fit.loop import batch_bounds

    assert batch_bounds(2178, 128) == [(i * 121, (i + 1) * 121) for i in range(18)]
    assert batch_bounds(32, 16) == [(0, 16), (16, 32)]
    assert batch_bounds(1, 16) == [(0, 1)]
    for n in range(1, 300):
        for bs in (1, 2, 7, 16, 128, 500):
            b = batch_bounds(n, bs)
            sizes = [hi - lo for lo, hi in b]
            assert b[0][0] == 0 and b[-1][1] == n and all(b[i][1] == b[i + 1][0] for i in range(len(b) - 1))
            assert max(sizes) - min(sizes) <= 1 and (min(sizes) > 1 or bs == 1 or n == 1)
            if bs == 2 and n % 2 and n > 1:  # the one case where a batch of one is avoided by a batch of three
                assert len(b) == n // 2 and max(sizes) == 3
            else:
                assert len(b) == -(-n // bs) and max(sizes) <= bs


def test_batch_norm_model_trains_when_n_is_one_past_a_batch_multiple():
    from flexnet.fit.loop import batch_bounds

    assert batch_bounds(33, 16) == [(0, 11), (11, 22), (22, 33)]
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(33, 6, generator=g), torch.randint(0, 2, (33,), generator=g)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    res = train_to_minimum(model, x, y, _recipe({"name": "sgd", "lr": 0.1, "batch_size": 16},
                                                budget=Budget(epochs=3, min_steps=0, max_extensions=0),
                                                checks=Checks(hessian=False)), g=torch.Generator().manual_seed(1))
    assert res.epochs == 3 and res.steps == 9


def test_lanczos_on_a_dead_network_reports_no_spectrum():
    """A network whose every ReLU is dead has a zero Hessian: ARPACK stops with 'starting vector
    is zero' (info -9). That must read as "no verified minimum" (NaN), not crash the job."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3, bias=False))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    rep = extreme_eigenvalues(model, x, y, nn.functional.cross_entropy, max_iters=40)
    assert math.isnan(rep.min_eig) and rep.iterations >= 1


def test_epoch_in_one_gather_trains_exactly_as_minibatch_gathers(monkeypatch):
    """A small subset is permuted once per epoch and sliced into minibatches; a large one is gathered
    a minibatch at a time. Both orders are the same samples, so the weights end bit for bit equal."""
    import flexnet.fit.loop as loop
    from flexnet.optim import build_procedure

    torch.manual_seed(0)
    x, y = torch.randn(300, 8), torch.randint(0, 4, (300,))
    rec = loop.Recipe(build_procedure({"name": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 64}, {"name": "none"}),
                      loop.Budget(epochs=5, min_steps=0, policy="fixed", max_extensions=0))
    mb = loop.minibatches(300, rec)
    out = []
    for limit in (loop._GATHER_BYTES, 0):  # 0: every subset counts as large
        monkeypatch.setattr(loop, "_GATHER_BYTES", limit)
        torch.manual_seed(1)
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        stepper, g = rec.procedure.stepper(net, mb.total_steps), torch.Generator().manual_seed(2)
        stats = [loop.train_epoch(net, stepper, x, y, mb, mb.sizes("cpu"), g) for _ in range(5)]
        out.append((stats, [p.detach().clone() for p in net.parameters()]))
    assert out[0][0] == out[1][0]
    assert all(torch.equal(a, b) for a, b in zip(out[0][1], out[1][1]))
