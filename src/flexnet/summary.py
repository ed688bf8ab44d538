"""The result of one measurement: emc.json's content and the lines printed at the end.

`summarise` turns the search's result into emc.json's dict (trial 0's outcome when search.trials > 1,
with `_trials_summary`'s mean and standard error over trials); `certificate` says whether the EMC is
converged (every attempt at the failed size ended with a verdict, none at the cap); `print_summary`
prints the outcome. No files: run_job writes the dict through records.py.
"""
from __future__ import annotations

import math
import platform
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .oracle import past_fit
from .search import Attempt, SearchResult

if TYPE_CHECKING:
    from .pipeline import Setup


def _at_emc(res: SearchResult) -> Optional[Attempt]:
    """The attempt whose accuracies the result reports: a fit at the EMC (fixed search: the first fit, else the last)."""
    if res.search == "fixed" and res.attempts:
        return next((a for a in res.attempts if a.fitted), res.attempts[-1])
    return next((a for a in res.attempts if a.n == res.emc and a.fitted), None)


def _trials_summary(s: Setup, runs: list[SearchResult]) -> dict:
    """search.trials > 1: each trial's outcome, and the EMC's mean and standard error over trials."""
    rows = []
    for k, r in enumerate(runs):
        a = _at_emc(r)
        rows.append({"trial": k, "emc": r.emc, "converged": certificate(r)["converged"],
                     "bracket": {"fitted": r.fitted, "failed": r.failed},
                     "lower_bound": r.lower_bound, "fits": r.fits, "cost_sample_epochs": r.cost,
                     "unverified": r.unverified,
                     "test_accuracy": a.record.get("test_acc") if a else None,
                     "train_accuracy": a.record.get("train_acc") if a else None,
                     "fitted_epoch": a.record.get("fitted_epoch") if a else None})
    emcs = [float(r.emc) for r in runs]
    mean = sum(emcs) / len(emcs)
    sd = math.sqrt(sum((e - mean) ** 2 for e in emcs) / (len(emcs) - 1))
    conv = [row["converged"] for row in rows]
    return {"trials": rows, "emc_mean": mean, "emc_se": sd / math.sqrt(len(emcs)),
            "trials_converged": sum(1 for c in conv if c),
            "total_fits": sum(r.fits for r in runs), "total_cost_sample_epochs": sum(r.cost for r in runs)}


VERDICT_STOPS = ("verified_minimum", "diverged", "degenerate", "closed_form")  # not at a cap or lr floor


def certificate(res: SearchResult) -> dict:
    """Is the EMC converged, i.e. a property of the network and procedure rather than of the budget?
    Yes when every attempt at the bracket's failed size ended with a verdict (a verified minimum,
    divergence, a degenerate plateau), none at the safety cap or lr floor. None where there is no
    failed size (the whole pool fitted, or search=fixed)."""
    stops = Counter(str(a.record.get("stop_reason")) for a in res.attempts)
    at_failed = [a for a in res.attempts if res.failed is not None and a.n == res.failed]
    fs = Counter(str(a.record.get("stop_reason")) for a in at_failed)
    ok = sum(v for k, v in fs.items() if k in VERDICT_STOPS)
    converged = (ok == len(at_failed)) if at_failed else None
    return {"converged": converged,
            "failed_size": res.failed if at_failed else None,
            "failed_size_stops": dict(fs), "failed_size_verdict_fraction": ok / len(at_failed) if at_failed else None,
            "stop_reasons": dict(stops)}


