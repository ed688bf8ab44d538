"""`python -m flexnet.describe [overrides] [--json]`: build the model of a config without training
and print it as a table (arch, scaling, parameters target and actual, shape, input, the laws of the
family, and for each config group the option, its conf file and the file of its code); `--json` prints
one JSON object instead (the same, with `options`: option, conf file, module and file of its code,
schema), for scripts.

`python -m flexnet.describe experiments` lists the study presets (conf/experiment/), one line each.

Overrides are the same as for `python -m flexnet` (composed by Hydra from the same conf
dir), plus `describe.input_shape=[3,224,224]` and `describe.num_classes=1000` (also
accepted as `+describe.*`) to build for a given input without loading any data. An unknown option
(`arch=foo`) is one line listing the allowed ones, as for `python -m flexnet`.
"""
from __future__ import annotations

import importlib.util
import json
import re
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


def preset_line(path: Path) -> str:
    """A preset's one-line summary: the first sentence of its header comment (after `@package`), without
    the "Experiment preset" prefix."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:]
        if "@package" in text:
            continue
        if words and (not text.strip() or text.startswith("   ")):  # a blank or indented comment line: the header's end
            break
        words.append(text.strip())
    line = " ".join(words)
    for prefix in ("Experiment preset:", "Experiment preset"):
        if line.startswith(prefix):
            line = line[len(prefix):].strip()
            break
    end = re.search(r"(?<!\bal)(?<!e\.g)(?<!Fig)\.\s", line)  # the first sentence ("et al. 2017" is not its end)
    return (line[:end.start() + 1] if end else line).strip()


def experiments() -> list[tuple[str, str]]:
    """(name, one-line summary) of every preset in conf/experiment/, by name."""
    return [(p.stem, preset_line(p)) for p in sorted((Path(CONF_DIR) / "experiment").glob("*.yaml"))]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def experiments_text(width: int = 120) -> str:
    rows = experiments()
    w = max(len(n) for n, _ in rows)
    lines = [_clip(f"  {n:<{w}}  {line}", width) for n, line in rows]
    return ("presets (conf/experiment/; run one: python -m flexnet experiment=NAME [-m]):\n" + "\n".join(lines))


def table(out: dict) -> str:
    """describe()'s result as a readable table."""
    p = out["params"]
    target = "" if p["target"] is None else f"target {p['target']:,.0f}, "
    rows = [
        ("model", f"{out['arch']} (scaling={out['scaling']})"),
        ("parameters", f"{target}actual {p['actual']:,}"),
        ("shape", " ".join(f"{k}={v}" for k, v in out["shape"].items())),
        ("input", f"{out['input_shape']} x {out['num_classes']} classes (from {out['input_from']})"),
        ("laws", ", ".join(out["laws"])),
    ]
    if out.get("note"):
        rows.append(("note", out["note"]))
    w = max(len(k) for k, _ in rows)
    lines = [f"{k:<{w}}  {v}" for k, v in rows]
    opts = out["options"]
    gw = max(len(g) for g in opts)
    ow = max(len(o["option"]) for o in opts.values())
    cw = max(len(o["conf"]) for o in opts.values())
    lines += ["", f"{'group':<{gw}}  {'option':<{ow}}  {'conf file':<{cw}}  code"]
    lines += [f"{g:<{gw}}  {o['option']:<{ow}}  {o['conf']:<{cw}}  {o['file']}" for g, o in opts.items()]
    return "\n".join(lines)


def _error_line(e: BaseException) -> str:
    from .__main__ import _hydra_error_line

    if isinstance(e, ConfigError):
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return _hydra_error_line(e)


def main(argv: list[str] | None = None) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        print("\nExamples: python -m flexnet.describe arch=vit scaling=sovit scaling.params=1e5 "
              "describe.input_shape=[3,32,32] describe.num_classes=10\n"
              "          python -m flexnet.describe experiments")
        return 0
    as_json = "--json" in argv
    argv = [a for a in argv if a != "--json"]
    if argv[:1] == ["experiments"]:
        if len(argv) > 1:
            print(f"flexnet.describe: error: experiments takes no overrides (got {' '.join(argv[1:])})",
                  file=sys.stderr, flush=True)
            return 2
        rows = experiments()
        print(json.dumps(dict(rows)) if as_json else experiments_text())
        return 0
    bad = next((a for a in argv if a.startswith("-") or "=" not in a), None)
    if bad is not None:
        print(f"flexnet.describe: error: {bad}: not an override (key=value); allowed besides overrides: --json, "
              f"experiments, --help", file=sys.stderr, flush=True)
        return 2
    try:
        out = describe(argv)
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        print(f"flexnet.describe: error: {_error_line(e)}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(out) if as_json else table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
