"""Where flexnet's Hydra config lives and the one way to compose it outside the CLI.

`CONF_DIR` is the repository's `conf/` directory (the CLI's `config_path`); `normalize_overrides` takes
`+experiment=NAME` as the CLI does; `compose(overrides)` returns the config that `python -m flexnet
<overrides>` would run, as a plain resolved dict, and `compose_config` the same as OmegaConf's
`DictConfig` (with Hydra's own `hydra:` node when `hydra=True`). `python -m flexnet.describe`,
`python -m flexnet.data.prepare`, the tests, scripts and benchmarks compose through here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
# keys of conf/config.yaml that only change what the console shows (launch directives, schema.DIRECTIVES):
# not part of the config a job runs, so compose() leaves them out
CONSOLE_ONLY = ("print_config",)


def normalize_overrides(args: list[str]) -> list[str]:
    """`+experiment=NAME` (the presets' headers, scripts/reproduce.py) as `experiment=NAME`: the group is
    in the defaults list (`experiment: null`, so that `experiment=NAME` works), where Hydra refuses to
    append a second value. Both spellings compose the same config."""
    return [a[1:] if a.startswith("+experiment=") else a for a in args]


def compose_config(overrides: Iterable[str] = (), hydra: bool = False) -> Any:
    """The composed config (an OmegaConf DictConfig, unresolved); `hydra=True`: with Hydra's `hydra:` node."""
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=normalize_overrides(list(overrides)),
                             return_hydra_config=hydra)


def compose(overrides: Iterable[str] = (), hydra: bool = False) -> dict:
    """The config `python -m flexnet <overrides>` would run, as a plain dict: resolved, without `hydra:`;
    `hydra=True`: with Hydra's own config, unresolved (it interpolates the job's runtime)."""
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(compose_config(overrides, hydra=hydra), resolve=not hydra)
    if not hydra:
        d.pop("hydra", None)
    for k in CONSOLE_ONLY:  # the job never sees them (popped by the entry point, like fresh)
        d.pop(k, None)
    return d


def missing_options(name: str) -> list:
    """Option files an experiment preset (conf/experiment/<name>.yaml) needs, in its defaults and its swept
    groups, that conf/ lacks (scripts/reproduce.py skips such a preset with the reason)."""
    import yaml

    conf = Path(CONF_DIR)
    text = (conf / "experiment" / f"{name}.yaml").read_text()
    cfg = yaml.safe_load(text) or {}
    need = []
    for d in cfg.get("defaults", []) or []:
        if isinstance(d, dict):
            for k, v in d.items():
                k = k.replace("override", "").strip().lstrip("/")
                if isinstance(v, str) and "/" not in k and (conf / k).is_dir():
                    need.append((k, v))
    params = (((cfg.get("hydra") or {}).get("sweeper") or {}).get("params") or {})
    for k, v in params.items():
        if "." not in k and (conf / k).is_dir():
            need += [(k, x.strip()) for x in str(v).split(",")]
    return [f"conf/{g}/{o}.yaml" for g, o in need if not (conf / g / f"{o}.yaml").exists()]
