"""What a run prints on the console, besides its attempts and summary.

`ConsoleFormatter`: the console format of `conf/hydra/job_logging/flexnet.yaml` and
`conf/hydra/hydra_logging/flexnet.yaml`: a message alone (INFO), `WARNING: message` otherwise;
`flexnet.log` keeps Hydra's timestamped format. `config_tree(cfg)`: the resolved config as a short
tree, logged when a run starts (`print_config=false` turns it off): each group's option and the keys
that differ from that option's file, the optimizer's lr and the training budget always.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import yaml

from .config import CONF_DIR

GROUPS = ("dataset", "labeling", "arch", "scaling", "optimizer", "regularizer", "reparam", "search", "logger")
ALWAYS = {"optimizer": ("lr",), "train": ("policy", "caps"), "scaling": ("params",)}
TOP = ("seed", "device")


class ConsoleFormatter(logging.Formatter):
    """`message` for INFO and below, `LEVEL: message` above; no timestamp, no logger name."""

    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        return msg if record.levelno <= logging.INFO else f"{record.levelname}: {msg}"


@functools.lru_cache(maxsize=None)
def _file(rel: str) -> dict:
    """A conf file's own keys (its defaults list dropped); {} when it is missing or unreadable."""
    try:
        d = yaml.safe_load((Path(CONF_DIR) / rel).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {k: v for k, v in d.items() if k != "defaults"} if isinstance(d, dict) else {}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _same(default: Any, v: Any) -> bool:
    if isinstance(default, str) and default.startswith("${"):  # an interpolation (e.g. ${seed}): shown elsewhere
        return True
    if isinstance(default, str) and isinstance(v, (int, float)) and not isinstance(v, bool):
        try:  # YAML 1.1 reads 2e9 as a string
            return float(default) == float(v)
        except ValueError:
            return False
    return default == v


def _changed(values: dict, defaults: dict, always: tuple = ()) -> list[str]:
    return [f"{k}={_fmt(v)}" for k, v in values.items()
            if k != "name" and not isinstance(v, dict) and (k in always or (k in defaults and not _same(defaults[k], v)))]


def config_tree(cfg: dict) -> str:
    """The config of a run as a short tree (see the module docstring)."""
    top = _file("config.yaml")
    lines = ["config (each group's option and what differs from its file; all of it: --cfg job):"]
    for g in GROUPS:
        node = cfg.get(g)
        if not isinstance(node, dict):
            continue
        name = node.get("name")
        keys = _changed(node, _file(f"{g}/{name}.yaml"), ALWAYS.get(g, ()))
        lines.append(f"  {g}: {name}" + (f"  {' '.join(keys)}" if keys else ""))
    for section in ("train", "convergence"):
        node = cfg.get(section) or {}
        always = ALWAYS.get(section, ())
        if section == "train" and node.get("caps") is None:
            always = ("policy", "epochs", "min_steps")
        keys = _changed(node, top.get(section) or {}, always)
        if keys:
            lines.append(f"  {section}: {' '.join(keys)}")
    lines.append("  " + " ".join(f"{k}={_fmt(cfg.get(k))}" for k in TOP if k in cfg))
    return "\n".join(lines)
