"""Writing a computed report's tables: emc.csv (one row per job, ROW_FIELDS), groups.csv,
generalization.csv, report.json (the aggregates, machine-readable) and emc.md (the same for a reader,
with the double-descent tables and the notes).
"""
from __future__ import annotations

import csv
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .stats import CAP_KEY

if TYPE_CHECKING:
    from .build import Report

# emc.csv's columns after the job, its group and the swept keys
ROW_FIELDS = ["params_target", "params_actual", "emc", "converged", "bracket_fitted", "bracket_failed",
              "lower_bound", "fits", "unverified", "diverged", "degenerate", "train_accuracy", "test_accuracy", "best_test_accuracy", "bits_per_param",
              "search", "seconds", "cost_sample_epochs"]


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.{digits}g}"
    return str(v)


def _raw(v: Any) -> str:
    """Full precision for the CSV files (empty for missing / non-finite)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def write_tables(rep: Report) -> None:
    fields = ["job", *(["trial"] if any("trial" in r for r in rep.rows) else []), "group", *rep.swept, *ROW_FIELDS]
    with open(rep.out / "emc.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rep.rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    rep.files.append(rep.out / "emc.csv")
    with open(rep.out / "groups.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "jobs", "sizes", "mean_log10_emc", "mean_log10_emc_se", "trials", "power_law_a",
                    "power_law_b", "power_law_b_lo95", "power_law_b_hi95", "bits_per_param", "bits_per_param_se",
                    "unverified", "converged"])
        for name, g in rep.groups.items():
            pl = g["power_law"]
            bpp = g["bits_per_param"] or (None, None)
            lm, lse, nt = g["log_emc"]
            w.writerow([name, len(g["jobs"]), len(g["sizes"]), _raw(lm), _raw(lse), nt,
                        *([_raw(pl.a), _raw(pl.b), _raw(pl.b_lo), _raw(pl.b_hi)] if pl else [""] * 4),
                        _raw(bpp[0]), _raw(bpp[1]), g["unverified"], g["converged"]])
    if rep.generalization.get("points"):
        pts = rep.generalization["points"]
        with open(rep.out / "generalization.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(pts[0]))
            w.writeheader()
            w.writerows(pts)
        rep.files.append(rep.out / "generalization.csv")
    rep.files.insert(1, rep.out / "groups.csv")
    summary = {
        "jobs": len(rep.rows), "by": rep.by, "swept": rep.swept,
        "unfinished": [str(p) for p in rep.collection.unfinished],
        "broken": [{"path": str(p), "error": e} for p, e in rep.collection.broken],
        "groups": {name: {"jobs": len(g["jobs"]),
                          "power_law": (vars(g["power_law"]) if g["power_law"] else None),
                          "mean_log10_emc": g["log_emc"][0], "mean_log10_emc_se": g["log_emc"][1],
                          "bits_per_param": g["bits_per_param"][0] if g["bits_per_param"] else None,
                          "sizes": g["sizes"]}
                   for name, g in rep.groups.items()},
        "generalization": {k: v for k, v in rep.generalization.items() if k != "points"},
        "double_descent": rep.double_descent,
    }
    (rep.out / "report.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    rep.files.append(rep.out / "report.json")


def _json_default(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return str(v)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_markdown(rep: Report) -> None:
    col = rep.collection
    parts = [f"# EMC report\n\n{len(rep.rows)} finished job(s)"
             + (f", grouped by {', '.join(rep.by)}" if rep.by else "") + "."]
    if rep.groups:
        hdr = ["group", "jobs", "mean log10 EMC (SE)", "EMC = a·params^b", "b 95% CI", "bits/param", "unverified",
               "converged EMCs"]
        rows = []
        for name, g in rep.groups.items():
            pl = g["power_law"]
            lm, lse, _ = g["log_emc"]
            bpp = g["bits_per_param"]
            rows.append([name, len(g["jobs"]),
                         f"{lm:.3f} ({lse:.3f})" if math.isfinite(lm) and math.isfinite(lse)
                         else (f"{lm:.3f}" if math.isfinite(lm) else ""),
                         f"{pl.a:.3g}·p^{pl.b:.3f}" if pl else "",
                         f"[{pl.b_lo:.3f}, {pl.b_hi:.3f}]" if pl and math.isfinite(pl.b_lo) else "",
                         f"{bpp[0]:.3g}" if bpp else "", g["unverified"], g["converged"]])
        parts.append("## Groups\n\n" + _md_table(hdr, rows))
        from .labels import differing_keys

        shown = differing_keys(rep.collection.jobs, [k for k in rep.swept if k not in rep.by])  # not option-only keys
        cols = ["group", *shown, "params_target", "params_actual", "emc",
                "emc_cap_steps", "emc_by_cap", "budget_stable", "converged", "bracket_fitted", "bracket_failed", "fits", "unverified", "test_accuracy", "bits_per_param"]
        parts.append("## Jobs\n\n" + _md_table(cols, [[_num(r.get(c)) for c in cols] for r in rep.rows]))
    if rep.cap is not None:
        lines = []
        for name, pts in rep.cap.items():
            lines += [[name, p["cap"], f"{p['emc']:.0f}", "yes" if p["converged"] else "no",
                       "" if p["change"] is None else f"{100 * p['change']:+.1f}%"] for p in pts]
        parts.append("## EMC against the cap\n\n" + _md_table(["series", CAP_KEY, "EMC", "converged",
                                                               "change from the previous cap"], lines))
    if rep.ladder:
        lines = []
        for name, pts in rep.ladder.items():
            lines += [[name, p["cap"], f"{p['emc']:.0f}", f"{p['emc_se']:.1f}" if math.isfinite(p["emc_se"]) else "",
                       p["jobs"], "" if p["budget_stable"] is None else f"{p['stable_jobs']}/{p['jobs']}",
                       p["lower_bounds"] or ""] for p in pts]
        parts.append("## EMC against the cap (the ladder, train.caps)\n\nEach job's EMC at every rung of its "
                     "ladder (emc.json `emc_by_cap`), mean and SE over the series' jobs; budget-stable: the jobs whose "
                     "EMC grew by no more than the search's resolution from the rung below (the figure draws a rung "
                     "hollow unless all are).\n\n"
                     + _md_table(["series", "cap (steps)", "EMC", "SE", "jobs", "budget-stable jobs", "lower bounds"],
                                 lines))
    gen = rep.generalization
    if gen.get("points"):
        r = gen["r"]
        parts.append(f"## Generalization\n\nPearson r = {r:.3f} (p = {gen['p']:.3g}) between the percent "
                     f"increase of EMC from random to semantic labels and the generalization gap, over "
                     f"{len(gen['points'])} pair(s)." if math.isfinite(r) else
                     f"## Generalization\n\n{len(gen['points'])} pair(s): too few (or constant) for a correlation.")
    dd_part = _double_descent_markdown(rep)
    if dd_part:
        parts.append(dd_part)
    if rep.figures:
        parts.append("## Figures\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in rep.figures))
    if col.unfinished:
        parts.append("## Unfinished jobs (no emc.json)\n\n" + "\n".join(f"- `{p}`" for p in col.unfinished))
    if col.broken:
        parts.append("## Unreadable results\n\n" + "\n".join(f"- `{p}`: {e}" for p, e in col.broken))
    if rep.notes:
        parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in rep.notes))
    (rep.out / "emc.md").write_text("\n\n".join(parts) + "\n")
    rep.files.append(rep.out / "emc.md")


def _pm(m: float, se: float) -> str:
    if not math.isfinite(m):
        return ""
    return f"{m:.3f} ± {se:.3f}" if math.isfinite(se) else f"{m:.3f}"


def _double_descent_markdown(rep: Report) -> str:
    """Per group of search=fixed jobs: error against size, who fitted and when, threshold, peak, EMC line."""
    dd = {k: v for k, v in rep.double_descent.items() if not k.startswith("_")}
    if not dd:
        return ""
    line = rep.double_descent.get("_emc_line") or {}
    parts = ["## Double descent"]
    for name, d in dd.items():
        rows = [[_num(s["params"]), _pm(s["test_error"], s["test_error_se"]), _pm(s["train_error"], s["train_error_se"]),
                 f"{s['fitted']}/{s['jobs']}", "" if s["fitted_epoch"] is None else f"{s['fitted_epoch']:.0f}"]
                for s in d["sizes"]]
        thr = d["interpolation_threshold"]
        head = (f"**{rep.groups[name]['label']}** (n = {d['n']}" + (", trained past the fit" if d["past_fit"] else "")
                + f"): interpolation threshold (mean train error <= {d['tol']:g}) "
                + (f"at {thr:.0f} parameters" if thr is not None else "not reached")
                + (f"; largest test error {d['peak_test_error']:.3f} at {d['peak_params']:.0f} parameters"
                   if d["peak_params"] is not None else "") + ".")
        parts.append(head + "\n\n" + _md_table(["parameters", "test error (SE)", "train error (SE)", "fitted",
                                                 "mean fitted epoch"], rows))
    if line.get("params") is not None:
        parts.append(f"EMC = n = {line.get('n')} at {line['params']:.0f} parameters ({line['source']}).")
    return "\n\n".join(parts)
