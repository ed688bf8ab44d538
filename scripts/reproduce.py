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

Verdicts are computed by the fixed rules in RULES below (stated in REPRODUCTION.md too); they are
never tuned to the numbers. A preset that fails or is missing gives "inconclusive" with the reason.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

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
    Preset("double_descent", fixed=True, tiny=["scaling.params=250,2000"]),
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


def logged_runs(sweep_dir: Path) -> Optional[dict]:
    """What earlier invocations recorded in a sweep's reproduce.log files (the sweep's and its parts'):
    total seconds over every run (a resumed sweep counts each run), the last rc and the commands."""
    logs = [f for f in [sweep_dir / "reproduce.log", *sorted(sweep_dir.glob("*/reproduce.log"))] if f.exists()]
    if not logs:
        return None
    info = {"rc": 0, "seconds": 0.0, "commands": [], "runs": 0}
    for log in logs:
        cmd, last = None, 0
        for line in log.read_text().splitlines():
            if line.startswith("$ "):   # the interpreter's path in logs of earlier versions reads as python
                cmd = "python " + line[2:].split(" ", 1)[-1]
            m = re.match(r"# rc=(-?\d+|None) seconds=([0-9.]+)$", line)
            if m:
                info["seconds"] += float(m.group(2))
                info["runs"] += 1
                last = None if m.group(1) == "None" else int(m.group(1))   # this sweep's latest run
                if cmd and cmd not in info["commands"]:
                    info["commands"].append(cmd)
        if last != 0 and info["rc"] == 0:
            info["rc"] = last
    return info


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in "~[]* ") else arg


def run_report(sweep_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "flexnet.report", str(sweep_dir), "--bootstrap", "500"]
    proc = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, env=_env())
    info = {"rc": proc.returncode}
    if proc.returncode != 0:
        info["error"] = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1][:300]
    return info


# ------------------------------------------------------------------ reading a report

@dataclass
class Sweep:
    name: str
    dir: Path
    rows: list
    report: dict

    @property
    def report_dir(self) -> Path:
        return self.dir / "report"

    def figure(self, stem: str) -> Optional[str]:
        f = self.report_dir / f"{stem}.png"
        return str(f) if f.exists() else None


def load_sweep(name: str, sweep_dir: Path) -> Optional[Sweep]:
    rd = sweep_dir / "report"
    if not (rd / "emc.csv").exists():
        return None
    with open(rd / "emc.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rep = json.loads((rd / "report.json").read_text()) if (rd / "report.json").exists() else {}
    return Sweep(name, sweep_dir, rows, rep)


def _f(v) -> Optional[float]:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def mean_se(xs: list) -> tuple:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return float("nan"), float("nan"), 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan"), 1
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs)), len(xs)


def _key(row: dict, col: str):
    """Column value of a config key in emc.csv (groups like 'arch' are stored as 'arch.name')."""
    if col in row:
        return row[col]
    return row.get(f"{col}.name")


def _match(row: dict, sel: dict) -> bool:
    for k, v in sel.items():
        val = _key(row, k)
        if val is None:   # the key did not vary in this sweep: it cannot tell the groups apart
            return False
        if str(val) != str(v):
            return False
    return True


def paired_log_ratio(sw: Sweep, a: dict, b: dict) -> dict:
    """Pairs of EMC jobs that agree on every other swept key: log10(EMC_a / EMC_b) per pair."""
    emc_rows = [r for r in sw.rows if r.get("search") != "fixed"]
    swept = [k for k in (emc_rows[0].keys() if emc_rows else []) if k not in ("job", "group", *ROW_FIELDS)]
    sel_keys = {k for k in [*a, *b]}
    other = [k for k in swept if not any(k == s or k == f"{s}.name" or k.startswith(f"{s}.") for s in sel_keys)]

    def key(r):
        return tuple(r.get(k) for k in other)

    A = {key(r): r for r in emc_rows if _match(r, a)}
    B = {key(r): r for r in emc_rows if _match(r, b)}
    diffs, lower, bound = [], 0, [0, 0]
    for k in sorted(set(A) & set(B), key=str):
        ea, eb = _f(A[k]["emc"]), _f(B[k]["emc"])
        if not ea or not eb:
            continue
        diffs.append(math.log10(ea / eb))
        lower += (A[k].get("lower_bound") == "True") + (B[k].get("lower_bound") == "True")
        bound[0] += budget_bound(sw, A[k])
        bound[1] += budget_bound(sw, B[k])
    m, se, n = mean_se(diffs)
    return {"mean": m, "se": se, "pairs": n, "lower_bounds": lower, "diffs": diffs, "budget_bound": bound}


