"""What `-m` does with no swept key, per arch and scaling law (conf/sweep_sizes/, conf/config.yaml's list),
and the per-arch defaults composed after config.yaml (conf/arch_defaults/, conf/optimizer_arch/): every
law's default sizes solve to sensible shapes on mnist1d, and the headline command composes as documented."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from flexnet.config import compose_config
from flexnet.models import ARCHS, plan_model
from flexnet.utils import knobs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
MNIST1D = ((40,), 10)  # the default dataset's input and classes


def _hydra_cfg(overrides: list[str]):
    return compose_config(overrides, hydra=True)


def default_sizes(arch: str, law: str) -> list[float]:
    cfg = _hydra_cfg([f"arch={arch}", f"scaling={law}"])
    return [float(v) for v in str(cfg.hydra.sweeper.params["scaling.params"]).split(",")]


def _pairs() -> list[tuple[str, str]]:
    import flexnet.models  # noqa: F401  (registers every family)

    return sorted((a, law) for a in ARCHS.names() for law in ARCHS.get(a).scalers)


def sensible(arch: str, shape: dict) -> str:
    """Why a solved shape is not sensible ('' when it is): what a reader of the shape would object to."""
    if arch == "vit":
        e, h, m, d = shape["embed_dim"], shape["num_heads"], shape["mlp_dim"], shape["depth"]
        if not (d >= 1 and h >= 1 and e % h == 0):
            return f"depth {d}, heads {h} of width {e}"
        if e // h < 8:
            return f"heads of {e // h} dims"
        if m < e:
            return f"MLP {m} narrower than the embedding {e}"
    elif arch == "mlp":
        if shape["width"] < 10 or shape["depth"] < 1:
            return f"width {shape['width']}, depth {shape['depth']}"
    elif arch == "cnn":
        if shape["filters"] < 8:
            return f"{shape['filters']} filters"
    elif arch == "resnet":
        if min(shape["channels"]) < 8 or shape["stem_width"] < 4:
            return f"channels {shape['channels']}, stem {shape['stem_width']}"
    elif arch == "efficientnet":
        if shape["width_multiplier"] < 0.25:  # below, timm's 8-channel floor flattens every stage
            return f"width multiplier {shape['width_multiplier']}"
    elif arch == "alexnet_small":
        if shape["filters"] < 8:
            return f"{shape['filters']} filters"
    elif arch == "inception_small":
        if shape["width_multiplier"] * 96 < 8:
            return f"stem of {shape['width_multiplier'] * 96:.1f} channels"
    return ""


def test_every_sweep_sizes_file_names_an_arch_and_a_law_it_has():
    pairs = {f"{a}_{law}" for a, law in _pairs()}
    files = sorted(p.stem for p in (CONF / "sweep_sizes").glob("*.yaml"))
    assert files and set(files) <= pairs, sorted(set(files) - pairs)
    for p in (CONF / "sweep_sizes").glob("*.yaml"):
        assert p.read_text().startswith("# @package hydra.sweeper.params\n"), p


@pytest.mark.parametrize("arch,law", _pairs(), ids=lambda v: str(v))
def test_default_sizes_solve_to_sensible_shapes(arch, law):
    """For every (arch, law): the sizes `-m` sweeps by default are realisable without a granularity
    note, give distinct shapes of increasing size, and each shape is sensible (no 1-wide MLP, heads
    that divide the width, channels above the rounding floor)."""
    cfg = _hydra_cfg([f"arch={arch}", f"scaling={law}"])
    base = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("arch", "scaling")}
    sizes = default_sizes(arch, law)
    assert len(sizes) >= 3 and sizes == sorted(sizes)
    plans = [plan_model(knobs(base["arch"], drop=()), {**knobs(base["scaling"], drop=()), "params": p}, *MNIST1D)
             for p in sizes]
    for p, plan in zip(sizes, plans):
        assert not plan.note, (p, plan.note)
        assert sensible(arch, plan.shape) == "", (p, plan.shape)
    counts = [plan.actual for plan in plans]
    assert counts == sorted(set(counts)), counts


def test_sovit_keeps_the_mlp_at_least_as_wide_as_the_embedding():
    from flexnet.models.vit import SOVIT_ANCHOR

    base = {"name": "vit", "patch_size": 4}
    for p in (1e3, 4e3, 1e5, 1e6):
        shape = plan_model(base, {"name": "sovit", "params": p, "min_mlp_ratio": 1.0}, *MNIST1D).shape
        assert shape["mlp_dim"] >= shape["embed_dim"], (p, shape)
        law = plan_model(base, {"name": "sovit", "params": p, "min_mlp_ratio": 0.0}, *MNIST1D).shape
        assert law["mlp_dim"] < law["embed_dim"]  # the law as published, far below its anchor
    # at the anchor the floor does not bind: SoViT-400m/14's own shape
    big = plan_model({**base, "patch_size": 14, "class_token": False, "global_pool": "map"},
                     {"name": "sovit", "params": 428_833_704, "min_mlp_ratio": 1.0}, (3, 224, 224), 1000).shape
    assert abs(big["mlp_dim"] - SOVIT_ANCHOR["mlp_dim"]) <= 100 and big["num_heads"] == 16


def test_headline_command_composes_parallel_with_vit_lr_cap_and_sizes():
    cfg = _hydra_cfg(["arch=vit", "scaling=sovit", "optimizer=shampoo"])
    assert cfg.hydra.launcher._target_.endswith("FlexnetLocalLauncher")  # -m runs jobs in parallel
    assert cfg.hydra.launcher.threads_per_job == 1
    assert cfg.optimizer.lr == 0.3                                       # conf/optimizer_arch/shampoo_vit.yaml
    assert list(cfg.train.caps) == [375, 750, 1500]                      # conf/arch_defaults/vit.yaml
    assert cfg.search.resolution == 0.1 and cfg.convergence.check_fitted is False
    assert cfg.hydra.sweeper.params["scaling.params"] == "1000,2000,4000"
    assert "flexnet.sweep_end.SweepSummary" in [c._target_ for c in cfg.hydra.callbacks.values()]


def test_per_arch_defaults_leave_other_archs_and_explicit_values_alone():
    mlp = _hydra_cfg(["optimizer=shampoo"])
    assert mlp.optimizer.lr == 2.0 and list(mlp.train.caps) == [5000, 10000, 20000]
    assert mlp.hydra.sweeper.params["scaling.params"] == "1000,2000,4000"
    mine = _hydra_cfg(["arch=vit", "optimizer=shampoo", "optimizer.lr=0.05", "train.caps=[500,1000]"])
    assert mine.optimizer.lr == 0.05 and list(mine.train.caps) == [500, 1000]
    # a preset overrides the per-arch defaults (it comes after them in the defaults list)
    preset = _hydra_cfg(["experiment=emc_scaling_vit", "optimizer=shampoo"])
    assert preset.optimizer.lr == 0.001 and preset.train.min_steps == 3000 and preset.train.caps is None
