"""Experiment presets (conf/experiment) and scripts/reproduce.py.

Every preset composes with the real Hydra config at every value of its sweep axes; a tiny version
of each runs as a real CLI multirun (slow); reproduce.py --tiny writes REPRODUCTION.md.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import math
import subprocess
import sys

import pytest
import yaml

from conftest import CONF, ROOT, compose, run_cli
from flexnet.analysis import verdicts
from flexnet.analysis.reproduction import RUNS_FILE, full_run, logged_runs

spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
reproduce = importlib.util.module_from_spec(spec)
sys.modules["reproduce"] = reproduce
spec.loader.exec_module(reproduce)

# presets that are tools, not studies (no sweep axis, not in make reproduce): tests/test_first_hour.py
TOOL_PRESETS = {"debug"}
PRESET_FILES = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml") if p.stem not in TOOL_PRESETS)


def _sweep(name: str) -> dict:
    cfg = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text())
    return cfg["hydra"]["sweeper"]["params"]


def _skip_if_missing(name: str) -> None:
    miss = reproduce.missing_options(name)
    if miss:
        pytest.skip(f"{name}: option file(s) not merged yet: {', '.join(miss)}")


@pytest.mark.slow  # ~2.5 s here
def test_every_preset_is_in_reproduce():
    assert PRESET_FILES == sorted([*reproduce.BY_NAME, *reproduce.DATA_PRESETS])
    # one preset per study of the issue
    for study in ["emc_data", "emc_labels", "emc_classes", "emc_resolution", "emc_archs", "emc_families",
                  "emc_scaling_cnn", "emc_scaling_vit", "emc_activations", "emc_optimizers", "emc_regularizers",
                  "emc_reparam", "zhang_randomization", "zhang_corruption", "zhang_regularizers",
                  "zhang_batchnorm", "double_descent", "emc_budget"]:
        assert study in PRESET_FILES
    # every finding's preset is a verdict preset (make reproduce); the others are extra
    from flexnet.analysis.findings import FINDINGS

    verdict = {p.name for p in reproduce.PRESETS if p.verdict}
    assert {f.preset for f in FINDINGS} <= verdict
    assert {"emc_data", "emc_classes", "emc_resolution", "emc_scaling_cnn", "emc_scaling_vit", "emc_reparam",
            "emc_regularizers"}.isdisjoint(verdict)


@pytest.mark.parametrize("name", PRESET_FILES)
def test_preset_header_and_sweep(name):
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert f"+experiment={name} -m" in text            # how to run it
    assert "hydra/launcher=slurm" in text               # the paper-scale command
    params = _sweep(name)
    assert "scaling.params" in params
    assert len(params) >= 2, "a sweep over parameter counts and the study's axis"


@pytest.mark.parametrize("name", PRESET_FILES)
def test_preset_composes_at_every_axis_value(name):
    _skip_if_missing(name)
    base = compose([f"+experiment={name}"])
    assert base["threads"] == 1
    params = _sweep(name)
    for key, values in params.items():
        for v in str(values).split(","):
            cfg = compose([f"+experiment={name}", f"{key}={v.strip()}"])
            node = cfg
            parts = key.split(".")
            for part in parts[:-1]:
                node = node[part]
            got = node[parts[-1]]
            if isinstance(got, dict):      # a group: its option's name
                got = got["name"]
            want = yaml.safe_load(v.strip())
            assert got == want or float(got) == float(want), (key, got, want)


def test_primary_config_unchanged_without_experiment():
    cfg = compose([])
    assert cfg["dataset"]["name"] == "mnist1d" and cfg["arch"]["name"] == "mlp"
    assert cfg["train"]["epochs"] == 2000 and cfg["train"]["policy"] == "converge"
    assert "experiment" not in cfg


def test_fixed_flags_match_presets():
    for p in reproduce.PRESETS:
        if reproduce.missing_options(p.name):
            continue
        cfg = compose([f"+experiment={p.name}"])
        assert (cfg["search"]["name"] == "fixed") == p.fixed, p.name


def _points(name: str, part=None) -> list:
    """Every sweep point of a preset (or of one of its parts) as a list of overrides, restricted to
    the keys that decide the model (arch, scaling, dataset), deduplicated."""
    axes = dict(_sweep(name))
    fixed = []
    for o in (reproduce.BY_NAME[name].parts[part] if part else []):
        k, v = o.split("=", 1) if "=" in o else (o, None)
        if v is not None and "," in v:
            axes[k] = v
        else:
            axes.pop(k.lstrip("~+"), None)
            fixed.append(o)
    keys = [k for k in axes if k.split(".")[0] in ("arch", "scaling", "dataset")]
    vals = [[v.strip() for v in str(axes[k]).split(",")] for k in keys]
    return [fixed + [f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*vals)]


PARTS = [(p.name, part) for p in reproduce.PRESETS for part in [None, *p.parts]]


@pytest.mark.parametrize("name,part", PARTS)
@pytest.mark.slow  # builds every sweep point's model: ~34 s here
def test_every_sweep_point_builds(name, part):
    """Each (arch, scaling, size, data) point of every preset and part resolves to a model: a size
    below a family's floor, or a law the family lacks, would fail those jobs of `make reproduce`."""
    from flexnet.describe import describe

    _skip_if_missing(name)
    for point in _points(name, part):
        d = describe([f"+experiment={name}", *point])
        assert d["params"]["actual"] > 0, point