def budget_bound(sw: Sweep, r: dict) -> bool:
    """Did an attempt at the job's failed size run out of budget before a verified minimum? Then the
    size was not shown unfittable (a longer budget might fit it): the EMC is budget-bound."""
    failed = _f(r.get("bracket_failed"))
    if failed is None:
        return False
    try:
        lines = (sw.dir / r["job"] / "fits.jsonl").read_text().splitlines()
    except (OSError, KeyError):
        return False
    for line in lines:
        if line.strip():
            a = json.loads(line)
            if a.get("n") == int(failed) and a.get("status") == "unverified":
                return True
    return False


ROW_FIELDS = ["params_target", "params_actual", "emc", "bracket_fitted", "bracket_failed", "lower_bound",
              "fits", "unverified", "train_accuracy", "test_accuracy", "best_test_accuracy", "bits_per_param",
              "search", "seconds", "cost_sample_epochs"]


# ------------------------------------------------------------------ rules

HOLDS, FAILS, INCONCL = "holds", "does not hold", "inconclusive at this scale"

RULES_TEXT = """\
* **A fits more than B** (paired comparison): pair every EMC job of A with the job of B that agrees
  on every other swept key (parameter count, seed, other axes); d = log10(EMC_A / EMC_B) per pair;
  mean d and its standard error (SE) over the pairs. **holds** if mean d > 2 SE, **does not hold**
  if mean d < -2 SE, otherwise (or with fewer than 2 pairs) **inconclusive**. Pairs in which a job
  fitted the whole pool (EMC only a lower bound) are counted and listed, and so are *budget-bound*
  EMCs: jobs where an attempt at the bracket's failed size ran out of budget before reaching a
  verified minimum (the size was not shown unfittable; a longer budget might fit it). Neither
  changes the verdict; both say how far it rests on the CPU budget.
* **EMC below the parameter count**: r = log10(EMC / actual parameters) per job; **holds** if
  mean r + 2 SE < 0, **does not hold** if mean r - 2 SE > 0, otherwise **inconclusive**.
* **Generalisation**: Pearson r (from the report) between the percent increase of EMC from random
  to semantic labels and the generalisation gap; **holds** if r < 0 with p < 0.05, **does not
  hold** if r > 0 with p < 0.05, otherwise **inconclusive**.
* **Fits randomised data** (search=fixed at n): the fraction of jobs whose final training accuracy
  reached the fit threshold (1.0); **holds** if all did, **does not hold** if none did, otherwise
  **inconclusive**.
* **Corruption**: Spearman correlation with the corruption level p of (i) optimizer steps to fit
  (jobs that never fitted rank last) and (ii) test error; **holds** if both rho > 0 with p < 0.05,
  **does not hold** if either rho < 0 with p < 0.05, otherwise **inconclusive**.
* **Double descent**: mean test error (over seeds) against parameters; **holds** if some interior
  size's error exceeds the minimum error at smaller sizes and at larger sizes by more than 2 SE of
  that size; **does not hold** if the error never rises with size (non-increasing); otherwise
  **inconclusive**.
* A preset that did not run, or whose report is missing, gives **inconclusive** with the reason.
"""


def _ci(m, se) -> str:
    if not math.isfinite(m):
        return "n/a"
    return f"{m:+.3f} ± {se:.3f}" if math.isfinite(se) else f"{m:+.3f} (SE n/a)"


def rule_more(sw: Sweep, a: dict, b: dict) -> tuple:
    r = paired_log_ratio(sw, a, b)
    m, se, n = r["mean"], r["se"], r["pairs"]
    txt = (f"mean log10(EMC {_lbl(a)} / EMC {_lbl(b)}) = {_ci(m, se)} over {n} pair(s)"
           + (f"; {r['lower_bounds']} lower-bound job(s)" if r["lower_bounds"] else "")
           + (f"; budget-bound EMCs: {r['budget_bound'][0]}/{n} of {_lbl(a)}, {r['budget_bound'][1]}/{n} of {_lbl(b)}"
              if any(r["budget_bound"]) else ""))
    if n < 2 or not math.isfinite(se):
        return INCONCL, txt + " (fewer than 2 pairs)"
    if m > 2 * se:
        return HOLDS, txt
    if m < -2 * se:
        return FAILS, txt
    return INCONCL, txt


