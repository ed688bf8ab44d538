"""`python -m flexnet.describe [overrides]`: build the model of a config without training
and print one JSON object (arch, scaling, params {target, actual}, shape, input shape, ..., and
`options`: for each config group the option, its conf file, the module and file of its code, its schema).

Overrides are the same as for `python -m flexnet` (composed by Hydra from the same conf
dir), plus `describe.input_shape=[3,224,224]` and `describe.num_classes=1000` (also
accepted as `+describe.*`) to build for a given input without loading any data.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import yaml

from .config import CONF_DIR
from .errors import ConfigError

DESCRIBE_KEYS = ("input_shape", "num_classes")


def split_overrides(argv: list[str]) -> tuple[list[str], dict]:
    """Separate `describe.*` overrides (handled here) from Hydra's."""
    rest, desc = [], {}
    for a in argv:
        key, eq, value = a.partition("=")
        k = key.lstrip("+")
        if k.startswith("describe."):
            name = k[len("describe."):]
            if name not in DESCRIBE_KEYS or not eq:
                raise ConfigError(f"{key}: unknown describe key; allowed: describe.input_shape=[C,H,W], "
                                  f"describe.num_classes=N")
            desc[name] = yaml.safe_load(value)
        else:
            rest.append(a)
    return rest, desc


def where(cfg: dict) -> dict:
    """Each config group's option -> its conf file, the module that registers its code (and that
    module's file), and its schema: option name to file in one hop."""
    from .registry import registries
    from .schema import SCHEMAS

    root = Path(CONF_DIR).parent
    out = {}
    for group, registry in registries().items():
        name = cfg[group]["name"]
        module = registry.module_of(name)
        origin = Path(importlib.util.find_spec(module).origin)
        schema = SCHEMAS[group].get(name)
        out[group] = {"option": name, "conf": f"conf/{group}/{name}.yaml", "module": module,
                      "file": str(origin.relative_to(root)) if origin.is_relative_to(root) else str(origin),
                      "schema": schema and f"{schema.__module__}.{schema.__qualname__}"}
    return out


def describe(overrides: list[str]) -> dict:
    from .config import compose, normalize_overrides
    from .models import ARCHS, plan_model
    from .utils import knobs

    hydra_overrides, desc = split_overrides(normalize_overrides(overrides))
    cfg = compose(hydra_overrides)
    if "input_shape" in desc or "num_classes" in desc:
        shape = desc.get("input_shape")
        if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d > 0 for d in shape)):
            raise ConfigError(f"describe.input_shape={shape!r}: give a list of positive sizes, e.g. [3,224,224] or [40]")
        nc = desc.get("num_classes")
        if not (isinstance(nc, int) and nc >= 1):
            raise ConfigError(f"describe.num_classes={nc!r}: give a positive integer, e.g. 1000")
        input_shape, num_classes, source = tuple(shape), nc, "describe"
    else:
        from . import data as data_mod

        bundle = data_mod.load_dataset(knobs(cfg["dataset"], drop=()))
        input_shape, num_classes, source = bundle.input_shape, bundle.num_classes, cfg["dataset"]["name"]
    plan = plan_model(knobs(cfg["arch"], drop=()), knobs(cfg["scaling"], drop=()), input_shape, num_classes)
    model = plan.build() if plan.actual <= 5e7 else None  # a real (CPU) build checks the plan's count
    built = None if model is None else sum(p.numel() for p in model.parameters())
    if built is not None and built != plan.actual:
        raise RuntimeError(f"built model has {built} parameters, the plan says {plan.actual}")
    return {
        "arch": plan.arch,
        "scaling": plan.scaling,
        "params": {"target": plan.target, "actual": plan.actual},
        "shape": plan.shape,
        "input_shape": list(input_shape),
        "num_classes": int(num_classes),
        "input_from": source,
        "note": plan.note,
        "laws": sorted(set(ARCHS.get(plan.arch).scalers) | {"none"}),
        "options": where(cfg),
    }


def main(argv: list[str] | None = None) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        print("\nExample: python -m flexnet.describe arch=vit scaling=sovit scaling.params=1e5 "
              "describe.input_shape=[3,32,32] describe.num_classes=10")
        return 0
    try:
        out = describe(argv)
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"flexnet.describe: error: {msg}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
