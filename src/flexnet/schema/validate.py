"""Validation of a whole config: the `SCHEMAS` table (group -> option -> schema), the top-level keys,
`check_group` (one group's values against its schema: unknown keys, strict types, finite numbers, the
schema's `check()`), `check_device`, `validate_config`, and the registration of every schema in Hydra's
ConfigStore (`flexnet_schema/<group>/<option>`)."""
from __future__ import annotations

import dataclasses
import math
import typing
from enum import Enum
from typing import Any, List

from ..errors import ConfigError, reject_unknown
from ..registry import option_hint
from .checks import Bad, Group
from .data import DATASET_SCHEMAS, LABELING_SCHEMAS
from .models import ARCH_SCHEMAS, SCALING_SCHEMAS
from .optim import OPTIMIZER_SCHEMAS, REGULARIZER_SCHEMAS, REPARAM_SCHEMAS
from .run import LOGGER_SCHEMAS, SEARCH_SCHEMAS, check_convergence_extra, check_fit_ranges, convergence_schema, \
    train_schema

# group -> option -> schema: each group's table is next to its schemas
SCHEMAS: dict[Group, dict[str, type]] = {
    "dataset": DATASET_SCHEMAS, "labeling": LABELING_SCHEMAS, "arch": ARCH_SCHEMAS, "scaling": SCALING_SCHEMAS,
    "optimizer": OPTIMIZER_SCHEMAS, "regularizer": REGULARIZER_SCHEMAS, "reparam": REPARAM_SCHEMAS,
    "search": SEARCH_SCHEMAS, "logger": LOGGER_SCHEMAS,
}

# top-level scalar keys (groups above, train/convergence are the others)
TOP_LEVEL: dict[str, tuple[Any, Any]] = {
    "seed": (int, 0),
    "device": (str, "auto"),
    "threads": (Any, "auto"),
    "curve": (Any, "auto"),
    "progress": (Any, "auto"),
}
# launch directives, read by the entry point and removed before the job sees the config (print_config: the
# config tree at the start of a job, flexnet/console.py; in conf/config.yaml, so print_config=false works)
DIRECTIVES = ("fresh", "accept_code_change", "print_config")


def _register() -> None:
    """The schemas in Hydra's ConfigStore (`flexnet_schema/<group>/<option>`), e.g. for
    `defaults: [/flexnet_schema/optimizer/sgd@_here_]` in a config of one's own."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for option, cls in options.items():
            cs.store(group=f"flexnet_schema/{group}", name=option, node=cls)


# ------------------------------------------------------------------ validation

def _describe(t: Any) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union and type(None) in args:
        return _describe(next(a for a in args if a is not type(None))) + ", or null"
    if origin in (list, List):
        inner = _describe(args[0]).replace("must be ", "") if args and args[0] is not Any else ""
        return f"must be a list ([...]) of {inner}s" if inner and inner != "not allowed" else "must be a list ([...])"
    if isinstance(t, type) and issubclass(t, Enum):
        return "allowed: " + ", ".join(t.__members__)
    return {bool: "must be true or false", int: "must be an integer", float: "must be a number",
            str: "must be a string"}.get(t, "not allowed")


def _strict(t: Any, v: Any) -> bool:
    """v is of type t as given (OmegaConf would convert 'no' -> False or '5' -> 5; flexnet does not)."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union and type(None) in args:
        return v is None or _strict(next(a for a in args if a is not type(None)), v)
    if origin in (list, List):
        return isinstance(v, list) and all(_strict(args[0], x) for x in v) if args else isinstance(v, list)
    if isinstance(t, type) and issubclass(t, Enum):
        return isinstance(v, str)
    if t is bool:
        return isinstance(v, bool)
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if t is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t is str:
        return isinstance(v, str)
    return True


def _fmt(key: str, value: Any) -> str:
    return f"{key}={value!r}"