def _lbl(sel: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sel.items())


def rule_below_params(sw: Sweep, sel: dict) -> tuple:
    rs, lower, bound = [], 0, 0
    for r in sw.rows:
        if r.get("search") == "fixed" or not _match(r, sel):
            continue
        e, p = _f(r["emc"]), _f(r["params_actual"])
        if e and p:
            rs.append(math.log10(e / p))
            lower += r.get("lower_bound") == "True"
            bound += budget_bound(sw, r)
    m, se, n = mean_se(rs)
    txt = (f"mean log10(EMC / params) = {_ci(m, se)} over {n} job(s) ({_lbl(sel)}); EMC/params from "
           f"{min(10 ** x for x in rs):.2f} to {max(10 ** x for x in rs):.2f}" if rs else "no jobs")
    if lower:
        txt += f"; {lower} lower-bound job(s)"
    if bound:
        txt += f"; {bound} budget-bound EMC(s)"
    if n < 2 or not math.isfinite(se):
        return INCONCL, txt
    if m + 2 * se < 0:
        return HOLDS, txt
    if m - 2 * se > 0:
        return FAILS, txt
    return INCONCL, txt


def rule_generalization(sw: Sweep) -> tuple:
    g = (sw.report.get("generalization") or {})
    r, p = g.get("r"), g.get("p")
    pts = 0
    gp = sw.report_dir / "generalization.csv"
    if gp.exists():
        pts = max(0, len(gp.read_text().strip().splitlines()) - 1)
    if r is None or p is None:
        return INCONCL, f"{pts} (semantic, random labels) pair(s): too few or constant for a correlation"
    txt = f"Pearson r = {r:.3f} (p = {p:.3g}) over {pts} pairs"
    if r < 0 and p < 0.05:
        return HOLDS, txt
    if r > 0 and p < 0.05:
        return FAILS, txt
    return INCONCL, txt


def _fitted(r: dict) -> bool:
    acc = _f(r.get("train_accuracy"))
    return acc is not None and acc >= 1.0 - 1e-9


def rule_fits(sw: Sweep, labelings: list) -> tuple:
    rows = [r for r in sw.rows if str(_key(r, "labeling")) in labelings]
    if not rows and len({_key(r, "labeling") for r in sw.rows}) <= 1:
        # labeling did not vary (a single-labeling sweep): read it from the job's config
        rows = [r for r in sw.rows if _job_labeling(sw, r) in labelings]
    if not rows:
        return INCONCL, f"no jobs with labeling in {labelings}"
    fit = [r for r in rows if _fitted(r)]
    te = [_f(r.get("test_accuracy")) for r in rows]
    m, se, n = mean_se(te)
    txt = (f"{len(fit)}/{len(rows)} job(s) reached 100% training accuracy ({', '.join(labelings)}); "
           f"test accuracy {m:.3f} ± {se if math.isfinite(se) else float('nan'):.3f} over {n} job(s)")
    if len(fit) == len(rows):
        return HOLDS, txt
    if not fit:
        return FAILS, txt
    return INCONCL, txt


def _job_labeling(sw: Sweep, r: dict) -> Optional[str]:
    try:
        cfg = json.loads((sw.dir / r["job"] / "emc.json").read_text())["config"]
        return cfg["labeling"]["name"]
    except (OSError, KeyError, ValueError):
        return None


def _job_json(sw: Sweep, r: dict) -> dict:
    try:
        return json.loads((sw.dir / r["job"] / "emc.json").read_text())
    except (OSError, ValueError):
        return {}


def _steps_to_fit(sw: Sweep, r: dict) -> float:
    """Optimizer steps of the fitted attempt (fits.jsonl); inf when the job never fitted."""
    path = sw.dir / r["job"] / "fits.jsonl"
    steps = math.inf
    try:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            a = json.loads(line)
            if a.get("status") == "fitted" and a.get("steps") is not None:
                steps = min(steps, float(a["steps"]))
    except (OSError, ValueError):
        pass
    return steps


