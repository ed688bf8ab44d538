"""Every option of every config group composes with the defaults and builds (no training)."""
from __future__ import annotations

import pytest

from conftest import CONF, compose

GROUPS = ["dataset", "labeling", "arch", "scaling", "optimizer", "regularizer", "reparam", "search", "logger"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_every_group_has_options():
    have = {g for g, _ in OPTIONS}
    assert have == set(GROUPS)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_names_its_registry_key(group, option):
    cfg = compose([f"{group}={option}"])
    assert cfg[group]["name"] == option


@pytest.mark.parametrize("group,option", [o for o in OPTIONS if o[0] in ("optimizer", "regularizer")],
                         ids=lambda v: str(v))
def test_procedure_builds(group, option):
    from flexnet.optim import build_procedure

    cfg = compose([f"{group}={option}"])
    proc = build_procedure(cfg["optimizer"], cfg["regularizer"])
    assert proc.lr > 0


def test_registries_match_config_files():
    from flexnet.data import DATASETS, LABELINGS
    from flexnet.loggers import LOGGERS
    from flexnet.models import ARCHS, SCALINGS
    from flexnet.optim import OPTIMIZERS, REGULARIZERS, REPARAMS
    from flexnet.search import SEARCHES

    regs = {"dataset": DATASETS, "labeling": LABELINGS, "arch": ARCHS, "scaling": SCALINGS, "optimizer": OPTIMIZERS,
            "regularizer": REGULARIZERS, "reparam": REPARAMS, "search": SEARCHES, "logger": LOGGERS}
    for g, reg in regs.items():
        files = {p.stem for p in (CONF / g).glob("*.yaml")}
        assert files <= set(reg.names()), (g, files - set(reg.names()))
