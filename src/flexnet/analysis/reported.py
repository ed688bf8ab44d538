"""A reported sweep read back for the reproduction's rules: what `python -m flexnet.report <dir>` wrote
(report/emc.csv rows, report.json) and the jobs' own files (emc.json, fits.jsonl): a column of a row,
whether a row matches a selection, and per job its result, labeling, steps to fit, and whether its
EMC is budget-bound or converged and how fine its search's bracket is.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..records import FITS_FILE, read_jsonl
from .collect import REPORT_DIR


@dataclass
class Sweep:
    name: str
    dir: Path
    rows: list
    report: dict

    @property
    def report_dir(self) -> Path:
        return self.dir / REPORT_DIR

    def figure(self, stem: str) -> Optional[str]:
        f = self.report_dir / f"{stem}.png"
        return str(f) if f.exists() else None


def load_sweep(name: str, sweep_dir: Path) -> Optional[Sweep]:
    rd = sweep_dir / REPORT_DIR
    if not (rd / "emc.csv").exists():
        return None
    with open(rd / "emc.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rep = json.loads((rd / "report.json").read_text()) if (rd / "report.json").exists() else {}
    return Sweep(name, sweep_dir, rows, rep)


def as_float(v) -> Optional[float]:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def column(row: dict, col: str):
    """Column value of a config key in emc.csv (groups like 'arch' are stored as 'arch.name')."""
    if col in row:
        return row[col]
    return row.get(f"{col}.name")


def matches(row: dict, sel: dict) -> bool:
    for k, v in sel.items():
        val = column(row, k)
        if val is None:   # the key did not vary in this sweep: it cannot tell the groups apart
            return False
        if str(val) != str(v):
            return False
    return True


def budget_bound(sw: Sweep, r: dict) -> bool:
    """Did an attempt at the job's failed size run out of budget before a verified minimum? Then the
    size was not shown unfittable (a longer budget might fit it): the EMC is budget-bound."""
    failed = as_float(r.get("bracket_failed"))
    if failed is None:
        return False
    if "job" not in r:
        return False
    return any(a.get("n") == int(failed) and a.get("status") == "unverified"
               for a in read_jsonl(sw.dir / r["job"] / FITS_FILE))


def converged(sw: Sweep, r: dict) -> bool:
    """Is the job's EMC certified converged (emc.json "converged": every attempt at the failed size
    ended with a verdict, none at the cap)? Read from the report's `converged` column; a job reported
    before that column existed is converged when it has a failed size and no attempt there ended
    unverified (its fits.jsonl). A lower bound (no failed size) is not converged."""
    v = str(r.get("converged", "")).strip()
    if v in ("True", "False"):
        return v == "True"
    return as_float(r.get("bracket_failed")) is not None and not budget_bound(sw, r)


def resolution(r: dict) -> Optional[float]:
    """The search's resolution at this job, in log10 units: log10(failed size / EMC), the width of the
    final bracket (the EMC lies somewhere in it)."""
    e, failed = as_float(r.get("emc")), as_float(r.get("bracket_failed"))
    if not e or not failed or failed <= e:
        return None
    return math.log10(failed / e)


def ladder(sw: Sweep, r: dict) -> Optional[dict]:
    """The job's budget ladder {cap_steps: rung} (rung: emc, bracket, lower_bound, ... of emc.json's
    `emc_by_cap`), read from its emc.json, else from emc.csv's `emc_by_cap` column ("cap:emc ...");
    None when the job ran one cap (no emc_by_cap: the sweeps from before the ladder)."""
    by = job_result(sw, r).get("emc_by_cap") if "job" in r else None
    if isinstance(by, list) and by:
        out = {int(b["cap_steps"]): b for b in by
               if isinstance(b, dict) and as_float(b.get("cap_steps")) is not None and as_float(b.get("emc"))}
        return out or None
    col = str(r.get("emc_by_cap") or "").split()
    out = {}
    for item in col:
        c, _, e = item.partition(":")
        if as_float(c) is not None and as_float(e):
            out[int(float(c))] = {"cap_steps": int(float(c)), "emc": float(e)}
    return out or None


def budget_stable(sw: Sweep, r: dict) -> Optional[bool]:
    """emc.json's `budget_stable` of the job (the report's column, else its emc.json); None if unknown."""
    v = str(r.get("budget_stable", "")).strip().lower()
    if v in ("true", "false"):
        return v == "true"
    j = job_result(sw, r) if "job" in r else {}
    b = j.get("budget_stable")
    return b if isinstance(b, bool) else None


def job_labeling(sw: Sweep, r: dict) -> Optional[str]:
    try:
        cfg = json.loads((sw.dir / r["job"] / "emc.json").read_text())["config"]
        return cfg["labeling"]["name"]
    except (OSError, KeyError, ValueError):
        return None


def job_result(sw: Sweep, r: dict) -> dict:
    try:
        return json.loads((sw.dir / r["job"] / "emc.json").read_text())
    except (OSError, ValueError):
        return {}


def steps_to_fit(sw: Sweep, r: dict) -> float:
    """Optimizer steps of the fitted attempt (fits.jsonl); inf when the job never fitted."""
    return min((float(a["steps"]) for a in read_jsonl(sw.dir / r["job"] / FITS_FILE)
                if a.get("status") == "fitted" and a.get("steps") is not None), default=math.inf)


def generalization_points(sw: Sweep) -> list:
    """The report's (semantic, random labels) pairs (generalization.csv), numbers as floats."""
    f = sw.report_dir / "generalization.csv"
    if not f.exists():
        return []
    with open(f, newline="") as fh:
        pts = list(csv.DictReader(fh))
    for p in pts:
        for k in ("params", "emc_semantic", "emc_random", "emc_increase_pct", "generalization_gap"):
            p[k] = as_float(p.get(k))
    return [p for p in pts if p["generalization_gap"] is not None and p["emc_increase_pct"] is not None]