def rule_corruption(sw: Sweep) -> tuple:
    from scipy.stats import spearmanr

    pts = []
    for r in sw.rows:
        j = _job_json(sw, r)
        lab = ((j.get("config") or {}).get("labeling") or {})
        level = {"semantic": 0.0, "random_labels": 1.0}.get(lab.get("name"), lab.get("p"))
        te = _f(r.get("test_accuracy"))
        if level is None or te is None:
            continue
        pts.append((float(level), _steps_to_fit(sw, r), 1.0 - te))
    levels = sorted({p[0] for p in pts})
    if len(levels) < 3:
        return INCONCL, f"{len(pts)} job(s) at {len(levels)} corruption level(s): need 3 or more"
    big = max([s for _, s, _ in pts if math.isfinite(s)] or [0.0]) + 1.0
    lv = [p[0] for p in pts]
    s1 = spearmanr(lv, [p[1] if math.isfinite(p[1]) else big for p in pts])
    s2 = spearmanr(lv, [p[2] for p in pts])
    never = sum(1 for p in pts if not math.isfinite(p[1]))
    per = []
    for L in levels:
        st = [p[1] for p in pts if p[0] == L and math.isfinite(p[1])]
        err = mean_se([p[2] for p in pts if p[0] == L])
        per.append(f"p={L:g}: steps {('%.0f' % (sum(st) / len(st))) if st else 'never'}, test error {err[0]:.3f}")
    txt = (f"steps-to-fit rho = {s1[0]:.3f} (p = {s1[1]:.3g}); test-error rho = {s2[0]:.3f} (p = {s2[1]:.3g}); "
           f"{len(pts)} jobs, {never} never fitted; " + "; ".join(per))
    r1, p1, r2, p2 = float(s1[0]), float(s1[1]), float(s2[0]), float(s2[1])
    if any(math.isnan(x) for x in (r1, r2)):
        return INCONCL, txt
    if r1 > 0 and p1 < 0.05 and r2 > 0 and p2 < 0.05:
        return HOLDS, txt
    if (r1 < 0 and p1 < 0.05) or (r2 < 0 and p2 < 0.05):
        return FAILS, txt
    return INCONCL, txt


def rule_double_descent(sw: Sweep) -> tuple:
    sizes: dict = {}
    for r in sw.rows:
        p, te = _f(r.get("params_target")), _f(r.get("test_accuracy"))
        if p is not None and te is not None:
            sizes.setdefault(p, []).append(1.0 - te)
    xs = sorted(sizes)
    stats = [mean_se(sizes[x]) for x in xs]
    txt = "test error: " + ", ".join(f"{x:g}: {m:.3f}±{se:.3f}" if math.isfinite(se) else f"{x:g}: {m:.3f}"
                                      for x, (m, se, _) in zip(xs, stats))
    if len(xs) < 3:
        return INCONCL, txt + " (need 3 or more sizes)"
    for i in range(1, len(xs) - 1):
        m, se, n = stats[i]
        se = se if math.isfinite(se) else 0.0
        if n >= 2 and m - min(s[0] for s in stats[:i]) > 2 * se and m - min(s[0] for s in stats[i + 1:]) > 2 * se \
                and se > 0:
            return HOLDS, txt + f"; peak at {xs[i]:g} parameters"
    if all(stats[i + 1][0] <= stats[i][0] for i in range(len(xs) - 1)):
        return FAILS, txt + " (non-increasing: no peak)"
    return INCONCL, txt


@dataclass
class Finding:
    id: str
    source: str
    claim: str
    preset: str
    rule: Callable
    figure: str
    settle: str     # what would settle it when the verdict depends on scale


