"""`python -m flexnet.describe [overrides]`: build the model of a config without training
and print one JSON object (arch, scaling, params {target, actual}, shape, input shape, ...).

Overrides are the same as for `python -m flexnet` (composed by Hydra from the same conf
dir), plus `describe.input_shape=[3,224,224]` and `describe.num_classes=1000` (also
accepted as `+describe.*`) to build for a given input without loading any data.
"""
from __future__ import annotations

import json
import sys

import yaml

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


def describe(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from .__main__ import CONF_DIR, normalize_overrides
    from .models import ARCHS, plan_model
    from .utils import knobs

    hydra_overrides, desc = split_overrides(normalize_overrides(overrides))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=hydra_overrides), resolve=True)
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
