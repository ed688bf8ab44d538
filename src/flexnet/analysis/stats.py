"""Statistics over trials and sizes: mean and standard error (the one `mean_se` of the analysis), the
power law EMC = a * params^b with its bootstrap interval, per-size aggregates, mean log EMC, the
(semantic, random labels) generalisation pairs, steps to fit, and EMC against the step cap.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .collect import RANDOM_LABELINGS, Job
from .labels import NOT_GROUP_KEYS, group_label, series_keys, short_label

CAP_KEY = "train.min_steps"  # swept in the emc_budget preset: the safety cap (converge) or schedule length (fixed)
MIN_INTERVAL_POINTS = 3  # no interval (power-law CI, error bar) from fewer points (sizes, seeds)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample SD / sqrt(count)) of the finite values, None skipped; SE NaN from
    one value, both NaN from none. The one mean/SE of the analysis: tables, figures and verdicts."""
    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    if a.size == 1:
        return float(a[0]), float("nan")
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))


@dataclass
class PowerLaw:
    a: float
    b: float
    b_lo: float
    b_hi: float
    points: int


def fit_power_law(params: list[float], emc: list[float], n_boot: int = 2000, seed: int = 0) -> Optional[PowerLaw]:
    """EMC = a * params^b by least squares on log-log; percentile bootstrap (over jobs) for b, from
    at least MIN_INTERVAL_POINTS distinct sizes (else b_lo, b_hi are NaN)."""
    x = np.asarray(params, dtype=float)
    y = np.asarray(emc, dtype=float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    if lx.size < 2 or np.unique(lx).size < 2:
        return None
    b, loga = np.polyfit(lx, ly, 1)
    if np.unique(lx).size < MIN_INTERVAL_POINTS:  # a line through 2 sizes: no interval worth the name
        return PowerLaw(float(math.exp(loga)), float(b), float("nan"), float("nan"), int(lx.size))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, lx.size, lx.size)
        if np.unique(lx[i]).size < 2:
            continue
        boots.append(np.polyfit(lx[i], ly[i], 1)[0])
    lo, hi = (np.percentile(boots, [2.5, 97.5]) if boots else (float("nan"), float("nan")))
    return PowerLaw(float(math.exp(loga)), float(b), float(lo), float(hi), int(lx.size))


def time_to_fit(curve: list[dict], threshold: float) -> Optional[int]:
    """Optimizer steps until the clean training accuracy first reaches the fit threshold."""
    for rec in sorted(curve, key=lambda r: r.get("step", 0)):
        acc = rec.get("train_acc")
        if acc is not None and acc >= threshold - 1e-12:
            return int(rec["step"])
    return None


def by_size(jobs: list[Job]) -> list[dict]:
    """Per parameter-count target: mean/SE of EMC (and accuracies) over seeds."""
    sizes: dict[float, list[Job]] = defaultdict(list)
    for j in jobs:
        sizes[j.target].append(j)
    out = []
    for t in sorted(sizes):
        js = sizes[t]
        emc_m, emc_se = mean_se([j.emc for j in js])
        te = [1.0 - j.result["test_accuracy"] for j in js if j.result.get("test_accuracy") is not None]
        tr = [1.0 - j.result["train_accuracy"] for j in js if j.result.get("train_accuracy") is not None]
        te_m, te_se = mean_se(te)
        tr_m, tr_se = mean_se(tr)
        out.append({"target": t, "params": float(np.mean([j.params for j in js])), "emc": emc_m, "emc_se": emc_se,
                    "converged": all(j.result.get("converged") is True for j in js),
                    "budget_stable": all(j.result.get("budget_stable") is True for j in js),
                    "test_error": te_m, "test_error_se": te_se, "train_error": tr_m, "train_error_se": tr_se,
                    "jobs": len(js)})
    return out


def mean_log_emc(jobs: list[Job]) -> tuple[float, float, int]:
    """Mean over model sizes of log10 EMC, per trial (seed); mean and SE over trials."""
    trials: dict[Any, list[float]] = defaultdict(list)
    for j in jobs:
        if j.emc > 0:
            trials[j.seed].append(math.log10(j.emc))
    m, se = mean_se([float(np.mean(v)) for v in trials.values()])
    return m, se, len(trials)


# keys a preset tunes per arm (scripts/reproduce.py): part of the arm, never of what pairs two jobs
TUNED_KEYS = ("optimizer.lr", "optimizer.batch_size")


def _gen_key(j: Job, drop: tuple) -> str:
    return json.dumps({k: v for k, v in j.config.items() if not k.startswith(drop) and k not in TUNED_KEYS},
                      sort_keys=True, default=str)


