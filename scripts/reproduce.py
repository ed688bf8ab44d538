#!/usr/bin/env python
"""Run every CPU-scale experiment preset, report each sweep, and write REPRODUCTION.md.

    python scripts/reproduce.py --out REPRODUCTION.md                # all presets (make reproduce)
    python scripts/reproduce.py --only emc_optimizers --only emc_activations
    python scripts/reproduce.py --tiny --only zhang_corruption        # tiny budgets (tests, smoke runs)
    python scripts/reproduce.py --skip-run                           # re-aggregate existing sweep dirs

Each preset runs as a real Hydra multirun, ``python -m flexnet +experiment=<preset> -m
hydra.sweep.dir=<root>/<preset>``, then ``python -m flexnet.report <root>/<preset>`` writes its
``report/`` (emc.csv, groups.csv, report.json, figures). A sweep dir that already holds jobs is
resumed (every job replays its fits.jsonl journal), so an interrupted run can be started again;
``--fresh`` deletes it first.

Verdicts are computed by the fixed rules of flexnet.analysis.verdicts (RULES_TEXT, stated in
REPRODUCTION.md too); they are never tuned to the numbers. A preset that fails or is missing gives
"inconclusive" with the reason. flexnet.analysis.reproduction writes REPRODUCTION.md and verdicts.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from flexnet.analysis.reported import load_sweep
from flexnet.analysis.reproduction import logged_runs, write_reproduction

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
NOTES = ROOT / "docs" / "reproduce_notes.md"

# Overrides of --tiny: budgets that make every job take seconds (the sweep axes are cut by the
# per-preset `tiny` lists below to one or two points).
TINY = ["train.epochs=5", "train.min_steps=20", "train.max_extensions=0", "dataset.max_pool_size=300",
        "convergence.patience=5", "convergence.patience_steps=20", "seed=0"]
TINY_EMC = ["search.start=16"]       # EMC searches (bisect)
TINY_FIXED = ["search.n=64"]         # search=fixed presets
# the smoke-scale cap of the slow families run as parts (emc.json's "converged" says they are budget-bound)
SMOKE = ["train.epochs=100", "train.min_steps=300"]


@dataclass
class Preset:
    name: str
    fixed: bool = False                          # search=fixed (train at one n)
    tiny: list = field(default_factory=list)     # axis overrides for --tiny (one or two sweep points)
    # more sweeps of the same preset into <sweep dir>/<part>, each with its own overrides (for
    # families whose smallest model is above the preset's sizes); --tiny adds TINY and seed=0
    parts: dict = field(default_factory=dict)
    emc_line: Optional[str] = None               # the preset whose EMC sweep gives the report's --emc-dir


PRESETS = [
    Preset("emc_data", tiny=["dataset=digits", "dataset.binary=null,true", "scaling.params=300"]),
    Preset("emc_labels", tiny=["labeling=semantic,random_labels", "arch=mlp", "scaling.params=300"]),
    Preset("emc_classes", tiny=["dataset.num_classes=2", "labeling=semantic,random_labels", "scaling.params=300"]),
    Preset("emc_resolution", tiny=["dataset.resolution=null,16", "scaling.params=500"]),
    Preset("emc_archs", tiny=["arch=mlp,cnn", "labeling=random_labels", "scaling.params=500", "seed=0"],
           parts={"resnet": ["arch=resnet", "scaling.params=5000", *SMOKE],
                  "efficientnet": ["arch=efficientnet", "scaling=efficientnet", "scaling.params=20000", *SMOKE]}),
    Preset("emc_scaling_cnn", tiny=["scaling=width,resnet_rs", "scaling.params=30000"],
           parts={"efficientnet": ["arch=efficientnet", "~arch.channels", "~arch.stem_width", "scaling=efficientnet"]}),
    Preset("emc_scaling_vit", tiny=["scaling=width,sovit", "scaling.params=5000"]),
    Preset("emc_activations", tiny=["arch.activation=relu,sigmoid", "scaling.params=300"]),
    Preset("emc_optimizers", tiny=["optimizer=sgd,gd", "labeling=semantic", "scaling.params=300"]),
    Preset("emc_regularizers", tiny=["regularizer=none,sam", "scaling.params=300"]),
    Preset("emc_reparam", tiny=["reparam=subspace,quant8", "scaling.params=1000"]),
    Preset("emc_generalization", tiny=["arch=mlp", "labeling=semantic,random_labels", "scaling.params=300"]),
    Preset("zhang_randomization", fixed=True, tiny=["labeling=random_labels,random_inputs", "scaling.params=2000"]),
    Preset("zhang_corruption", fixed=True, tiny=["labeling.p=0.0,1.0", "scaling.params=2000"]),
    Preset("zhang_regularizers", fixed=True,
           tiny=["regularizer=none,augment", "arch.dropout=0.0", "labeling=random_labels", "scaling.params=2000"]),
    Preset("zhang_batchnorm", fixed=True, tiny=["arch.batchnorm=true,false", "labeling=semantic", "scaling.params=20000"]),
    Preset("double_descent_emc", tiny=["scaling.params=1000"]),
    Preset("double_descent", fixed=True, tiny=["scaling.params=250,2000"], emc_line="double_descent_emc"),
    # EMC against the cap: the converge policy (main sweep) and the old fixed schedule (part)
    Preset("emc_budget", tiny=["arch=mlp", "labeling=random_labels", "train.min_steps=20,40", "scaling.params=300"],
           parts={"fixed": ["train.policy=fixed"]}),
]
BY_NAME = {p.name: p for p in PRESETS}
# presets that read their dataset from disk (not embedded): not run by `make reproduce`; each is tested
# on generated files in the real format (tests/test_double_descent.py)
DATA_PRESETS = {"double_descent_cifar": "CIFAR-10 python batches under dataset.root or $FLEXNET_DATA"}


def preset_overrides(p: Preset, tiny: bool, part: Optional[str] = None) -> list:
    """Overrides of one sweep: the preset's own (part None) or one part's; --tiny cuts budgets and axes."""
    tiny_budget = [*TINY, *(TINY_FIXED if p.fixed else TINY_EMC)] if tiny else []
    if part is None:
        return [*tiny_budget, *p.tiny] if tiny else []
    extra = p.parts[part]
    if tiny:   # one sweep point: the part's first size, one labeling where the preset sweeps it
        extra = [o.split(",")[0] if o.startswith("scaling.params=") else o for o in extra]
        extra += ["seed=0", *[o for o in p.tiny if o.startswith("labeling=")]]
    return [*extra, *tiny_budget]


def missing_options(name: str) -> list:
    """Option files a preset needs (its defaults overrides and swept groups) that conf/ lacks."""
    import yaml

    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    cfg = yaml.safe_load(text) or {}
    need = []
    for d in cfg.get("defaults", []) or []:
        if isinstance(d, dict):
            for k, v in d.items():
                k = k.replace("override", "").strip().lstrip("/")
                if isinstance(v, str) and "/" not in k and (CONF / k).is_dir():
                    need.append((k, v))
    params = (((cfg.get("hydra") or {}).get("sweeper") or {}).get("params") or {})
    for k, v in params.items():
        if "." not in k and (CONF / k).is_dir():
            need += [(k, x.strip()) for x in str(v).split(",")]
    return [f"conf/{g}/{o}.yaml" for g, o in need if not (CONF / g / f"{o}.yaml").exists()]


# ------------------------------------------------------------------ running

def _env() -> dict:
    e = dict(os.environ)
    src = str(ROOT / "src")
    e["PYTHONPATH"] = src + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("OMP_NUM_THREADS", "1")
    e.setdefault("WANDB_MODE", "offline")
    return e


def run_sweep(p: Preset, part: Optional[str], sweep_dir: Path, tiny: bool, extra: list) -> dict:
    """One Hydra multirun of preset p (or of one of its parts, into sweep_dir/<part>); its command,
    rc and wall time are appended to that directory's reproduce.log."""
    d = sweep_dir if part is None else sweep_dir / part
    d.mkdir(parents=True, exist_ok=True)
    label = p.name if part is None else f"{p.name}/{part}"
    args = ["-m", "flexnet", "-m", f"+experiment={p.name}", f"hydra.sweep.dir={d}",
            *preset_overrides(p, tiny, part), *extra]
    command = " ".join(["python", *[_quote(a) for a in args]])
    t0 = time.time()
    print(f"[reproduce] {label}: {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, *args], cwd=str(ROOT), capture_output=True, text=True, env=_env())
    secs = time.time() - t0
    with open(d / "reproduce.log", "a") as log:   # appended: a resumed sweep keeps its earlier runs
        log.write(f"$ {command}\n# rc={proc.returncode} seconds={secs:.1f}\n"
                  f"{proc.stdout}\n--- stderr ---\n{proc.stderr}\n")
    print(f"[reproduce] {label}: rc={proc.returncode} in {secs:.0f}s", flush=True)
    info = {"rc": proc.returncode, "seconds": secs, "commands": [command]}
    if proc.returncode != 0:
        info["error"] = f"{label}: " + (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1][:300]
    return info


def run_preset(p: Preset, sweep_dir: Path, tiny: bool, fresh: bool, extra: list) -> dict:
    """The preset's sweep into sweep_dir, then each of its parts into sweep_dir/<part>."""
    if fresh and sweep_dir.exists():
        shutil.rmtree(sweep_dir)
    info = {"rc": 0, "seconds": 0.0, "commands": []}
    for part in [None, *p.parts]:
        r = run_sweep(p, part, sweep_dir, tiny, extra)
        info["seconds"] += r["seconds"]
        info["commands"] += r["commands"]
        if r["rc"] != 0:
            info["rc"] = r["rc"]
            info.setdefault("error", r["error"])
    return info


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in "~[]* ") else arg


