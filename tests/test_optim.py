"""Optimizers x regularizers x reparameterisations: composition, SAM, subspace, quant8, bad values."""
from __future__ import annotations

import copy
import itertools
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from flexnet.errors import ConfigError
from flexnet.fit import minimum as conv
from flexnet.fit.loop import Budget, Checks, Recipe, train_to_minimum
from flexnet.optim import apply_reparam, build_procedure
from flexnet.optim.reparam import FastfoodProjection, fwht, quantized_tensors

CONF = Path(__file__).resolve().parents[1] / "conf"
OPTIMIZERS = ["sgd", "gd", "adam", "adamw", "shampoo"]
REGULARIZERS = ["none", "weight_decay", "label_smoothing", "sam"]
REPARAMS = ["none", "subspace", "quant8"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread avoids oversubscription on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def conf(group: str, name: str, **over) -> dict:
    """An option's shipped yaml (so the defaults themselves are exercised), with overrides."""
    return {**yaml.safe_load((CONF / group / f"{name}.yaml").read_text()), **over}


def data(n=96, dim=10, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = means[y] + torch.randn(n, dim, generator=g)
    return x, y


def mlp(seed=0, dim=10, width=16, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, classes))


def n_params(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def recipe(proc, epochs=25):
    return Recipe(proc, Budget(policy="fixed", epochs=epochs, min_steps=0, max_extensions=0),
                  Checks(hessian=False, early_verdict=False, check_fitted=False), fit_threshold=2.0)


def plain_ce(model, x, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item()


@pytest.mark.parametrize("opt,reg,rep", list(itertools.product(OPTIMIZERS, REGULARIZERS, REPARAMS)))
def test_every_combination_composes_and_trains(opt, reg, rep):
    x, y = data()
    proc = build_procedure(conf("optimizer", opt, batch_size=None if opt == "gd" else 32), conf("regularizer", reg))
    rcfg = conf("reparam", rep, d=40) if rep == "subspace" else conf("reparam", rep)
    model, info = apply_reparam(mlp(), rcfg, torch.Generator().manual_seed(1))
    if rep == "subspace":
        assert n_params(model) == 40 == info["params"]["trainable"]
    before = plain_ce(model, x, y)
    res = train_to_minimum(model, x, y, recipe(proc), g=torch.Generator().manual_seed(2), seed=2)
    after = plain_ce(model, x, y)
    assert res.status != "diverged"
    assert after < 0.8 * before, (before, after)
    per_step = 2 if reg == "sam" else 1
    assert res.grad_evals == per_step * res.steps


def test_sam_takes_two_gradient_evaluations_per_step():
    x, y = data()
    proc = build_procedure(conf("optimizer", "sgd", batch_size=32), conf("regularizer", "sam", rho=0.05))
    model = mlp()
    forwards = []
    model.register_forward_hook(lambda *a: forwards.append(1))
    backwards = []
    for p in model.parameters():
        p.register_hook(lambda grad: backwards.append(1))
    stepper = proc.stepper(model, total_steps=10)
    steps = 7
    for i in range(steps):
        stepper.step(x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8])
    assert stepper.grad_evals == 2 * steps
    assert len(forwards) == 2 * steps
    assert len(backwards) == 2 * steps * len(list(model.parameters()))


def test_sam_update_differs_from_its_base_optimizer():
    x, y = data()
    base = build_procedure(conf("optimizer", "adam"), conf("regularizer", "none"))
    sam = build_procedure(conf("optimizer", "adam"), conf("regularizer", "sam", rho=0.5))
    m1, m2 = mlp(), mlp()
    s1, s2 = base.stepper(m1, 5), sam.stepper(m2, 5)
    l1, _ = s1.step(x, y)
    l2, _ = s2.step(x, y)
    assert torch.allclose(l1, l2)  # same loss at the same starting point
    diff = sum((a - b).abs().sum() for a, b in zip(m1.parameters(), m2.parameters()))
    assert diff > 1e-6
    # the lr schedule drives SAM's base optimizer (shared param groups)
    assert s2.optimizer.base_optimizer.param_groups[0]["lr"] == s2.optimizer.param_groups[0]["lr"]


def test_label_smoothing_loss_used_by_checks_and_accuracy_uses_true_labels():
    x, y = data()
    proc = build_procedure(conf("optimizer", "adam"), conf("regularizer", "label_smoothing", value=0.2))
    model = mlp()
    res = train_to_minimum(model, x, y, recipe(proc, 60), g=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
    smooth = nn.functional.cross_entropy(logits, y, label_smoothing=0.2).item()
    plain = nn.functional.cross_entropy(logits, y).item()
    assert res.train_loss == pytest.approx(smooth, rel=1e-4)
    assert smooth > plain + 0.05
    assert res.train_acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    # the minimum checks' gradient is the smoothed loss's gradient
    g_smooth = conv.grad_norm(model, x, y, proc.loss_fn)
    g_plain = conv.grad_norm(model, x, y, lambda lg, t: nn.functional.cross_entropy(lg, t))
    assert abs(g_smooth - g_plain) > 1e-4


def test_weight_decay_coupled_for_adam_decoupled_for_adamw():
    p = [nn.Parameter(torch.ones(3))]
    for name, expect in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        proc = build_procedure(conf("optimizer", name), conf("regularizer", "weight_decay", value=0.1))
        opt = proc.make_optimizer(p)
        assert type(opt) is expect and opt.param_groups[0]["weight_decay"] == 0.1
    # zero gradient: Adam's coupled L2 and AdamW's decoupled decay give different first steps
    outs = []
    for name in ("adam", "adamw"):
        q = nn.Parameter(torch.ones(3))
        proc = build_procedure(conf("optimizer", name, lr=0.1), conf("regularizer", "weight_decay", value=0.1))
        opt = proc.make_optimizer([q])
        q.grad = torch.zeros(3)
        opt.step()
        outs.append(q.detach().clone())
    assert torch.allclose(outs[1], torch.full((3,), 1 - 0.1 * 0.1))  # AdamW: w -= lr * wd * w
    assert torch.allclose(outs[0], torch.full((3,), 1 - 0.1), atol=1e-4)  # Adam: normalised L2 gradient


def test_shampoo_on_non_finite_statistics_is_a_divergence_not_a_crash():
    """pytorch-optimizer's Shampoo raises LinAlgError (SVD of non-finite statistics) once gradients go
    non-finite (seen on ViTs without momentum): the attempt ends `diverged`, the job goes on."""
    proc = build_procedure(conf("optimizer", "shampoo", momentum=0.0), conf("regularizer", "none"))
    model = mlp()
    with torch.no_grad():
        model[0].weight[0, 0] = float("inf")
    x, y = data()
    stepper = proc.stepper(model, 10)
    loss, _ = stepper.step(x, y)
    assert torch.isnan(loss)
    res = train_to_minimum(model, x, y, recipe(proc), g=torch.Generator().manual_seed(0))
    assert res.status == "diverged" and res.stop_reason == "diverged"


def test_scalable_shampoo_variant():
    from pytorch_optimizer import ScalableShampoo, Shampoo

    proc = build_procedure(conf("optimizer", "shampoo"), conf("regularizer", "none"))
    assert isinstance(proc.make_optimizer(mlp().parameters()), Shampoo)
    proc = build_procedure(conf("optimizer", "shampoo", variant="scalable", start_preconditioning_step=2),
                           conf("regularizer", "none"))
    model = mlp()
    assert isinstance(proc.make_optimizer(model.parameters()), ScalableShampoo)
    x, y = data()
    before = plain_ce(model, x, y)
    train_to_minimum(model, x, y, recipe(proc), g=torch.Generator().manual_seed(0))
    assert plain_ce(model, x, y) < 0.8 * before


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_subspace_identity_full_d_matches_plain_training(opt):
    x, y = data()
    proc = build_procedure(conf("optimizer", opt, batch_size=32), conf("regularizer", "none"))
    plain = mlp(seed=3)
    D = n_params(plain)
    sub, info = apply_reparam(copy.deepcopy(plain), {"name": "subspace", "d": D, "projection": "identity"},
                              torch.Generator().manual_seed(0))
    assert n_params(sub) == D and info["params"]["actual"] == D
    r1 = train_to_minimum(plain, x, y, recipe(proc, 15), g=torch.Generator().manual_seed(5))
    r2 = train_to_minimum(sub, x, y, recipe(proc, 15), g=torch.Generator().manual_seed(5))
    theta_plain = torch.cat([p.detach().reshape(-1) for p in plain.parameters()])
    assert not torch.allclose(theta_plain, sub.theta0)  # training moved the weights
    assert torch.allclose(sub.theta().detach(), theta_plain, atol=1e-4)
    assert r1.train_loss == pytest.approx(r2.train_loss, rel=1e-4)


@pytest.mark.parametrize("projection", ["dense", "fastfood"])
def test_subspace_small_d_trains_only_d_numbers(projection):
    x, y = data()
    model = mlp()
    D = n_params(model)
    sub, info = apply_reparam(model, {"name": "subspace", "d": 25, "projection": projection},
                              torch.Generator().manual_seed(0))
    assert n_params(sub) == 25 and [p.numel() for p in sub.parameters()] == [25]
    assert info["params"] == {"actual": 25, "trainable": 25, "full": D, "projection": projection}
    theta0 = sub.theta0.clone()
    proc = build_procedure(conf("optimizer", "adam"), conf("regularizer", "none"))
    before = plain_ce(sub, x, y)
    train_to_minimum(sub, x, y, recipe(proc, 40), g=torch.Generator().manual_seed(0))
    assert plain_ce(sub, x, y) < 0.9 * before
    assert torch.equal(sub.theta0, theta0)  # theta0 fixed
    # theta - theta0 lies in the d-dimensional range of P
    P = torch.stack([sub.projection(e) for e in torch.eye(25)], dim=1).detach()
    delta = (sub.theta() - sub.theta0).detach()
    coef = torch.linalg.lstsq(P, delta.unsqueeze(1)).solution
    assert torch.allclose(P @ coef, delta.unsqueeze(1), atol=1e-5)
    assert delta.norm() > 1e-3


def test_subspace_projection_is_seeded_and_auto_falls_back_to_fastfood():
    m = mlp()
    a, _ = apply_reparam(copy.deepcopy(m), {"name": "subspace", "d": 9}, torch.Generator().manual_seed(4))
    b, _ = apply_reparam(copy.deepcopy(m), {"name": "subspace", "d": 9}, torch.Generator().manual_seed(4))
    c, _ = apply_reparam(copy.deepcopy(m), {"name": "subspace", "d": 9}, torch.Generator().manual_seed(5))
    assert torch.equal(a.projection.P, b.projection.P) and not torch.equal(a.projection.P, c.projection.P)
    f, info = apply_reparam(copy.deepcopy(m), {"name": "subspace", "d": 9, "max_dense_mb": 1e-4},
                            torch.Generator().manual_seed(4))
    assert info["params"]["projection"] == "fastfood"
    assert sum(b.numel() for b in f.projection.buffers()) < 4 * n_params(m)  # O(D), not D*d


def test_fwht_and_fastfood_columns():
    from scipy.linalg import hadamard

    v = torch.randn(3, 16, dtype=torch.float64)
    H = torch.tensor(hadamard(16), dtype=torch.float64)
    assert torch.allclose(fwht(v), v @ H.T)
    ff = FastfoodProjection(D=50, d=20, g=torch.Generator().manual_seed(0)).double()
    P = torch.stack([ff(e) for e in torch.eye(20, dtype=torch.float64)], dim=1)
    norms = P.norm(dim=0)
    assert P.shape == (50, 20) and torch.linalg.matrix_rank(P) == 20
    assert 0.4 < norms.mean() < 1.2  # columns of comparable, unit-ish length


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_quant8_at_most_256_values_per_tensor_after_every_step(opt):
    x, y = data()
    model, info = apply_reparam(mlp(width=32), {"name": "quant8"}, torch.Generator())
    n = sum(p.numel() for p in model.parameters())
    assert info["params"] == {"weights": n, "bits": 8 * n, "fp32_equivalent": n / 4, "actual": n / 4}
    proc = build_procedure(conf("optimizer", opt, batch_size=16), conf("regularizer", "none"))
    seen = []

    def check(m):
        q = quantized_tensors(m)
        assert len(q) == 4
        counts = [t.unique().numel() for t in q.values()]
        assert max(counts) <= 256
        seen.append(max(counts))

    proc.post_step_hooks.append(check)
    before = plain_ce(model, x, y)
    res = train_to_minimum(model, x, y, recipe(proc, 10), g=torch.Generator().manual_seed(0))
    assert len(seen) == res.steps > 0
    assert max(seen) > 16  # a real 8-bit grid, not a collapsed one
    assert plain_ce(model, x, y) < 0.8 * before
    # the forward pass uses exactly the quantised weights
    ref = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    q = quantized_tensors(model)
    ref.load_state_dict({k: v for k, v in q.items()})
    assert torch.allclose(ref(x), model(x).detach(), atol=1e-6)
    for t in q.values():  # on a symmetric grid: integer multiples of one scale
        s = t.abs().max() / 127
        assert torch.allclose(t / s, torch.round(t / s), atol=1e-3)


def test_quant8_budget_counts_bits():
    """A quant8 job at scaling.params=n builds a model with ~4n weights (same bits as fp32 with n)."""
    from flexnet.pipeline import setup

    base = {"seed": 0, "device": "cpu", "dataset": {"name": "gaussian", "num_samples": 200, "num_test": 10,
                                                    "dim": 16, "num_centers": 4, "separation": 1.0, "data_seed": 0,
                                                    "max_pool_size": None, "seed": 0},
            "labeling": {"name": "semantic"}, "arch": conf("arch", "mlp"),
            "scaling": {"name": "width", "params": 500}, "optimizer": conf("optimizer", "sgd"),
            "regularizer": {"name": "none"}, "search": conf("search", "bisect"), "train": {}, "convergence": {},
            "logger": {"name": "none"}}
    fp = setup({**base, "reparam": {"name": "none"}})
    q8 = setup({**base, "reparam": conf("reparam", "quant8")})
    assert q8.plan.target == fp.plan.target == 500
    assert q8.plan.actual == pytest.approx(4 * fp.plan.actual, rel=0.1)


@pytest.mark.parametrize("opt_over,reg,rep,key", [
    ({"lr": -0.01}, {"name": "none"}, None, "optimizer.lr"),
    ({"lr": 0}, {"name": "none"}, None, "optimizer.lr"),
    ({}, {"name": "sam", "rho": 0.0}, None, "regularizer.rho"),
    ({}, {"name": "sam", "rho": -0.1}, None, "regularizer.rho"),
    ({}, {"name": "label_smoothing", "value": 1.0}, None, "regularizer.value"),
    ({}, {"name": "none"}, {"name": "subspace", "d": 0}, "reparam.d"),
    ({}, {"name": "none"}, {"name": "subspace", "d": 10 ** 6}, "reparam.d"),
    ({}, {"name": "none"}, {"name": "subspace", "d": 5, "projection": "identity"}, "reparam.d"),
    ({}, {"name": "none"}, {"name": "subspace", "d": 5, "projection": "magic"}, "reparam.projection"),
    ({"variant": "huge"}, {"name": "none"}, None, "optimizer.variant"),
    ({"momentun": 0.9}, {"name": "none"}, None, "optimizer.momentun"),
    ({}, {"name": "sam", "radius": 0.1}, None, "regularizer.radius"),
    ({}, {"name": "none"}, {"name": "quant8", "d": 3}, "reparam.d"),
])
def test_bad_values_stop_with_one_clear_line(opt_over, reg, rep, key):
    opt = "shampoo" if "variant" in opt_over else "adam"
    with pytest.raises(ConfigError) as e:
        proc = build_procedure(conf("optimizer", opt, **opt_over), reg)
        if rep is not None:
            apply_reparam(mlp(), rep, torch.Generator())
        proc.make_optimizer(mlp().parameters())
    msg = str(e.value)
    assert (msg.startswith(key + "=") or msg.startswith(key + ": unknown key")) and "\n" not in msg


@pytest.mark.parametrize("name", ["sgd", "gd", "adam", "adamw"])
def test_fused_update_on_cpu_floats_and_the_same_steps_as_unfused(name):
    """sgd, gd, adam and adamw take torch's fused kernel for float CPU parameters, and ten steps of it
    land where the per-tensor update does, up to rounding; complex parameters get the per-tensor one."""
    from flexnet.optim.base import OPTIMIZERS

    make = OPTIMIZERS.get(name)
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    nets = [nn.Linear(5, 3) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = make(nets[0].parameters(), lr=0.05)
    same = ("momentum", "nesterov", "betas", "eps", "weight_decay", "amsgrad")  # the config's knobs, not the kernel
    plain = type(fused)(nets[1].parameters(), lr=0.05, **{k: v for k, v in fused.defaults.items() if k in same})
    opts = [fused, plain]
    assert opts[0].defaults["fused"] is True and not opts[1].defaults.get("fused")
    for _ in range(10):
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not make([nn.Parameter(torch.zeros(3, dtype=torch.complex64))], lr=0.1).defaults.get("fused")