def generalization_pairs(jobs: list[Job], by: list[str], fixed: Optional[list[Job]] = None) -> dict:
    """Pairs (semantic, random labels) with every other config key equal (the tuned lr aside): percent
    increase of EMC from random to semantic labels against the generalisation gap (train minus test
    accuracy). The gap comes from a search=fixed job with semantic labels and the same config (the
    same size and seed, trained at one fixed n: `gap_n`) when `fixed` holds search=fixed jobs, else
    from the semantic EMC search at its EMC; one definition per table: with fixed jobs, a pair without
    its own is left out (not measured at another n)."""
    sem = {_gen_key(j, ("labeling.",)): j for j in jobs if j.labeling == "semantic"}
    rnd = {_gen_key(j, ("labeling.",)): j for j in jobs if j.labeling in RANDOM_LABELINGS}
    gap_jobs = {_gen_key(j, ("labeling.", "search.")): j for j in fixed or [] if j.labeling == "semantic"}
    if not sem or not rnd:
        return {}
    other_by = [k for k in by if not k.startswith("labeling.")]
    points = []
    for key in sorted(set(sem) & set(rnd)):
        s, r = sem[key], rnd[key]
        g = gap_jobs.get(_gen_key(s, ("labeling.", "search.")))
        if gap_jobs and g is None:
            continue
        src = g if g is not None else s
        if r.emc <= 0 or src.result.get("test_accuracy") is None:
            continue
        train = src.result.get("train_accuracy")
        train = src.threshold if train is None else train
        points.append({"semantic_job": str(s.path), "random_job": str(r.path), "group": group_label(s, other_by),
                       "label": short_label(s, other_by), "arch": s.config.get("arch.name"),
                       "params": s.params, "seed": s.seed, "emc_semantic": s.emc, "emc_random": r.emc,
                       "emc_increase_pct": 100.0 * (s.emc - r.emc) / r.emc,
                       "generalization_gap": float(train) - float(src.result["test_accuracy"]),
                       "gap_job": None if g is None else str(g.path),
                       "gap_n": None if g is None else g.config.get("search.n")})
    r_val, p_val = pearson([p["generalization_gap"] for p in points], [p["emc_increase_pct"] for p in points])
    return {"points": points, "r": r_val, "p": p_val}


def pearson(x: list, y: list) -> tuple:
    """Pearson r and its p-value; nan when there are fewer than 3 points or either side is constant."""
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan"), float("nan")
    from scipy.stats import pearsonr

    res = pearsonr(x, y)
    return float(res[0]), float(res[1])


def cap_series(jobs: list[Job], swept: list[str]) -> "OrderedDict[str, list[dict]]":
    """EMC against the cap (train.min_steps) per series (every other swept key but seeds/params):
    mean over seeds, converged only if every seed's EMC is, and the change from the previous cap."""
    emc_jobs = [j for j in jobs if j.search != "fixed"]
    keys = series_keys(emc_jobs, swept, (*NOT_GROUP_KEYS, CAP_KEY))
    series: "OrderedDict[str, dict]" = OrderedDict()
    for j in sorted(emc_jobs, key=lambda j: group_label(j, keys)):
        series.setdefault(short_label(j, keys) or "EMC", defaultdict(list))[j.config.get(CAP_KEY)].append(j)
    out: "OrderedDict[str, list[dict]]" = OrderedDict()
    for name, by_cap in series.items():
        pts, prev = [], None
        for cap in sorted(by_cap):
            js = by_cap[cap]
            emc = float(np.mean([j.emc for j in js]))
            pts.append({"cap": cap, "emc": emc, "jobs": len(js),
                        "converged": all(j.result.get("converged") is True for j in js),
                        "change": None if prev in (None, 0) else emc / prev - 1.0})
            prev = emc
        out[name] = pts
    return out


def _rung_tolerance(job: Job, emc: float) -> float:
    """How much EMC may grow from one rung to the next and count as budget-stable (summary.py's rule):
    bisect's resolution x EMC (at least 1), linear's step, none for fixed."""
    sc = job.config.get("search.name")
    if sc == "linear":
        return float(job.config.get("search.step") or 128)
    if sc == "fixed":
        return 0.0
    return max(1.0, float(job.config.get("search.resolution") or 0.05) * emc)


def ladder_series(jobs: list[Job], swept: list[str]) -> "OrderedDict[str, list[dict]]":
    """EMC against the cap read off each job's ladder (emc.json `emc_by_cap`, two rungs or more), per
    series (every swept key but seeds) and parameter target: per rung the mean and SE of EMC over the
    series' jobs, whether every job was budget-stable there (EMC grew by no more than the search's
    resolution from the rung below; None at the first rung), and lower bounds."""
    emc_jobs = [j for j in jobs if j.search != "fixed" and len(j.result.get("emc_by_cap") or []) >= 2]
    keys = series_keys(emc_jobs, swept, ("seed", "search.trials"))
    series: "OrderedDict[str, list[Job]]" = OrderedDict()
    for j in sorted(emc_jobs, key=lambda j: (group_label(j, keys), j.target or 0)):
        series.setdefault(short_label(j, keys) or "EMC", []).append(j)
    out: "OrderedDict[str, list[dict]]" = OrderedDict()
    for name, js in series.items():
        by: dict = defaultdict(list)
        for j in js:
            rungs = j.result["emc_by_cap"]
            for k, r in enumerate(rungs):
                stable = None if k == 0 else (r["emc"] - rungs[k - 1]["emc"] <= _rung_tolerance(j, rungs[k - 1]["emc"])
                                              and not r.get("lower_bound"))
                by[r["cap_steps"]].append((r["emc"], stable, bool(r.get("lower_bound"))))
        pts = []
        for cap in sorted(c for c in by if c is not None):
            v = by[cap]
            m, se = mean_se([float(e) for e, _, _ in v])
            st = [s for _, s, _ in v]
            pts.append({"cap": cap, "emc": m, "emc_se": se, "jobs": len(v),
                        "budget_stable": None if any(s is None for s in st) else all(st),
                        "stable_jobs": sum(1 for s in st if s),
                        "lower_bounds": sum(1 for _, _, lb in v if lb)})
        out[name] = pts
    return out