def run_report(sweep_dir: Path, emc_dir: Optional[Path] = None) -> dict:
    cmd = [sys.executable, "-m", "flexnet.report", str(sweep_dir), "--bootstrap", "500"]
    if emc_dir is not None and any(emc_dir.rglob("emc.json")):
        cmd += ["--emc-dir", str(emc_dir)]
    proc = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, env=_env())
    info = {"rc": proc.returncode}
    if proc.returncode != 0:
        info["error"] = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1][:300]
    return info


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("REPRODUCTION.md"))
    ap.add_argument("--only", action="append", default=None, metavar="PRESET",
                    help=f"run only these presets (repeatable); one of: {', '.join(BY_NAME)}")
    ap.add_argument("--tiny", action="store_true", help="tiny budgets and one or two sweep points (for tests)")
    ap.add_argument("--skip-run", action="store_true", help="do not run sweeps; re-aggregate existing dirs")
    ap.add_argument("--fresh", action="store_true", help="delete a preset's sweep dir before running it")
    ap.add_argument("--root", type=Path, default=None,
                    help="sweep dirs go to ROOT/<preset> (default: multirun/reproduce, or "
                         "multirun/reproduce-tiny with --tiny)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="jobs at once per sweep: >1 uses hydra/launcher=local with max_parallel=JOBS "
                         "(one torch thread each); 1 runs them one after another (basic launcher)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides passed to every preset")
    a = ap.parse_args(argv)
    for n in a.only or []:
        if n not in BY_NAME:
            ap.error(f"--only {n}: unknown preset; allowed: {', '.join(BY_NAME)}")
    names = a.only or list(BY_NAME)
    root = (a.root or ROOT / ("multirun/reproduce-tiny" if a.tiny else "multirun/reproduce")).resolve()
    t0 = time.time()
    runs, sweeps = {}, {}
    for n in names:
        p = BY_NAME[n]
        d = root / n
        if not a.skip_run:
            miss = missing_options(n)
            if miss:
                runs[n] = {"rc": None, "error": f"option file(s) missing: {', '.join(miss)}", "seconds": 0.0}
                print(f"[reproduce] {n}: skipped, missing {miss}", flush=True)
                continue
            launcher = (["hydra/launcher=local", f"hydra.launcher.max_parallel={a.jobs}"] if a.jobs > 1 else [])
            runs[n] = run_preset(p, d, a.tiny, a.fresh, [*launcher, *a.overrides])
        if d.exists() and any(d.rglob("emc.json")):
            rep = run_report(d, root / p.emc_line if p.emc_line else None)
            if rep["rc"] != 0:
                runs.setdefault(n, {})["report_error"] = rep.get("error")
        sw = load_sweep(n, d)
        if sw is not None:
            sweeps[n] = sw
        elif a.skip_run:
            runs.setdefault(n, {})["error"] = f"no finished jobs under {d}"
        if a.skip_run and d.exists():
            runs.setdefault(n, {}).update(logged_runs(d) or {})
    verdicts = write_reproduction(a.out.resolve(), root, runs, sweeps, [p.name for p in PRESETS], a.tiny,
                                  time.time() - t0, ROOT, NOTES)
    print(f"[reproduce] wrote {a.out} ({len(verdicts)} verdicts) in {(time.time() - t0) / 60:.1f} min")
    for v in verdicts:
        print(f"  {v['id']:3s} {v['preset']:22s} {v['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