def summarise(s: Setup, res: SearchResult, tol: dict, seconds: float, cfg: dict, replayed: int,
              job_info: Optional[dict]) -> dict:
    """The result (emc.json); with search.trials > 1 its top-level outcome is trial 0's (the run seed's)."""
    a = _at_emc(res)
    at_emc = [a] if a is not None else []
    test_acc = at_emc[0].record.get("test_acc") if at_emc else None
    train_acc = at_emc[0].record.get("train_acc") if at_emc else None
    unverified = [{"n": a.n, "attempt": a.attempt} for a in res.attempts if a.status == "unverified"]
    cert = certificate(res)
    b = s.recipe.budget
    past = past_fit(cfg)
    if past:  # a fixed length past the fit: no verdicts to certify
        cert["converged"] = None
    broken = sum(1 for a in res.attempts if a.status in ("diverged", "degenerate"))
    return {
        "emc": res.emc,
        "converged": cert.pop("converged"),
        "convergence": {**cert, "policy": "past_fit" if past else b.policy,
                        "cap": {"epochs": b.epochs, "min_steps": b.min_steps},
                        **({"schedule": s.recipe.procedure.schedule} if past else
                           {"lr_decay": b.lr_decay, "min_lr_factor": b.min_lr_factor} if b.policy == "converge"
                           else {"schedule": s.recipe.procedure.schedule, "max_extensions": b.max_extensions}),
                        "grad_rule": s.recipe.checks.grad_rule},
        "diverged": sum(1 for a in res.attempts if a.status == "diverged"),
        "degenerate": sum(1 for a in res.attempts if a.status == "degenerate"),
        "mostly_broken": broken * 2 >= max(1, len(res.attempts)),
        "bracket": {"fitted": res.fitted, "failed": res.failed},
        "lower_bound": res.lower_bound,
        "params": {"target": s.plan.target, "actual": s.plan.actual},
        "fits": res.fits,
        "cost_sample_epochs": res.cost,
        "seconds": seconds,
        "unverified": len(unverified),
        "unverified_attempts": unverified,
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "best_test_accuracy": at_emc[0].record.get("best_test_acc") if at_emc else None,
        "test_loss": at_emc[0].record.get("test_loss") if at_emc else None,
        "train_loss": at_emc[0].record.get("train_loss") if at_emc else None,
        "fitted_epoch": at_emc[0].record.get("fitted_epoch") if at_emc else None,
        "past_fit": past,
        "search": res.search,
        "device": str(s.device),
        "pool_size": s.data.pool_size,
        "num_classes": s.data.num_classes,
        "input_shape": list(s.data.input_shape),
        "arch": s.plan.arch,
        "shape": s.plan.shape,
        "grad_tol": tol,
        "replayed_attempts": replayed,
        "host": platform.node(),
        "job": job_info or {},
        "config": cfg,
    }


def _convergence_line(r: dict) -> str:
    c = r.get("convergence") or {}
    if c.get("policy") == "past_fit":
        fe = r.get("fitted_epoch")
        return (f"trained past the fit: {c['cap']['epochs']} epochs / {c['cap']['min_steps']} steps, "
                + ("never fitted" if fe is None else f"first fitted at epoch {fe}")
                + ("" if r.get("test_accuracy") is None else f"; test accuracy {r['test_accuracy']:.4f}"))
    stops = ", ".join(f"{v} {k}" for k, v in sorted((c.get("failed_size_stops") or {}).items()))
    if r.get("converged") is None:
        return f"converged: n/a (no failed size); policy {c.get('policy')}"
    if r["converged"]:
        return f"converged: yes (attempts at the failed size {c['failed_size']}: {stops}); policy {c.get('policy')}"
    return (f"converged: NO, budget-bound (attempts at the failed size {c['failed_size']}: {stops}); "
            f"policy {c.get('policy')}, cap {c['cap']['epochs']} epochs / {c['cap']['min_steps']} steps")


def print_summary(r: dict, outdir: Path) -> None:
    if r["lower_bound"]:
        what = f"EMC >= {r['emc']} (the whole pool of {r['pool_size']} fitted: a lower bound, not a measurement)"
    else:
        what = f"EMC = {r['emc']}  (bracket: fitted {r['bracket']['fitted']}, failed {r['bracket']['failed']})"
    lines = [
        f"{what}",
        f"  {r['arch']} {r['shape']}  params {r['params']['actual']} (target {r['params']['target']})",
        f"  {r['fits']} fit attempts, {r['cost_sample_epochs']:.3g} sample-epochs, {r['seconds']:.1f}s on {r['device']}"
        + (f", {r['unverified']} unverified" if r["unverified"] else ""),
        f"  {_convergence_line(r)}",
        f"  results: {Path(outdir) / 'emc.json'}",
    ]
    if r.get("mostly_broken"):
        lines.insert(1, f"  WARNING: {r['diverged']} attempts diverged and {r['degenerate']} ended degenerate "
                        f"(loss above its initial value or weights blown up) of {r['fits']}: the training "
                        f"procedure is broken, not the network's capacity; try a lower optimizer.lr")
    if r.get("trials"):
        t = r["trials"]
        lines.insert(1, f"  over {len(t)} trials: EMC {r['emc_mean']:.1f} +- {r['emc_se']:.1f} (SE); per trial "
                        f"{', '.join(str(x['emc']) + ('+' if x['lower_bound'] else '') for x in t)}; "
                        f"{r['total_fits']} fit attempts in all (the lines below: trial 0)")
    print("\n".join(lines), flush=True)
