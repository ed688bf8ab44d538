"""`python -m flexnet --help` (Hydra's help template in conf/config.yaml) and `experiment=NAME`."""
from __future__ import annotations

import re
import shlex

import pytest
import yaml

from conftest import CONF, compose, run_cli

GROUPS = ["dataset", "labeling", "arch", "scaling", "optimizer", "regularizer", "reparam", "search", "logger",
          "hydra/launcher", "hparams_search", "experiment"]
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def help_text(tmp_path_factory):
    p = run_cli(["--help"], cwd=tmp_path_factory.mktemp("help"), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(f"== {title}"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("==")), len(lines))
    return [l for l in lines[start + 1:end] if l.strip()]


def test_help_describes_flexnet_not_hydra(help_text):
    assert help_text.startswith("flexnet: measure Effective Model Complexity (EMC)")
    assert "powered by Hydra" not in help_text and "__main__" not in help_text
    assert "Usage: python -m flexnet" in help_text and ".venv/bin/python -m flexnet" in help_text


def test_help_has_one_line_per_group_naming_every_option(help_text):
    rows = {l.split()[0]: l for l in _section(help_text, "Config groups") if l.startswith("  ")}
    assert list(rows) == GROUPS  # one line each, no group missing or extra
    # every option of a group is on its line (an option added to conf/ without a help line fails here)
    for group in GROUPS:
        files = [p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("flexnet_")]
        opts = set(files) | ({"basic"} if group == "hydra/launcher" else set())
        words = set(re.findall(r"[A-Za-z0-9_]+", rows[group]))
        assert opts <= words, (group, sorted(opts - words))


def test_help_examples_compose(help_text):
    """Every example of `python -m flexnet` in the help composes (Hydra groups and keys exist)."""
    examples = [l.strip() for l in _section(help_text, "Examples")]
    assert len(examples) >= 6
    runs = 0
    for line in examples:
        argv = shlex.split(line.split("  ")[0])
        assert argv[:2] == ["python", "-m"], line
        if argv[2] != "flexnet":
            assert argv[2] in ("flexnet.report", "flexnet.describe"), line
            continue
        overrides = [a for a in argv[3:] if a not in ("-m", "--cfg", "job") and not a.startswith("hydra/")]
        # a comma list is a sweep: compose its first point
        compose([a.split(",")[0] for a in overrides])
        runs += 1
    assert runs >= 5


def test_experiment_without_plus_gives_the_same_config_as_with_plus(tmp_path):
    """Through the CLI: `experiment=NAME` works and prints exactly what `+experiment=NAME` prints."""
    plain = run_cli(["experiment=emc_labels", "--cfg", "job"], cwd=tmp_path, timeout=120)
    plus = run_cli(["+experiment=emc_labels", "--cfg", "job"], cwd=tmp_path, timeout=120)
    default = run_cli(["--cfg", "job"], cwd=tmp_path, timeout=120)
    assert plain.returncode == plus.returncode == default.returncode == 0, plain.stderr + plus.stderr
    assert plain.stdout == plus.stdout != default.stdout
    assert yaml.safe_load(plain.stdout)["dataset"]["max_pool_size"] == 1000  # the preset's value


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("name", PRESETS)
def test_experiment_preset_overrides_the_primary_config(name):
    """experiment is last in the defaults list (where +experiment= appends it): every value a preset
    sets wins over config.yaml and the group defaults (+experiment=NAME is rewritten to this, and
    compared through the CLI above)."""
    preset = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text()) or {}
    preset.pop("defaults", None)
    preset.pop("hydra", None)
    cfg = compose([f"experiment={name}"])
    got = _leaves(cfg)
    for key, value in _leaves(preset).items():
        if isinstance(value, str) and "${" in value:
            continue  # an interpolation, resolved by compose
        assert got.get(key, "<missing>") == value, (name, key)


def test_describe_has_help_and_one_line_errors(capsys):
    from flexnet.describe import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "python -m flexnet.describe" in out and "describe.input_shape" in out and "Traceback" not in out
    assert main(["scaling.params=["]) == 2   # Hydra's override grammar: one line, no traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flexnet.describe: error:")
    assert main(["arch=nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "arch='nope': unknown option; allowed: " in err[0] and "mlp" in err[0]  # as the CLI says it