FINDINGS = [
    Finding("P1", "Shwartz-Ziv et al. 2024 (headline 1)",
            "Standard training finds minima that fit far fewer samples than the model has parameters (EMC < #params).",
            "emc_labels", lambda s: rule_below_params(s, {"labeling": "semantic"}), "emc_vs_params",
            "the paper-scale sweep (CIFAR-10/ImageNet, 1e4-1e6 parameters, 500-epoch budgets)"),
    Finding("P2", "Shwartz-Ziv et al. 2024 (headline 2)",
            "CNNs are more parameter-efficient than MLPs (and ViTs), even on randomly labelled data.",
            "emc_archs", lambda s: rule_more(s, {"arch": "cnn"}, {"arch": "mlp"}), "emc_vs_params",
            "the default budget (500 epochs / 3000 steps) or longer: the 1-D CNN trains far slower per step than "
            "the MLP, so its EMCs here are budget-bound; then more seeds and CIFAR-10"),
    Finding("P3", "Shwartz-Ziv et al. 2024 (headline 3)",
            "SGD finds minima that fit more training data than full-batch gradient descent.",
            "emc_optimizers", lambda s: rule_more(s, {"optimizer": "sgd"}, {"optimizer": "gd"}), "log_emc",
            "tuned learning rates per optimizer (hparams_search) and the full 500-epoch budget"),
    Finding("P4", "Shwartz-Ziv et al. 2024 (headline 4)",
            "The difference between fitting correctly and randomly labelled samples predicts generalisation "
            "(larger EMC increase from random to semantic labels <-> smaller generalisation gap).",
            "emc_generalization", rule_generalization, "generalization",
            "more (arch, size) pairs and larger models on CIFAR-10"),
    Finding("P5", "Shwartz-Ziv et al. 2024 (headline 5)",
            "ReLU activations find minima that fit more data than sigmoidal ones.",
            "emc_activations", lambda s: rule_more(s, {"arch.activation": "relu"}, {"arch.activation": "sigmoid"}),
            "log_emc", "CNNs at the paper's sizes and budgets"),
    Finding("P6", "Shwartz-Ziv et al. 2024 (data)",
            "Networks fit more samples with semantic labels than with random labels.",
            "emc_labels", lambda s: rule_more(s, {"labeling": "semantic"}, {"labeling": "random_labels"}),
            "emc_vs_params", "larger pools and budgets"),
    Finding("Z1", "Zhang et al. 2017 (random labels)",
            "Networks fit random labels perfectly (zero training error); test accuracy is at chance.",
            "zhang_randomization", lambda s: rule_fits(s, ["random_labels"]), "learning_curves",
            "CIFAR-10 with the small Inception at n = 50,000"),
    Finding("Z2", "Zhang et al. 2017 (random inputs)",
            "Networks fit randomised inputs (shuffled pixels, random pixels, Gaussian inputs) perfectly.",
            "zhang_randomization",
            lambda s: rule_fits(s, ["permuted_inputs", "shuffled_pixels", "random_inputs"]), "learning_curves",
            "CIFAR-10 with the small Inception at n = 50,000"),
    Finding("Z3", "Zhang et al. 2017 (corruption)",
            "As label corruption grows from 0 to 1, time to fit grows and test error grows.",
            "zhang_corruption", rule_corruption, "time_to_fit",
            "CIFAR-10 at n = 50,000 with 3 seeds per level"),
    Finding("D1", "Nakkiran et al. / Shwartz-Ziv et al. (double descent)",
            "With label noise at fixed n, test error against width peaks near the interpolation threshold.",
            "double_descent", rule_double_descent, "double_descent",
            "training well past interpolation (the fit verdict stops at 100%), CIFAR-10 4-class, ResNet widths"),
]


# ------------------------------------------------------------------ REPRODUCTION.md

def _rel(p: Optional[str], base: Path) -> str:
    if not p:
        return "(not drawn)"
    try:
        return os.path.relpath(p, base)
    except ValueError:
        return p


def _budgets(sw: Sweep) -> str:
    """The distinct training budgets (and pool sizes) of a sweep's jobs, read from their emc.json."""
    seen = []
    for r in sw.rows:
        j = _job_json(sw, r)
        t = (j.get("config") or {}).get("train") or {}
        b = f"{t.get('epochs')}/{t.get('min_steps')}/{t.get('max_extensions')}, pool {j.get('pool_size')}"
        if b not in seen:
            seen.append(b)
    return "; ".join(seen)


