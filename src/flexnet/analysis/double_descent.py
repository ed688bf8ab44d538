"""Double descent of search=fixed jobs: test and train error per size (mean, SE over seeds), the
interpolation threshold, the parameter count at which an EMC sweep's EMC equals the fixed n, and the
epoch-wise error curve of jobs trained past the fit.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from .collect import Job, collect, first_attempt
from .labels import group_label, series_keys, varying_keys
from .stats import by_size, mean_se

INTERPOLATION_TOL = 0.01  # interpolation threshold: the smallest size whose mean final train error is <= this


def interpolation_threshold(sizes: list[dict], tol: float = INTERPOLATION_TOL) -> Optional[dict]:
    """The interpolation threshold: the smallest size (a `by_size` row) whose mean final train error
    over seeds is <= tol (~100% train accuracy); None when no size gets there."""
    for s in sorted(sizes, key=lambda s: s["params"]):
        if math.isfinite(s["train_error"]) and s["train_error"] <= tol + 1e-12:
            return s
    return None


def emc_crossing(points: list[tuple[float, float]], n: float) -> Optional[float]:
    """The parameter count at which the EMC reaches n, from (parameters, mean EMC) points of an EMC
    sweep: log-log interpolation between the first two consecutive sizes whose EMCs bracket n; None
    when no two sizes do (n outside the measured EMCs: no extrapolation)."""
    pts = sorted((float(p), float(e)) for p, e in points if p > 0 and e > 0)
    for (p0, e0), (p1, e1) in zip(pts, pts[1:]):
        if e0 == n:
            return p0
        if (e0 - n) * (e1 - n) < 0:
            t = (math.log(n) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp(math.log(p0) + t * (math.log(p1) - math.log(p0)))
    if pts and pts[-1][1] == n:
        return pts[-1][0]
    return None


def emc_line(emc_dirs: list[Path], n: float) -> dict:
    """Where the EMC equals the fixed n, from the EMC searches (search != fixed) under emc_dirs: mean
    EMC per parameter count over seeds, then emc_crossing. {'params', 'source', 'points', 'note'}."""
    col = collect(emc_dirs)
    jobs = [j for j in col.jobs if j.search != "fixed"]
    src = ", ".join(str(d) for d in emc_dirs)
    if not jobs:
        return {"params": None, "source": src, "points": [], "note": f"--emc-dir {src}: no EMC search results"}
    pts = [(s["params"], s["emc"]) for s in by_size(jobs)]
    p = emc_crossing(pts, n)
    groups = {group_label(j, series_keys(jobs, varying_keys(jobs))) for j in jobs}
    note = None
    if p is None:
        note = (f"--emc-dir {src}: the mean EMCs ({', '.join(f'{e:.0f}' for _, e in pts)}) do not bracket "
                f"n = {n:g}: no EMC line drawn")
    elif len(groups) > 1:
        note = f"--emc-dir {src}: {len(groups)} series pooled for the EMC line"
    return {"params": p, "source": src, "points": [{"params": a, "emc": b} for a, b in pts], "note": note}


def epoch_curve(jobs: list[Job]) -> list[dict]:
    """Test and train error against epoch over the jobs' curves (their first attempt), mean and SE
    over the jobs at each epoch that has a test accuracy."""
    by_epoch: dict[int, dict[str, list[float]]] = defaultdict(lambda: {"test": [], "train": []})
    for j in jobs:
        for r in first_attempt(j.curve or []):
            if r.get("test_acc") is None:
                continue
            by_epoch[int(r["epoch"])]["test"].append(1.0 - float(r["test_acc"]))
            if r.get("train_acc") is not None:
                by_epoch[int(r["epoch"])]["train"].append(1.0 - float(r["train_acc"]))
    out = []
    for e in sorted(by_epoch):
        te, tr = by_epoch[e]["test"], by_epoch[e]["train"]
        (tm, tse), (rm, rse) = mean_se(te), (mean_se(tr) if tr else (float("nan"), float("nan")))
        out.append({"epoch": e, "test_error": tm, "test_error_se": tse, "train_error": rm, "train_error_se": rse,
                    "jobs": len(te)})
    return out


def double_descent_summary(jobs: list[Job], tol: float = INTERPOLATION_TOL) -> dict:
    """One group's search=fixed jobs: per size test / train error (mean, SE), how many seeds fitted
    and when (fitted_epoch), the interpolation threshold and the size of the largest test error."""
    fixed = [j for j in jobs if j.search == "fixed"]
    sizes = by_size(fixed)
    by_target: dict[float, list[Job]] = defaultdict(list)
    for j in fixed:
        by_target[j.target].append(j)
    for s in sizes:
        js = by_target[s["target"]]
        fe = [float(j.result["fitted_epoch"]) for j in js if j.result.get("fitted_epoch") is not None]
        s["fitted"] = len(fe)
        s["fitted_epoch"] = float(np.mean(fe)) if fe else None
    thr = interpolation_threshold(sizes, tol)
    finite = [s for s in sizes if math.isfinite(s["test_error"])]
    peak = max(finite, key=lambda s: s["test_error"]) if finite else None
    ns = sorted({j.config.get("search.n") for j in fixed if j.config.get("search.n") is not None})
    return {"n": ns[0] if len(ns) == 1 else ns, "tol": tol,
            "past_fit": any(j.result.get("past_fit") for j in fixed),
            "interpolation_threshold": thr["params"] if thr else None,
            "threshold_target": thr["target"] if thr else None,
            "peak_params": peak["params"] if peak else None, "peak_test_error": peak["test_error"] if peak else None,
            "sizes": sizes}
