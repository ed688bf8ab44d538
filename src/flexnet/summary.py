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

from .capacity import bits_per_param, n50
from .oracle import past_fit
from .search import Attempt, SearchResult

if TYPE_CHECKING:
    from .job import Setup


def _at_emc(res: SearchResult) -> Optional[Attempt]:
    """The attempt whose accuracies the result reports: a fit at the EMC (fixed search: the first fit, else the last)."""
    if res.search == "fixed" and res.attempts:
        return next((a for a in res.attempts if a.fitted), res.attempts[-1])
    return next((a for a in res.attempts if a.n == res.emc and a.fitted), None)


def _trials_summary(s: Setup, ladders: list) -> dict:
    """search.trials > 1: each trial's outcome (its top rung; attempts and cost over its whole ladder),
    and the EMC's mean and standard error over trials."""
    rows = []
    runs = [lad[-1].result for lad in ladders]
    for k, r in enumerate(runs):
        fits, cost = ladder_totals(ladders[k])
        a = _at_emc(r)
        rows.append({"trial": k, "emc": r.emc, "converged": certificate(r)["converged"],
                     "bracket": {"fitted": r.fitted, "failed": r.failed},
                     "lower_bound": r.lower_bound, "fits": fits, "cost_sample_epochs": cost,
                     "emc_by_cap": [{"cap_steps": g.cap, "emc": g.result.emc} for g in ladders[k]],
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
            # n50 over every trial's top-rung attempts: with several trials most sizes near the threshold
            # have fits and failures, which one search alone rarely has
            "n50_pooled": n50([(a.n, a.fitted) for r in runs for a in _rung_attempts(r)]),
            "total_fits": sum(row["fits"] for row in rows),
            "total_cost_sample_epochs": sum(row["cost_sample_epochs"] for row in rows)}


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
                        "cap": {"caps": list(b.caps) if b.caps else None, "epochs": b.epochs,
                                "min_steps": b.min_steps},
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


def cap_label(cap: Optional[int]) -> str:
    """5000 -> '5k steps', 2500 -> '2.5k steps', None -> 'the cap' (no ladder: train.epochs / min_steps)."""
    if cap is None:
        return "the cap"
    return (f"{cap / 1000:g}k" if cap >= 1000 and cap % 100 == 0 else str(cap)) + " steps"


def _growth_tolerance(cfg: dict, emc: int) -> float:
    """How much EMC may grow over the last rung and still be budget-stable: the search's resolution
    (bisect: resolution x EMC, at least 1; linear: its step; fixed: none)."""
    sc = cfg.get("search") or {}
    if sc.get("name") == "linear":
        return float(sc.get("step", 128))
    if sc.get("name") == "fixed":
        return 0.0
    return max(1.0, float(sc.get("resolution", 0.05)) * emc)


def _rung_attempts(res: SearchResult) -> list[Attempt]:
    """A rung's attempts, each (n, attempt) once."""
    seen: dict = {}
    for a in res.attempts:
        seen.setdefault((a.n, a.attempt), a)
    return list(seen.values())


def _furthest(rungs: list) -> dict:
    """Each attempt of a ladder once, as the rung that trained it furthest (the largest cost) saw it."""
    out: dict = {}
    for rung in rungs:
        for a in rung.result.attempts:
            key = (a.n, a.attempt)
            if key not in out or float(a.cost or 0.0) >= float(out[key].cost or 0.0):
                out[key] = a
    return out


def ladder_totals(rungs: list) -> tuple[int, float]:
    """(attempts, sample-epochs) over a whole ladder: each attempt once, at the furthest it was trained."""
    furthest = _furthest(rungs)
    return len(furthest), float(sum(float(a.cost or 0.0) for a in furthest.values()))


def ladder_summary(s: Setup, rungs: list, cfg: dict, journal=None) -> dict:
    """emc.json's budget axis: EMC at every rung of the ladder (`emc_by_cap`), `budget_stable`, and the
    top rung's `bits_per_param` and `n50`; `fits` and `cost_sample_epochs` over the whole ladder (each
    attempt once, at the furthest it was trained)."""
    random_labels = (cfg.get("labeling") or {}).get("name") == "random_labels"
    k, params = s.data.num_classes, s.plan.actual
    by_cap = []
    for rung in rungs:
        res = rung.result
        atts = _rung_attempts(res)
        bpp = bits_per_param([(a.n, a.record.get("train_acc")) for a in atts], k, params) if random_labels else None
        by_cap.append({"cap_steps": rung.cap, "emc": res.emc, "bracket": {"fitted": res.fitted, "failed": res.failed},
                       "fits": len(atts), "lower_bound": res.lower_bound, "bits_per_param": bpp,
                       "n50": n50([(a.n, a.fitted) for a in atts])})
    stable = None
    if len(by_cap) >= 2 and not by_cap[-1]["lower_bound"]:
        prev, top = by_cap[-2]["emc"], by_cap[-1]["emc"]
        stable = bool(top - prev <= _growth_tolerance(cfg, prev))
    top = by_cap[-1]
    fits, cost = ladder_totals(rungs)
    furthest = _furthest(rungs)
    div = sum(1 for a in furthest.values() if a.status == "diverged")
    deg = sum(1 for a in furthest.values() if a.status == "degenerate")
    return {"emc_cap_steps": top["cap_steps"], "emc_by_cap": by_cap, "budget_stable": stable,
            "bits_per_param": top["bits_per_param"], "n50": top["n50"], "fits": fits, "cost_sample_epochs": cost,
            "diverged": div, "degenerate": deg, "mostly_broken": (div + deg) * 2 >= max(1, fits)}


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
    cap = (f"caps {', '.join(str(x) for x in c['cap']['caps'])} steps" if c["cap"].get("caps")
           else f"cap {c['cap']['epochs']} epochs / {c['cap']['min_steps']} steps")
    return (f"converged: NO, budget-bound (attempts at the failed size {c['failed_size']}: {stops}); "
            f"policy {c.get('policy')}, {cap}")


def _ladder_line(r: dict) -> Optional[str]:
    """'by cap: 5k 2400, 10k 2700, 20k 2831; budget-stable: no (+4.8% over the last rung)'."""
    by = r.get("emc_by_cap") or []
    if len(by) < 2:
        return None
    rungs = ", ".join(f"{cap_label(b['cap_steps']).replace(' steps', '')} {b['emc']}{'+' if b['lower_bound'] else ''}"
                      for b in by)
    prev, top = by[-2]["emc"], by[-1]["emc"]
    grew = f"{100.0 * (top - prev) / prev:+.1f}% over the last rung" if prev else f"{prev} -> {top}"
    stable = {True: "yes", False: "NO", None: "n/a"}[r.get("budget_stable")]
    return f"EMC by cap (steps): {rungs}; budget-stable: {stable} ({grew})"


def print_summary(r: dict, outdir: Path) -> None:
    cap = cap_label(r.get("emc_cap_steps"))
    if r["lower_bound"]:
        what = (f"EMC({cap}) >= {r['emc']} (the whole pool of {r['pool_size']} fitted: a lower bound, "
                "not a measurement)")
    else:
        what = f"EMC({cap}) = {r['emc']}  (bracket: fitted {r['bracket']['fitted']}, failed {r['bracket']['failed']})"
    ladder = _ladder_line(r)
    extra = [f"  {ladder}"] if ladder else []
    if r.get("bits_per_param") is not None:
        extra.append(f"  random-label information stored: {r['bits_per_param']:.2f} bits per parameter")
    lines = [
        f"{what}",
        *extra,
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