def check_group(prefix: str, cls: type, values: dict, what: str = "") -> Any:
    """Validate one group's dict against its schema; return the checked dataclass instance."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    if not isinstance(values, dict):
        raise ConfigError(f"{prefix}={values!r}: must be a config group (key: value mapping)")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    reject_unknown(values, hints, prefix + ".", f"unknown key{what}", allowed, values)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        obj = OmegaConf.to_object(merged)
    except ConfigKeyError as e:  # (kept for safety: caught above)
        raise ConfigError(f"{prefix}.{e.key}: unknown key{what}; allowed: {', '.join(allowed)}") from None
    except OmegaConfBaseException as e:
        key = str(e.full_key or e.key or "").split("[")[0].split(".")[-1]
        t = hints.get(key, Any)
        raise ConfigError(f"{_fmt(prefix + '.' + key, values.get(key))}: {_describe(t)}") from None
    for k, v in values.items():
        if not _strict(hints[k], v):
            raise ConfigError(f"{_fmt(prefix + '.' + k, v)}: {_describe(hints[k])}")
    for k, v in values.items():  # OmegaConf accepts inf/nan as numbers; no flexnet setting does
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{_fmt(prefix + '.' + k, v)}: must be a finite number")
    try:
        obj.check()
    except Bad as b:
        raise ConfigError(f"{_fmt(prefix + '.' + b.key, values.get(b.key, b.value))}: {b.allowed}") from None
    return obj


def _check_top(cfg: dict) -> None:
    from ..errors import require

    seed = cfg.get("seed")
    require(isinstance(seed, int) and not isinstance(seed, bool), "seed", seed, "must be an integer")
    thr = cfg.get("threads", "auto")
    require(thr == "auto" or (isinstance(thr, int) and not isinstance(thr, bool) and thr >= 1), "threads", thr,
            "must be a positive integer or 'auto'")
    curve = cfg.get("curve", "auto")
    require(curve == "auto" or isinstance(curve, bool), "curve", curve, "must be true, false or 'auto'")
    prog = cfg.get("progress", "auto")
    require(prog in ("auto", "bar", "log") or isinstance(prog, bool), "progress", prog,
            "must be auto (a bar on a terminal, else a log line every 10 s), bar, log, or false (quiet)")
    check_device(cfg.get("device", "auto"))


def check_device(dev: Any) -> None:
    """device: auto | cpu | cuda | cuda:N | mps, and the device must exist on this machine."""
    import torch

    allowed = "allowed: auto, cpu, cuda, cuda:N, mps"
    if not isinstance(dev, str):
        raise ConfigError(f"device={dev!r}: {allowed}")
    if dev in ("auto", "cpu"):
        return
    try:
        d = torch.device(dev)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device={dev!r}: not a device; {allowed}") from None
    if d.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"device={dev!r}: no CUDA GPU is visible on this machine; use device=auto or device=cpu")
        if d.index is not None and d.index >= n:
            raise ConfigError(f"device={dev!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    elif d.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"device={dev!r}: MPS is not available on this machine; use device=auto or device=cpu")
    else:
        raise ConfigError(f"device={dev!r}: {allowed}")


def validate_config(cfg: dict) -> None:
    """Check a resolved flexnet config (plain dict, `hydra` removed); raise ConfigError (one line)."""
    from ..errors import require

    if not isinstance(cfg, dict):
        raise ConfigError(f"config={cfg!r}: must be a mapping")
    known = set(SCHEMAS) | set(TOP_LEVEL) | {"train", "convergence", "hydra"} | set(DIRECTIVES)
    reject_unknown(cfg, known, "", "unknown top-level key", sorted(known - {"hydra"}), cfg)
    _check_top(cfg)
    for group, options in SCHEMAS.items():
        g = cfg.get(group)
        require(isinstance(g, dict) and isinstance(g.get("name"), str), group, g,
                f"must name an option; allowed: {', '.join(sorted(options))}")
        name = g["name"]
        if name not in options:
            raise ConfigError(f"{group}={name!r}: unknown option; allowed: {', '.join(sorted(options))} "
                              f"{option_hint(group, [c.__module__ for c in options.values()], what='schema')}")
        check_group(group, options[name], g, what=f" for {group}={name}")
    for group, make in (("train", train_schema), ("convergence", convergence_schema)):
        values = cfg.get(group) or {}
        obj = check_group(group, make(), values)
        if group == "convergence":
            try:
                check_convergence_extra(obj)
            except Bad as b:
                raise ConfigError(f"{_fmt('convergence.' + b.key, values.get(b.key, b.value))}: {b.allowed}") from None
    check_fit_ranges(cfg)
    for d in DIRECTIVES:
        if d in cfg:
            require(isinstance(cfg[d], bool), d, cfg[d], "must be true or false")


_register()
