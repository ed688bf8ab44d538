"""The report of a set of sweeps: `build_report` computes it (rows, groups with their power law and
mean log EMC, generalisation pairs, double descent) without writing anything; `write_report` writes
its tables, figures and emc.md into `Report.out`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..loggers import CSV_DIR, read_csv_log
from ..records import CURVE_FILE
from ..records import read_curve
from .collect import REPORT_DIR, Collection, Job, collect
from .double_descent import INTERPOLATION_TOL, double_descent_summary, emc_line
from .figures import draw_figures
from .labels import group_label, series_keys, short_label, varying_keys
from .stats import CAP_KEY, by_size, cap_series, fit_power_law, generalization_pairs, ladder_series, mean_log_emc, mean_se
from .tables import write_markdown, write_tables


@dataclass
class Report:
    out: Path
    collection: Collection
    by: list[str]
    swept: list[str]
    rows: list[dict]
    groups: "OrderedDict[str, dict]"
    generalization: dict
    figures: list[Path]
    notes: list[str]
    files: list[Path] = field(default_factory=list)  # every file written, figures included
    figure_text: dict = field(default_factory=dict)   # figure name -> its title, legend entries, x tick labels
    double_descent: dict = field(default_factory=dict)  # group -> threshold, peak, EMC line (search=fixed jobs)
    cap: Optional[dict] = None  # CAP_KEY swept: series -> EMC against the cap (cap_series)
    ladder: Optional[dict] = None  # jobs on a ladder of caps: series -> EMC against the cap (ladder_series)


def _row(job: Job, swept: list[str], root: Path) -> dict:
    r = job.result
    br = r.get("bracket") or {}
    try:
        rel = str(job.path.relative_to(root))
    except ValueError:
        rel = str(job.path)
    row = {"job": rel, "group": job.group}
    if job.trial is not None:
        row["trial"] = job.trial
    for k in swept:
        row[k] = job.config.get(k)
    row.update({
        "params_target": (r.get("params") or {}).get("target"),
        "params_actual": (r.get("params") or {}).get("actual"),
        "emc": r.get("emc"),
        "bracket_fitted": br.get("fitted"),
        "bracket_failed": br.get("failed"),
        "lower_bound": r.get("lower_bound"),
        "converged": r.get("converged"),
        "emc_cap_steps": r.get("emc_cap_steps"),
        "emc_by_cap": " ".join(f"{b.get('cap_steps')}:{b.get('emc')}" for b in r.get("emc_by_cap") or [])
        if isinstance(r.get("emc_by_cap"), list) else None,
        "budget_stable": r.get("budget_stable"),
        "fits": r.get("fits"),
        "unverified": r.get("unverified"),
        "diverged": r.get("diverged"),
        "degenerate": r.get("degenerate"),
        "train_accuracy": r.get("train_accuracy"),
        "test_accuracy": r.get("test_accuracy"),
        "best_test_accuracy": r.get("best_test_accuracy"),
        "bits_per_param": job.bits_per_param(),
        "search": job.search,
        "seconds": r.get("seconds"),
        "cost_sample_epochs": r.get("cost_sample_epochs"),
    })
    return row


def _group(js: list[Job], by: list[str], n_boot: int) -> dict:
    """One group's aggregates: its series label, per-size means, the power law and mean log EMC of its
    EMC searches, bits per parameter, unverified attempts, converged EMCs and lower bounds."""
    g = {"jobs": js, "label": short_label(js[0], by) or "EMC"}  # the label: the figures' name of the series
    emc_jobs = [j for j in js if j.search != "fixed"]
    g["sizes"] = by_size(js)
    g["emc_jobs"] = emc_jobs
    g["power_law"] = fit_power_law([j.params for j in emc_jobs], [j.emc for j in emc_jobs], n_boot) \
        if emc_jobs else None
    g["log_emc"] = mean_log_emc(emc_jobs) if emc_jobs else (float("nan"), float("nan"), 0)
    bpp = [j.bits_per_param() for j in emc_jobs if j.bits_per_param() is not None]
    g["bits_per_param"] = mean_se(bpp) if bpp else None
    g["unverified"] = sum(int(j.result.get("unverified") or 0) for j in js)
    g["converged"] = f"{sum(1 for j in emc_jobs if j.result.get('converged') is True)}/{len(emc_jobs)}"
    g["lower_bounds"] = sum(1 for j in emc_jobs if j.result.get("lower_bound"))
    return g


def _double_descent(groups: dict, tol: float, emc_dirs: Optional[list[Path]], emc_params: Optional[float],
                    notes: list[str]) -> dict:
    """Per group of search=fixed jobs its double_descent_summary, and under "_emc_line" where the EMC
    equals the fixed n (from emc_params, or the EMC searches under emc_dirs); notes get what is missing."""
    dd = {name: double_descent_summary(g["jobs"], tol) for name, g in groups.items()
          if any(j.search == "fixed" for j in g["jobs"])}
    if dd:
        n = next((d["n"] for d in dd.values() if isinstance(d["n"], (int, float))), None)
        if emc_params is not None:
            dd["_emc_line"] = {"params": float(emc_params), "source": "--emc-params", "n": n, "note": None}
        elif emc_dirs:
            if n is None:
                notes.append("--emc-dir: the search=fixed jobs have no single search.n: no EMC line drawn")
            else:
                dd["_emc_line"] = {**emc_line([Path(d) for d in emc_dirs], float(n)), "n": n}
        line = dd.get("_emc_line") or {}
        if line.get("note"):
            notes.append(line["note"])
    return dd


def build_report(dirs: list[Path], by: Optional[list[str]] = None, out: Optional[Path] = None,
                 n_boot: int = 2000, converged_only: bool = False, interpolation_tol: float = INTERPOLATION_TOL,
                 emc_dirs: Optional[list[Path]] = None, emc_params: Optional[float] = None) -> Report:
    """The report of the jobs under dirs (computed, nothing written: see write_report); out defaults
    to <first dir>/report. interpolation_tol, emc_dirs, emc_params: the double-descent figure's
    interpolation threshold (mean final train error <= tol) and its EMC line: the parameter count
    where the EMC of the EMC searches under emc_dirs equals the fixed n, or emc_params given directly."""
    dirs = [Path(d) for d in dirs]
    root = dirs[0]
    out = Path(out) if out else root / REPORT_DIR
    col = collect(dirs)
    notes: list[str] = []
    if converged_only:  # keep the EMCs certified converged (emc.json "converged": true)
        left_out = [j for j in col.jobs if j.result.get("converged") is not True]
        col.jobs = [j for j in col.jobs if j.result.get("converged") is True]
        if left_out:
            notes.append(f"--converged-only: {len(left_out)} job(s) left out (EMC not converged, or no failed size)")
    jobs = col.jobs
    swept = varying_keys(jobs)
    if by is None:
        by = series_keys(jobs, swept)
    for j in jobs:
        j.group = group_label(j, by)
        cp = j.path / CURVE_FILE
        if cp.exists():
            j.curve = read_curve(cp)
            if j.trial is not None:  # one of a job's trials: its own curve lines
                j.curve = [r for r in j.curve if int(r.get("trial") or 0) == j.trial]
        if (j.path / CSV_DIR / "epochs.csv").exists():  # logger=csv
            try:
                rows = read_csv_log(j.path)["epochs"]
            except (OSError, ValueError) as e:
                notes.append(f"{j.path / CSV_DIR / 'epochs.csv'}: not read ({e})")
                rows = []
            j.train_log = [r for r in rows if int(r.get("trial") or 0) == (j.trial or 0)]
    jobs.sort(key=lambda j: (j.group, j.target, str(j.seed), str(j.path)))
    rows = [_row(j, swept, root) for j in jobs]
    members: "OrderedDict[str, list[Job]]" = OrderedDict()
    for j in jobs:
        members.setdefault(j.group, []).append(j)
    groups: "OrderedDict[str, dict]" = OrderedDict()
    for name, js in members.items():
        groups[name] = g = _group(js, by, n_boot)
        if g["lower_bounds"]:
            notes.append(f"{name}: {g['lower_bounds']} job(s) fitted the whole pool (EMC is a lower bound there)")
    gen = generalization_pairs([j for j in jobs if j.search != "fixed"], by, [j for j in jobs if j.search == "fixed"])
    rep = Report(out, col, by, swept, rows, groups, gen, [], notes)
    rep.double_descent = _double_descent(groups, interpolation_tol, emc_dirs, emc_params, notes)
    if CAP_KEY in swept:
        rep.cap = cap_series(jobs, swept)
    rep.ladder = ladder_series(jobs, swept) or None
    return rep


def write_report(rep: Report) -> Report:
    """Write the report into rep.out: the tables (emc.csv, groups.csv, report.json), the figures (their
    notes join rep.notes), then emc.md; rep.files lists every file written, figures last."""
    rep.out.mkdir(parents=True, exist_ok=True)
    write_tables(rep)
    figs = draw_figures(rep)
    rep.figures, rep.figure_text = list(figs), figs.text
    rep.notes += figs.notes
    write_markdown(rep)
    rep.files += rep.figures
    return rep