def write_markdown(out: Path, root: Path, runs: dict, sweeps: dict, tiny: bool, total_s: float) -> list:
    base = out.parent.resolve()
    lines = ["# Reproduction of the EMC paper and of Zhang et al. (2017) at CPU scale", ""]
    swept = sum(float(r.get("seconds") or 0.0) for r in runs.values())
    lines.append(f"Written by `python scripts/reproduce.py{' --tiny' if tiny else ''}` "
                 f"({time.strftime('%Y-%m-%d %H:%M')}); sweeps under `{_rel(str(root), base)}/`; "
                 f"{total_s / 60:.1f} minutes of wall time for this invocation; the sweeps' own runs "
                 f"(table below, as recorded in their reproduce.log) took {swept / 60:.1f} minutes.")
    if tiny:
        lines += ["", "**--tiny: smoke-test budgets (5 epochs, one or two sweep points). These numbers say "
                      "nothing about the findings.**"]
    lines += ["", "Each sweep is regenerated by its command below and re-aggregated by "
                  "`python -m flexnet.report <sweep dir>` (or `python scripts/reproduce.py --skip-run`).", "",
              "## Verdicts", "",
              "| id | source | claim | preset | measured (trials, SE) | figure | verdict |",
              "|---|---|---|---|---|---|---|"]
    verdicts = []
    for f in FINDINGS:
        sw = sweeps.get(f.preset)
        if f.preset not in runs and sw is None:
            continue
        if sw is None:
            info = runs.get(f.preset) or {}
            why = info.get("error") or info.get("report_error") or "no report"
            verdict, measured, fig = INCONCL, f"preset did not produce a report: {why}", None
        else:
            try:
                verdict, measured = f.rule(sw)
            except Exception as e:  # a rule that cannot read the sweep must not stop the others
                verdict, measured = INCONCL, f"rule failed: {type(e).__name__}: {e}"
            fig = sw.figure(f.figure) or sw.figure("emc_vs_params") or sw.figure("log_emc")
        if verdict == INCONCL and not tiny:
            measured += f". Would settle it: {f.settle}"
        verdicts.append({"id": f.id, "verdict": verdict, "preset": f.preset, "measured": measured})
        lines.append(f"| {f.id} | {f.source} | {f.claim} | `{f.preset}` | {measured.replace('|', '/')} | "
                     f"{_rel(fig, base) if fig else '(none)'} | **{verdict}** |")
    lines += ["", "## Rules (fixed before the runs; never tuned to the numbers)", "", RULES_TEXT,
              "## Sweeps", "",
              "Budget: epochs / minimum optimizer steps / extensions of one fit attempt, and the training pool "
              "(max samples; an EMC equal to it is a lower bound).", "",
              "| preset | jobs | unverified attempts | budget | status | wall time | command |",
              "|---|---|---|---|---|---|---|"]
    for p in PRESETS:
        if p.name not in runs and p.name not in sweeps:
            continue
        info, sw = runs.get(p.name, {}), sweeps.get(p.name)
        jobs = len(sw.rows) if sw else 0
        unv = sum(int(_f(r.get("unverified")) or 0) for r in sw.rows) if sw else 0
        status = "ok" if sw and info.get("rc", 0) == 0 else (info.get("error") or info.get("report_error")
                                                            or "not run")
        secs = info.get("seconds")
        lines.append(f"| `{p.name}` | {jobs} | {unv} | {_budgets(sw) if sw else ''} | {str(status).replace('|', '/')} | "
                     f"{'%.0f s' % secs if secs is not None else '(skipped)'} | "
                     f"`{('; '.join(info.get('commands') or []) or 'python -m flexnet +experiment=' + p.name + ' -m').replace(str(ROOT) + os.sep, '')}` |")
    lines += ["", "Per-sweep tables (emc.csv, groups.csv, report.json, emc.md) and figures are in "
                  "`<sweep dir>/report/`.", ""]
    if not tiny and NOTES.exists():   # reading of the numbers, written by hand after a run
        lines += [f"## Notes on this run (hand-written: `{_rel(str(NOTES), base)}`)", "",
                  NOTES.read_text().strip(), ""]
    out.write_text("\n".join(lines))
    return verdicts


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
            launcher = ([f"hydra/launcher=local", f"hydra.launcher.max_parallel={a.jobs}"] if a.jobs > 1 else [])
            runs[n] = run_preset(p, d, a.tiny, a.fresh, [*launcher, *a.overrides])
        if d.exists() and any(d.rglob("emc.json")):
            rep = run_report(d)
            if rep["rc"] != 0:
                runs.setdefault(n, {})["report_error"] = rep.get("error")
        sw = load_sweep(n, d)
        if sw is not None:
            sweeps[n] = sw
        elif a.skip_run:
            runs.setdefault(n, {})["error"] = f"no finished jobs under {d}"
        if a.skip_run and d.exists():
            runs.setdefault(n, {}).update(logged_runs(d) or {})
    verdicts = write_markdown(a.out.resolve(), root, runs, sweeps, a.tiny, time.time() - t0)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "verdicts.json").write_text(json.dumps(verdicts, indent=2) + "\n")
    print(f"[reproduce] wrote {a.out} ({len(verdicts)} verdicts) in {(time.time() - t0) / 60:.1f} min")
    for v in verdicts:
        print(f"  {v['id']:3s} {v['preset']:22s} {v['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