TUNED = [(p.name, arm) for p in reproduce.PRESETS if p.tuned for arm in p.tuned.arms]


@pytest.mark.parametrize("name,arm", TUNED, ids=[f"{n}-{a.name}" for n, a in TUNED])
@pytest.mark.slow  # builds every size of every arm of the tuned presets
def test_every_tuned_arm_builds_at_its_sizes_and_tuning_size(name, arm):
    from flexnet.describe import describe

    sizes = [o.split("=", 1)[1] for o in [*arm.sweep, *arm.tune] if o.startswith("scaling.params=")]
    assert sizes, "each arm names its sizes and its tuning size"
    for n in ",".join(sizes).split(","):
        d = describe([f"+experiment={name}", *arm.overrides, f"scaling.params={n}"])
        assert d["params"]["actual"] > 0


def test_tuned_arms_grid_brackets_their_default_lr():
    from flexnet.analysis.hparams import TUNE_FACTORS

    assert len(TUNE_FACTORS) >= 3 and min(TUNE_FACTORS) < 1 < max(TUNE_FACTORS) and 1.0 in TUNE_FACTORS
    for name, arm in TUNED:
        cfg = compose([f"+experiment={name}", *arm.overrides])
        assert cfg["optimizer"]["lr"] == pytest.approx(arm.lr), (name, arm.name)   # the middle = the conf default
        assert reproduce.TUNE_SEED not in range(5)   # no verdict job uses the tuning seed


# ---------------------------------------------------------------- tiny real runs

def _expected_jobs(p) -> int:
    """Number of sweep points after the tiny overrides (command line wins over the preset)."""
    axes = {k: len(str(v).split(",")) for k, v in _sweep(p.name).items()}
    for o in reproduce.preset_overrides(p, tiny=True):
        k, v = o.split("=", 1)
        if k in axes:
            axes[k] = len(v.split(","))
    return math.prod(axes.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESET_FILES)
