"""Architectures and scaling laws: exact published counts, timm equality, solving along every
(arch, law) pair on the four input kinds, errors, forward passes, `python -m flexnet.describe`."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from flexnet.errors import ConfigError
from flexnet.models import ACTIVATIONS, ARCHS, SCALINGS, plan_model
from flexnet.models.base import meta_count

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
INPUTS = {"mnist1d": ((40,), 10), "digits": ((1, 8, 8), 10), "mnist": ((1, 28, 28), 10), "cifar": ((3, 32, 32), 10)}
TARGETS = [1e3, 1e4, 1e5, 1e6, 1e7]
TIMM_FAMILIES = {"resnet", "efficientnet", "vit"}
# the smallest of TARGETS each (arch, law) must reach on every input kind with its default knobs
# (smaller targets may be below the family's smallest model: then a clear error is required)
MIN_TARGET = {
    ("mlp", "width"): 1e4, ("mlp", "depth"): 1e6,
    ("cnn", "width"): 1e3, ("cnn", "depth"): 1e3,
    ("alexnet_small", "width"): 1e3, ("inception_small", "width"): 1e3,
    ("resnet", "width"): 1e4, ("resnet", "depth"): 1e7, ("resnet", "resnet_rs"): 1e4,
    ("efficientnet", "width"): 1e5, ("efficientnet", "depth"): 1e7, ("efficientnet", "efficientnet"): 1e5,
    ("vit", "width"): 1e3, ("vit", "depth"): 1e5, ("vit", "svit"): 1e3, ("vit", "sovit"): 1e3,
}


def _load(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path))  # Hydra's YAML rules (2.0e9 is a float)


def arch_config(arch: str) -> dict:
    return _load(CONF / "arch" / f"{arch}.yaml")


def arch_knobs(arch: str) -> dict:
    """An arch config as plan_model takes it (with its `name`)."""
    return arch_config(arch)


def scaling_cfg(law: str, params) -> dict:
    cfg = _load(CONF / "scaling" / f"{law}.yaml")
    cfg["params"] = params
    return cfg


# solved, not trained (Zhang et al.'s construction, the min-norm kernel): their parameter counts
# depend on the number of points and are asserted in tests/test_zhang.py
CLOSED_FORM = {"zhang_construction", "kernel_minnorm"}


def test_every_registered_pair_is_in_the_table_and_has_configs():
    pairs = {(a, law) for a in ARCHS.names() if a not in CLOSED_FORM for law in ARCHS.get(a).scalers}
    assert pairs == set(MIN_TARGET)
    for a in ARCHS.names():
        assert arch_config(a)["name"] == a
    for law in SCALINGS.names():
        assert _load(CONF / "scaling" / f"{law}.yaml")["name"] == law


# ----------------------------------------------------------------------------- Zhang et al. counts
@pytest.mark.parametrize("arch,knobs,expected", [
    ("mlp", dict(depth=1, width=512), 1_209_866),
    ("mlp", dict(depth=3, width=512), 1_735_178),
    ("alexnet_small", {}, 1_387_786),
    ("inception_small", dict(batchnorm=False), 1_649_402),
    ("inception_small", dict(batchnorm=True), 1_652_826),
])
def test_zhang_counts_exact(arch, knobs, expected):
    plan = plan_model({**arch_knobs(arch), **knobs}, {"name": "none"}, (3, 28, 28), 10)
    assert plan.actual == expected
    model = plan.build()  # a real CPU build agrees with the meta-device count
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 10)


# ----------------------------------------------------------------------------- timm equality
RS = dict(block="bottleneck", channels=[64, 128, 256, 512], stem_width=32, stem_type="deep",
          replace_stem_pool=True, avg_down=True, se_ratio=0.25)
PUBLISHED = [
    ("efficientnet_b0", "efficientnet", dict(width_multiplier=1.0, depth_multiplier=1.0), 5_288_548),
    ("efficientnet_b4", "efficientnet", dict(width_multiplier=1.4, depth_multiplier=1.8), 19_341_616),
    ("resnetrs50", "resnet", dict(RS, layers=[3, 4, 6, 3]), 35_691_912),
    ("resnetrs152", "resnet", dict(RS, layers=[3, 8, 36, 3]), 86_621_576),
    ("vit_tiny_patch16_224", "vit", dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, mlp_dim=768), 5_717_416),
    ("vit_base_patch16_224", "vit", dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_dim=3072), 86_567_656),
    ("vit_so400m_patch14_siglip_224", "vit", dict(patch_size=14, embed_dim=1152, depth=27, num_heads=16, mlp_dim=4304,
                                                  class_token=False, global_pool="map"), 428_833_704),
]


@pytest.mark.parametrize("timm_name,arch,knobs,expected", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_shapes_match_timm(timm_name, arch, knobs, expected):
    import timm

    with torch.device("meta"):
        ref = timm.create_model(timm_name, pretrained=False, num_classes=1000)
    ref_count = sum(p.numel() for p in ref.parameters())
    assert ref_count == expected
    plan = plan_model({**arch_knobs(arch), **knobs}, {"name": "none"}, (3, 224, 224), 1000)
    assert plan.actual == ref_count
    # the count that skips deep builds agrees with a full meta-device build
    assert meta_count(ARCHS.get(arch).build, (3, 224, 224), 1000, plan.shape) == ref_count


def test_sovit_anchor_without_head_is_timm_count():
    plan = plan_model({**arch_knobs("vit"), **PUBLISHED[-1][2]}, {"name": "none"}, (3, 224, 224), 1000)
    assert plan.actual - (1152 * 1000 + 1000) == 427_680_704


# ----------------------------------------------------------------------------- solving every pair
def _pair_params():
    out = []
    for (arch, law) in sorted(MIN_TARGET):
        for iname in INPUTS:
            for t in TARGETS:
                slow = arch in TIMM_FAMILIES and (iname != "cifar" or t in (1e3, 1e7))
                slow = slow or (arch, law) == ("inception_small", "width") and iname not in ("mnist1d", "cifar")
                slow = slow or arch in ("resnet", "efficientnet") and t >= 1e5  # 2.5-4.5 s each here
                out.append(pytest.param(arch, law, iname, t, id=f"{arch}-{law}-{iname}-{t:.0e}",
                                        marks=[pytest.mark.slow] if slow else []))
    return out


@pytest.mark.parametrize("arch,law,iname,target", _pair_params())
def test_solve_pair(arch, law, iname, target):
    shape, nc = INPUTS[iname]
    try:
        plan = plan_model(arch_knobs(arch), scaling_cfg(law, target), shape, nc)
    except ConfigError as e:
        assert target < MIN_TARGET[(arch, law)], f"{arch}/{law} must reach {target:g} on {iname}: {e}"
        assert f"scaling.params={target:g}: below the smallest {arch}" in str(e)
        return
    assert plan.target == target
    within = abs(plan.actual - target) <= 0.1 * target
    assert within or plan.note, (plan.actual, target)
    if plan.note:
        assert str(plan.actual) in plan.note and "granularity" in plan.note
    if plan.actual <= 1e5:  # the solver's count is the built model's count
        assert meta_count(ARCHS.get(arch).build, shape, nc, plan.shape) == plan.actual


@pytest.mark.parametrize("arch,law", sorted(MIN_TARGET))
def test_target_below_smallest_names_both(arch, law):
    with pytest.raises(ConfigError) as e:
        plan_model(arch_knobs(arch), scaling_cfg(law, 3), (40,), 10)
    msg = str(e.value)
    assert "scaling.params=3: below the smallest" in msg and "parameters at" in msg and "\n" not in msg


def test_target_above_ceiling_and_above_largest():
    with pytest.raises(ConfigError, match=r"scaling.params=1e\+06: above the ceiling scaling.max_params=100000"):
        plan_model(arch_knobs("mlp"), {"name": "width", "params": 1e6, "max_params": 1e5}, (40,), 10)
    with pytest.raises(ConfigError, match=r"scaling.params=1e\+09: above the largest cnn realisable by scaling=depth \(\d+ parameters"):
        plan_model(arch_knobs("cnn"), {"name": "depth", "params": 1e9}, (40,), 10)


def test_law_not_available_for_arch():
    with pytest.raises(ConfigError, match=r"scaling='sovit' is not available for arch='cnn'; allowed: depth, none, width"):
        plan_model(arch_knobs("cnn"), scaling_cfg("sovit", 1e4), (40,), 10)


def test_default_sweep_targets_realisable_for_cnn_depth_and_vit_sovit():
    for arch, law in [("cnn", "depth"), ("vit", "sovit")]:
        for t in (1000, 2000, 4000):
            plan = plan_model(arch_knobs(arch), scaling_cfg(law, t), (40,), 10)
            assert abs(plan.actual - t) <= 0.1 * t and not plan.note


# ----------------------------------------------------------------------------- exact counts of deep shapes
@pytest.mark.parametrize("arch,knobs", [
    ("mlp", dict(depth=37, width=9)),
    ("cnn", dict(layers=23, filters=5)),
    ("cnn", dict(variant="lenet", layers=23, channels=[3, 7], fc=[11, 5, 5, 5])),
    ("vit", dict(depth=9, embed_dim=12, num_heads=3, mlp_dim=7)),
    ("vit", dict(depth=7, embed_dim=16, num_heads=2, mlp_dim=9, class_token=False, global_pool="map")),
    ("resnet", dict(layers=[3, 1, 5, 2], channels=[4, 6, 8, 10], stem_width=4)),
    ("resnet", dict(RS, layers=[3, 4, 6, 3], channels=[8, 8, 16, 16], stem_width=8)),
])
@pytest.mark.parametrize("iname", ["mnist1d", "cifar"])
def test_shortcut_counts_equal_full_builds(arch, knobs, iname):
    from flexnet.models.base import count_built_params

    shape, nc = INPUTS[iname]
    full = {k: v for k, v in {**arch_knobs(arch), **knobs}.items() if k != "name"}
    assert count_built_params(ARCHS.get(arch), shape, nc, full) == meta_count(ARCHS.get(arch).build, shape, nc, full)


# ----------------------------------------------------------------------------- real builds, forward passes
SMALL = {
    "mlp": {}, "cnn": {}, "alexnet_small": dict(filters=4, fc=[8, 8]),
    "inception_small": dict(width_multiplier=0.1), "resnet": dict(channels=[4, 8, 8, 8], stem_width=4, layers=[1, 1, 1, 1]),
    "efficientnet": dict(width_multiplier=0.1, depth_multiplier=0.1),
    "vit": dict(embed_dim=8, depth=1, num_heads=2, mlp_dim=8),
}


@pytest.mark.parametrize("arch", sorted(SMALL))
@pytest.mark.parametrize("iname", sorted(INPUTS))
def test_forward_on_every_input_kind(arch, iname):
    shape, nc = INPUTS[iname]
    torch.manual_seed(0)
    plan = plan_model({**arch_knobs(arch), **SMALL[arch]}, {"name": "none"}, shape, nc)
    model = plan.build()
    assert sum(p.numel() for p in model.parameters()) == plan.actual
    x = torch.randn(3, *shape)
    y = model.train()(x)
    assert y.shape == (3, nc) and torch.isfinite(y).all()
    y.sum().backward()
    assert model.eval()(x).shape == (3, nc)


def test_vit_hessian_vector_product_works():
    # the EMC minimum check takes Hessian-vector products (double backward through attention)
    plan = plan_model(arch_knobs("vit"), scaling_cfg("sovit", 2000), (40,), 10)
    model = plan.build()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 40)), torch.tensor([0, 1, 2, 3]))
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * torch.ones_like(g)).sum() for g in grads)
    hv = torch.autograd.grad(dot, params)
    assert all(torch.isfinite(h).all() for h in hv)


def test_lenet_variant_and_flat_vectors():
    for shape in [(40,), (1, 8, 8), (3, 32, 32), (5,)]:
        plan = plan_model({**arch_knobs("cnn"), "variant": "lenet"}, scaling_cfg("width", 5e3), shape, 7)
        assert plan.build()(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("arch", sorted(SMALL))
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activation_knob(arch, act):
    plan = plan_model({**arch_knobs(arch), **SMALL[arch], "activation": act}, {"name": "none"}, (1, 8, 8), 10)
    model = plan.build().eval()
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    names = {type(m).__name__.lower() for m in model.modules()}
    expected = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu", "silu": "silu"}.get(act)
    if expected:
        assert any(expected in n for n in names)
    elif act == "identity":  # no nonlinearity of the listed kinds left in the layers
        assert not any(a in n for n in names for a in ("relu", "tanh", "gelu")) or arch == "efficientnet"


def test_bad_knobs_are_config_errors():
    with pytest.raises(ConfigError, match="arch.activation='swishy'"):
        plan_model({**arch_knobs("cnn"), "activation": "swishy"}, {"name": "none"}, (40,), 10)
    with pytest.raises(ConfigError, match=r"arch.patch_size=5: must divide the input size 8x8; allowed: \[1, 2, 4, 8\]"):
        plan_model({**arch_knobs("vit"), "patch_size": 5}, {"name": "none"}, (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="arch.block='wide'"):
        plan_model({**arch_knobs("resnet"), "block": "wide"}, {"name": "none"}, (40,), 10)


def test_resnet_small_input_stem_keeps_resolution():
    plan = plan_model({**arch_knobs("resnet"), **SMALL["resnet"]}, {"name": "none"}, (3, 32, 32), 10)
    model = plan.build().model
    feats = model.forward_features(torch.randn(1, 3, 32, 32))
    assert feats.shape[-1] == 4  # 32 / 8 (three stride-2 stages), no 4x stem downsampling
    big = plan_model({**arch_knobs("resnet"), **SMALL["resnet"]}, {"name": "none"}, (3, 224, 224), 10).build().model
    assert big.forward_features(torch.randn(1, 3, 224, 224)).shape[-1] == 7


@pytest.mark.slow
def test_resnet_rs_law_follows_rs_rows():
    rs50 = plan_model(arch_knobs("resnet"), scaling_cfg("resnet_rs", 35_691_912), (3, 224, 224), 1000)
    assert rs50.actual == 35_691_912 and rs50.shape["layers"] == [3, 4, 6, 3]
    rs152 = plan_model(arch_knobs("resnet"), scaling_cfg("resnet_rs", 86_621_576), (3, 224, 224), 1000)
    assert rs152.shape["layers"] == [3, 8, 36, 3] and rs152.actual == 86_621_576
    small = plan_model(arch_knobs("resnet"), scaling_cfg("resnet_rs", 1e5), (3, 32, 32), 10)
    assert small.shape["layers"] == [3, 4, 6, 3] and small.shape["channels"][0] < 64


@pytest.mark.slow
def test_efficientnet_compound_law_and_resolution():
    plan = plan_model(arch_knobs("efficientnet"), scaling_cfg("efficientnet", 5.3e6), (3, 224, 224), 1000)
    phi = math.log(plan.shape["width_multiplier"]) / math.log(1.1)
    assert plan.shape["depth_multiplier"] == pytest.approx(1.2 ** phi, rel=1e-4)
    assert abs(phi) < 1.0 and "input_scale" not in plan.shape or plan.shape["input_scale"] == 1.0
    cfg = {**scaling_cfg("efficientnet", 1e5), "resolution": True}
    res = plan_model(arch_knobs("efficientnet"), cfg, (3, 32, 32), 10)
    phi = math.log(res.shape["width_multiplier"]) / math.log(1.1)
    assert res.shape["input_scale"] == pytest.approx(1.15 ** phi, rel=1e-4)
    assert res.build().eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.slow
def test_svit_and_sovit_hit_their_table_rows():
    # Zhai et al. B row: 768/12/3072/12 on 224px 16px patches is vit_base (86,567,656)
    b = plan_model({**arch_knobs("vit"), "patch_size": 16}, scaling_cfg("svit", 86_567_656), (3, 224, 224), 1000)
    assert (b.shape["embed_dim"], b.shape["depth"], b.shape["mlp_dim"], b.shape["num_heads"]) == (768, 12, 3072, 12)
    so = plan_model({**arch_knobs("vit"), "patch_size": 14, "class_token": False, "global_pool": "map"},
                    scaling_cfg("sovit", 428_833_704), (3, 224, 224), 1000)
    assert abs(so.actual / 428_833_704 - 1) < 0.02
    assert abs(so.shape["embed_dim"] - 1152) <= 32 and abs(so.shape["depth"] - 27) <= 1 and so.shape["num_heads"] == 16
    tiny = plan_model(arch_knobs("vit"), scaling_cfg("sovit", 2e3), (40,), 10)
    assert tiny.shape["embed_dim"] % tiny.shape["num_heads"] == 0


# ----------------------------------------------------------------------------- describe
def _describe(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "flexnet.describe", "--json", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


@pytest.mark.slow  # CLI runs, ~17 s here
def test_describe_given_input_builds_timm_shape():
    r = _describe("arch=vit", "scaling=none", "arch.patch_size=16", "arch.embed_dim=192", "arch.depth=12",
                  "arch.num_heads=3", "arch.mlp_dim=768", "describe.input_shape=[3,224,224]", "describe.num_classes=1000")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["arch"] == "vit" and out["params"] == {"target": None, "actual": 5_717_416}
    assert out["shape"]["embed_dim"] == 192 and out["input_shape"] == [3, 224, 224] and out["input_from"] == "describe"


@pytest.mark.slow  # CLI runs, ~18 s here
def test_describe_from_dataset_and_errors():
    r = _describe("dataset=digits", "arch=cnn", "scaling=depth", "scaling.params=5000")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["input_shape"] == [1, 8, 8] and out["params"]["target"] == 5000
    assert abs(out["params"]["actual"] - 5000) <= 500
    r = _describe("arch=cnn", "scaling=depth", "scaling.params=10", "+describe.input_shape=[40]", "+describe.num_classes=10")
    assert r.returncode == 2 and "below the smallest cnn" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("arch", [pytest.param(a, marks=[pytest.mark.slow] if a in TIMM_FAMILIES else [])
                                  for a in ARCHS.names()])
def test_every_config_pair_composes_in_process(arch):
    from flexnet.describe import describe

    if True:
        for law in SCALINGS.names():
            args = [f"arch={arch}", f"scaling={law}", "describe.input_shape=[3,32,32]", "describe.num_classes=10"]
            if law != "none":
                t = MIN_TARGET.get((arch, law), 1e5)
                args.append(f"scaling.params={t:g}")
            if law in ARCHS.get(arch).scalers or law == "none":
                out = describe(args)
                assert out["arch"] == arch and out["scaling"] == law and out["params"]["actual"] > 0
            else:
                with pytest.raises(ConfigError, match=f"scaling='{law}' is not available for arch='{arch}'"):
                    describe(args)