def test_tiny_preset_runs(name, tmp_path):
    _skip_if_missing(name)
    if name in reproduce.DATA_PRESETS:
        pytest.skip(f"{name} reads {reproduce.DATA_PRESETS[name]}: tests/test_double_descent.py runs it on generated files")
    p = reproduce.BY_NAME[name]
    n = _expected_jobs(p)
    assert n <= 2, "tiny versions run one or two sweep points"
    sweep = tmp_path / name
    r = run_cli(["-m", f"+experiment={name}", f"hydra.sweep.dir={sweep}", *reproduce.preset_overrides(p, True)],
                cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    results = sorted(sweep.rglob("emc.json"))
    assert len(results) == n
    base = compose([f"+experiment={name}"])
    for f in results:
        res = json.loads(f.read_text())
        cfg = res["config"]
        assert cfg["search"]["name"] == base["search"]["name"]
        assert cfg["dataset"]["name"] == base["dataset"]["name"] or "dataset" in _sweep(name)
        assert cfg["train"]["epochs"] == 5
        assert res["fits"] >= 1 and res["params"]["actual"] > 0
        assert (f.parent / "fits.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name,part", [x for x in PARTS if x[1] is not None])
def test_tiny_preset_part_runs(name, part, tmp_path):
    """A preset's extra sweeps (families above the preset's sizes) run too, into <dir>/<part>."""
    p = reproduce.BY_NAME[name]
    sweep = tmp_path / name
    info = reproduce.run_sweep(p, part, sweep, tiny=True, extra=[])
    assert info["rc"] == 0, (sweep / part / "reproduce.log").read_text()[-3000:]
    results = sorted((sweep / part).rglob("emc.json"))
    assert 1 <= len(results) <= 2 and not (sweep / "0").exists()   # the part only, in its own dir
    for f in results:  # every plain override of the part is in the job's config
        cfg = json.loads(f.read_text())["config"]
        for o in p.parts[part]:
            key, _, value = o.partition("=")
            if key.startswith("~") or "," in value or any(t.startswith(key + "=") for t in reproduce.TINY):
                continue  # removals, sweeps and what --tiny sets itself
            node = cfg
            for k in (key.split(".") if "." in key else [key, "name"]):
                node = node[k]
            assert str(node) == value or (value == "null" and node is None), (key, node)
    assert f"hydra.sweep.dir={sweep / part}" in info["commands"][0]
    assert logged_runs(sweep)["commands"] == info["commands"]


@pytest.mark.slow
def test_tiny_tuned_preset_tunes_then_runs_each_arm_at_its_chosen_lr(tmp_path):
    """emc_activations --tiny: the lr grid of every arm (3 searches, tuning seed), chosen.json, then one
    sweep per arm at the chosen lr; REPRODUCTION.md lists the tuned lrs."""
    root, out = tmp_path / "mr", tmp_path / "R.md"
    cmd = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--tiny", "--only", "emc_activations",
           "--root", str(root), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    p = reproduce.BY_NAME["emc_activations"]
    chosen = json.loads((root / "tuning" / "emc_activations" / "chosen.json").read_text())
    assert sorted(chosen) == sorted(f"{a.name}-semantic" for a in p.tuned.arms)
    for arm in p.tuned.arms:
        tune = [json.loads(f.read_text())["config"] for f in (root / "tuning" / "emc_activations" / arm.name).rglob("emc.json")]
        assert sorted(c["optimizer"]["lr"] for c in tune) == pytest.approx([arm.lr / 3, arm.lr, arm.lr * 3], rel=1e-3)
        assert {c["seed"] for c in tune} == {reproduce.TUNE_SEED}
        c = chosen[f"{arm.name}-semantic"]
        assert c["lr"] in [lr for lr, _ in c["grid"]]
        jobs = [json.loads(f.read_text())["config"] for f in (root / "emc_activations" / f"{arm.name}-semantic").rglob("emc.json")]
        assert jobs and all(j["optimizer"]["lr"] == pytest.approx(c["lr"]) and j["arch"]["activation"] == arm.name
                            for j in jobs)
    text = out.read_text()
    assert "## Learning rates (tuned per arm" in text and "| `emc_activations` | relu | semantic |" in text


@pytest.mark.slow
def test_reproduce_tiny_writes_verdicts(tmp_path):
    out = tmp_path / "REPRODUCTION.md"
    cmd = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--tiny", "--jobs", "1",
           "--only", "zhang_corruption", "--root", str(tmp_path / "mr"), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    text = out.read_text()
    row = [l for l in text.splitlines() if l.startswith("| Z3 |")]
    assert row and any(v in row[0] for v in (verdicts.HOLDS, verdicts.FAILS, verdicts.INCONCL, verdicts.BUDGET))
    assert "`zhang_corruption`" in text and "## Rules" in text
    assert (tmp_path / "mr" / "zhang_corruption" / "report" / "emc.csv").exists()
    found = json.loads((tmp_path / "mr" / "verdicts.json").read_text())
    assert [v["id"] for v in found] == ["Z3"]
    # the invocation is recorded: its presets, wall time, the multirun's span
    runs = [json.loads(l) for l in (tmp_path / "mr" / RUNS_FILE).read_text().splitlines()]
    assert len(runs) == 1 and runs[0]["presets"] == ["zhang_corruption"] and runs[0]["resumed"] is False
    assert [t["key"] for t in runs[0]["tasks"]] == ["zhang_corruption"] and runs[0]["tasks"][0]["rc"] == 0
    assert 0 < runs[0]["spans"]["zhang_corruption"][1] <= runs[0]["wall_s"]
    assert full_run(tmp_path / "mr", ("zhang_corruption",)) == runs[0]
    # --skip-run re-aggregates the same sweep without running anything
    r2 = subprocess.run([*cmd, "--skip-run"], capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r2.returncode == 0 and "[reproduce] zhang_corruption: -m" not in r2.stdout
    assert len((tmp_path / "mr" / RUNS_FILE).read_text().splitlines()) == 1   # nothing ran: nothing recorded
    text2 = out.read_text()
    assert "| Z3 |" in text2
    # the sweep's own wall time and command come from its reproduce.log, not "(skipped)"
    row = [l for l in text2.splitlines() if l.startswith("| `zhang_corruption` |")][0]
    secs = float(row.split("|")[7].strip().rstrip(" s"))   # the "multirun time" column
    logged = logged_runs(tmp_path / "mr" / "zhang_corruption")
    assert logged["runs"] == 1 and logged["rc"] == 0 and abs(secs - logged["seconds"]) < 1
    assert "+experiment=zhang_corruption" in row


def test_full_run_is_the_newest_from_scratch_run_of_every_preset(tmp_path):
    """`make reproduce`'s time is the newest runs.jsonl line that ran all the presets and resumed none."""
    lines = [{"presets": ["a", "b"], "resumed": False, "wall_s": 100.0},
             {"presets": ["a", "b", "c"], "resumed": False, "wall_s": 90.0},
             {"presets": ["a", "b"], "resumed": True, "wall_s": 5.0},      # resumed: cost not comparable
             {"presets": ["a"], "resumed": False, "wall_s": 50.0}]         # not every preset
    (tmp_path / RUNS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert full_run(tmp_path, ("a", "b"))["wall_s"] == 90.0
    assert full_run(tmp_path, ("a", "d")) is None
    assert full_run(tmp_path / "none", ("a",)) is None
