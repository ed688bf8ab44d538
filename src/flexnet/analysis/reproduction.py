"""REPRODUCTION.md and verdicts.json from reported sweeps: each finding's verdict (its rule applied to
its preset's sweep, or "inconclusive" with the reason when the preset did not produce a report), the
verdict table, the rules, the table of sweeps (jobs, unverified attempts, budgets, status, wall time
and command, read from each sweep's reproduce.log), and the hand-written notes on the run.
scripts/reproduce.py runs the presets and calls `write_reproduction`.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Optional

from ..records import FITS_FILE, read_jsonl
from .reported import Sweep, as_float, job_result
from .findings import FINDINGS, unpack
from .verdicts import BUDGET_DEP, INCONCL, NO_LADDER, RULES_TEXT, Z, cap_label, share


RUNS_FILE = "runs.jsonl"   # a line per scripts/reproduce.py invocation that ran sweeps: presets, wall time, spans


def full_run(root: Path, presets: tuple) -> Optional[dict]:
    """The newest invocation (root/runs.jsonl) that ran every one of `presets` from scratch (none
    resumed), or None: its wall time is what `make reproduce` costs."""
    rows = [r for r in read_jsonl(root / RUNS_FILE)
            if not r.get("resumed") and set(presets) <= set(r.get("presets") or [])] \
        if (root / RUNS_FILE).exists() else []
    return rows[-1] if rows else None


def previous_seconds(d: Path, job_seconds: float = 3.0) -> Optional[float]:
    """What the multirun in d cost when it last ran (its jobs' attempt journals, plus job_seconds a job),
    to run the longest chains first; None if it never ran."""
    jobs = sorted(f.parent for f in d.glob(f"*/{FITS_FILE}")) if d.exists() else []
    if not jobs:
        return None
    tb = time_breakdown(jobs)
    return tb["fits"] + tb["failures_cap"] + tb["failures_verdict"] + job_seconds * len(jobs)


def record_run(root: Path, names: list, slots: int, pool, resumed: bool) -> None:
    """Append an invocation of scripts/reproduce.py to root/runs.jsonl: its presets, wall time (pool: the
    flexnet.taskpool run of its multiruns), and when each multirun ran."""
    root.mkdir(parents=True, exist_ok=True)
    rec = {"date": time.strftime("%Y-%m-%d %H:%M"), "presets": names, "slots": slots, "resumed": resumed,
           "wall_s": round(pool.wall, 1), "cores": os.cpu_count(),
           "spans": {g: [round(s, 1), round(e, 1)] for g, (s, e) in pool.spans().items()},
           "tasks": [{"key": d.key, "start": round(d.start, 1), "end": round(d.end, 1),
                      "rc": (d.result or {}).get("rc") if d.error is None else 1} for d in pool.done]}
    with open(root / RUNS_FILE, "a") as f:
        f.write(json.dumps(rec) + "\n")


def logged_runs(sweep_dir: Path, *more: Path) -> Optional[dict]:
    """What earlier invocations recorded in a sweep's reproduce.log files (the sweep's, its parts' or
    arms', and those under `more`, e.g. its tuning dir): total seconds over every run (a resumed sweep
    counts each run), the last rc and the commands."""
    logs = [f for d in (sweep_dir, *more) for f in [d / "reproduce.log", *sorted(d.glob("*/reproduce.log"))]
            if f.exists()]
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
        j = job_result(sw, r)
        t = (j.get("config") or {}).get("train") or {}
        b = (f"{t.get('policy') or 'fixed'} {t.get('epochs')}/{t.get('min_steps')}/{t.get('max_extensions')}, "
             f"pool {j.get('pool_size')}")
        if b not in seen:
            seen.append(b)
    return "; ".join(seen)


def _trials(sw: Sweep) -> Optional[int]:
    """Distinct seeds among a sweep's jobs (the trials each configuration has)."""
    seeds = {r.get("seed") for r in sw.rows if r.get("seed") not in (None, "")}
    return len(seeds) or None


def tuned_lrs(root: Path, preset: str) -> list[dict]:
    """The lr chosen per (arm, labeling) of a tuned preset (root/tuning/<preset>/chosen.json)."""
    f = root / "tuning" / preset / "chosen.json"
    return list(json.loads(f.read_text()).values()) if f.exists() else []


def _tuning_lines(root: Path, presets: list[str]) -> list[str]:
    rows = [(p, c) for p in presets for c in tuned_lrs(root, p)]
    if not rows:
        return []
    lines = ["## Learning rates (tuned per arm before the verdict sweeps)", "",
             "The grid is each arm's default lr x 1/3, 1, 3, one EMC search per lr at one size and seed 100 "
             "(`multirun/reproduce/tuning/<preset>/<arm>`); the rule is in the Rules section.", "",
             "| preset | arm | labeling | EMC per lr of the grid | chosen lr | note |", "|---|---|---|---|---|---|"]
    for p, c in rows:
        grid = ", ".join(f"{lr:g}: {e}" for lr, e in c["grid"])
        lines.append(f"| `{p}` | {c['arm']} | {c['labeling']} | {grid} | {c['lr']:g} | "
                     f"{'at the edge of the grid' if c.get('edge') else ''} |")
    return lines + [""]


def time_breakdown(dirs: list[Path]) -> dict:
    """Where a preset's time went, from its attempts' journals (fits.jsonl under dirs): seconds training
    attempts that fitted, failed attempts that ended at the cap, failed attempts that ended with a
    verdict (verified minimum, diverged, degenerate), and of those the minimum checks (check_seconds)."""
    out = {"fits": 0.0, "failures_cap": 0.0, "failures_verdict": 0.0, "checks": 0.0, "attempts": 0}
    for d in dirs:
        for f in (d.rglob(FITS_FILE) if d.exists() else []):
            for a in read_jsonl(f):
                secs = float(a.get("seconds") or 0.0)
                out["attempts"] += 1
                out["checks"] += float(a.get("check_seconds") or 0.0)
                if a.get("status") == "fitted":
                    out["fits"] += secs
                elif a.get("stop_reason") == "cap" or a.get("status") == "unverified":
                    out["failures_cap"] += secs
                else:
                    out["failures_verdict"] += secs
    return out


def decide(runs: dict, sweeps: dict, tiny: bool) -> list[dict]:
    """Each finding whose preset was run or reported: {id, verdict, preset, measured, finding, figure,
    summary (the one-screen table's cells: effect at the top rung, trend, budget-stable jobs, rungs)}.
    A rule that cannot read its sweep must not stop the others (inconclusive, with the error)."""
    rows = []
    for f in FINDINGS:
        sw = sweeps.get(f.preset)
        if f.preset not in runs and sw is None:
            continue
        summary: dict = {}
        if sw is None:
            info = runs.get(f.preset) or {}
            why = info.get("error") or info.get("report_error") or "no report"
            verdict, measured, fig = INCONCL, f"preset did not produce a report: {why}", None
        else:
            try:
                verdict, measured, summary = unpack(f.rule(sw))
            except Exception as e:  # a rule that cannot read the sweep must not stop the others
                verdict, measured = INCONCL, f"rule failed: {type(e).__name__}: {e}"
            fig = sw.figure(f.figure) or sw.figure("emc_vs_params") or sw.figure("log_emc")
        if verdict == INCONCL and not tiny:
            measured += f". Would settle it: {f.settle}"
        if verdict == NO_LADDER:
            measured += ". Would settle it: re-run the preset on the budget ladder (train.caps, docs/convergence.md)"
        rows.append({"id": f.id, "verdict": verdict, "preset": f.preset, "measured": measured, "finding": f,
                     "figure": fig, "trials": _trials(sw) if sw is not None else None, "summary": summary or {}})
    return rows


def _cell(x: str) -> str:
    return str(x).replace("|", "/")


def _stable_cell(summary: dict) -> str:
    st = summary.get("stable")
    if not st:
        return ""
    k, known, n = share(st)
    if not known:
        return ""
    return f"{k}/{n} budget-stable"


def screen_lines(rows: list[dict], base: Path, figures: Optional[dict] = None) -> list[str]:
    """The one-screen table: one short row per finding (id, claim in a few words, the paper's number,
    the measured effect at the top rung ± SE, the trend over the ladder, the verdict with the share of
    budget-stable EMCs beside it, the figure)."""
    lines = ["| id | claim | the paper | measured (top rung, ± SE) | trend over the ladder | verdict | figure |",
             "|---|---|---|---|---|---|---|"]
    for v in rows:
        f, sm = v["finding"], v.get("summary") or {}
        fig = (figures or {}).get(v["id"]) or v.get("figure")
        stable = _stable_cell(sm)
        lines.append(f"| {f.id} | {_cell(f.short or f.claim)} | {_cell(f.number or f.paper or '')} | "
                     f"{_cell(sm.get('effect') or '')} | {_cell(sm.get('trend') or '')} | **{v['verdict']}**"
                     f"{' (' + stable + ')' if stable else ''} | "
                     f"{'[figure](' + _rel(fig, base) + ')' if fig else ''} |")
    return lines


def _verdict_lines(rows: list[dict], base: Path, figures: Optional[dict] = None) -> list[str]:
    lines = ["## Verdicts", "", *screen_lines(rows, base, figures), ""]
    none = [v["id"] for v in rows if v["verdict"] == NO_LADDER]
    dep = [v["id"] for v in rows if v["verdict"] == BUDGET_DEP]
    if none:
        lines += [f"**{', '.join(none)}: no ladder: re-run.** Their sweeps ran one cap per job (emc.json has "
                  "no `emc_by_cap`), so the rule cannot be applied: the numbers at that cap are shown below, "
                  "never called. `make reproduce` re-runs them on the ladder.", ""]
    if dep:
        lines += [f"**{', '.join(dep)}: budget-dependent**: significant at some rungs of the ladder and not at "
                  "others, or shrinking toward zero; the detail below names the rung where it changes.", ""]
    lines += ["## Findings in detail", ""]
    for v in rows:
        f, fig = v["finding"], v["figure"]
        trials = f" ({v['trials']} seeds)" if v.get("trials") else ""
        lines += [f"### {f.id}: {f.short or f.claim} (**{v['verdict']}**)", "",
                  f"* claim ({f.source}): {f.claim}",
                  f"* the paper reports: {f.paper or '(as stated in the claim)'}",
                  f"* preset: `{f.preset}`{trials}; report figure: {_rel(fig, base) if fig else '(none)'}"
                  + (f"; ladder figure: {_rel((figures or {}).get(f.id), base)}" if (figures or {}).get(f.id) else ""),
                  f"* measured: {v['measured']}", ""]
    return lines


def ladder_figures(rows: list[dict], out_dir: Path) -> dict:
    """Per finding with a ladder, a figure of its measured quantity (the paired mean difference, or
    log10 EMC/params) against the cap, one line per part, with 2-SE bands: out_dir/<id>_ladder.png.
    Returns {id: path}."""
    todo = []
    for v in rows:
        sm = v.get("summary") or {}
        parts = [(lbl, s) for lbl, _, s in sm.get("parts") or [] if s.get("ladder") is not None]
        if not parts and sm.get("ladder") is not None:
            parts = [(v["id"], sm)]
        parts = [(lbl, s) for lbl, s in parts if s["ladder"].rungs]
        if parts:
            todo.append((v, parts))
    if not todo:
        return {}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    figs = {}
    for v, parts in todo:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for lbl, s in parts:
            rs = [r for r in s["ladder"].rungs if math.isfinite(r["mean"])]
            x = [r["cap"] for r in rs]
            y = [r["mean"] for r in rs]
            se = [r["se"] if math.isfinite(r["se"]) else 0.0 for r in rs]
            line, = ax.plot(x, y, "o-", label=lbl)
            ax.fill_between(x, [a - Z * b for a, b in zip(y, se)], [a + Z * b for a, b in zip(y, se)],
                            color=line.get_color(), alpha=0.2)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xscale("log", base=2)
        caps = sorted({r["cap"] for _, s in parts for r in s["ladder"].rungs})
        ax.set_xticks(caps)
        ax.set_xticklabels([cap_label(c) for c in caps])
        ax.set_xlabel("step cap (rung of the ladder)")
        ax.set_ylabel("P4: Pearson r" if v["id"] == "P4" else
                      "log10(EMC / params)" if v["id"] == "P1" else "paired mean log10 EMC ratio")
        ax.set_title(f"{v['id']}: {v['verdict']} (bands: 2 SE)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{v['id']}_ladder.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        figs[v["id"]] = str(path)
    return figs


def _commit(repo: Path) -> str:
    """The checkout's short commit (with '+dirty' when it has changes), or '' outside git."""
    try:
        h = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=str(repo), capture_output=True, text=True,
                           timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=str(repo),
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return h + ("+dirty" if h and dirty else "")


def _local(command: str, repo: Path) -> str:
    """A recorded command with the checkout's path taken out (also that of another checkout it ran in)."""
    return re.sub(r"(hydra\.sweep\.dir=)\S*?/(multirun/)", r"\1\2", command.replace(str(repo) + os.sep, ""))


def _min(x: float) -> str:
    return f"{x / 60:.1f}"


def _sweep_lines(presets: list[str], runs: dict, sweeps: dict, repo: Path, root: Path,
                 verdict: frozenset = frozenset()) -> list[str]:
    lines = ["## Sweeps", "",
             "Budget: the lr policy (converge: train until a verdict, the numbers are the safety cap; fixed: the "
             "schedule before 2026-12-02, with extensions), epochs / minimum optimizer steps / extensions of one "
             "fit attempt, and the training pool (max samples; an EMC equal to it is a lower bound). Set: *verdict* presets run by `make reproduce`, "
             "*extra* by `make reproduce-extra`. Where the time goes (CPU minutes of training, from the "
             "attempts' journals, tuning included): attempts that fitted, failed attempts that ended at the "
             "cap, failed attempts that ended with a verdict, and the minimum checks within them. Multirun "
             "time: the preset's multiruns' wall times added up (their reproduce.log); since 2026-12-03 each "
             "runs its jobs one after another on one core, two multiruns at once.", "",
             "| preset | set | jobs | unverified attempts | budget | status | multirun time | fits / failures at cap / "
             "failures with a verdict / checks (CPU min) | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in presets:
        if name not in runs and name not in sweeps:
            continue
        info, sw = runs.get(name, {}), sweeps.get(name)
        jobs = len(sw.rows) if sw else 0
        unv = sum(int(as_float(r.get("unverified")) or 0) for r in sw.rows) if sw else 0
        status = "ok" if sw and info.get("rc", 0) == 0 else (info.get("error") or info.get("report_error")
                                                            or "not run")
        secs = info.get("seconds")
        cmds = info.get('commands') or []
        command = '; '.join(cmds) if len(cmds) <= 3 else f"python scripts/reproduce.py --only {name}"
        command = command or f"python -m flexnet +experiment={name} -m"
        more = f" ({len(cmds)} multiruns, each recorded in its reproduce.log)" if len(cmds) > 3 else ""
        tb = time_breakdown([root / name, root / "tuning" / name])
        lines.append(f"| `{name}` | {'verdict' if name in verdict else 'extra'} | {jobs} | {unv} | "
                     f"{_budgets(sw) if sw else ''} | {str(status).replace('|', '/')} | "
                     f"{'%.0f s' % secs if secs is not None else '(skipped)'} | "
                     f"{_min(tb['fits'])} / {_min(tb['failures_cap'])} / {_min(tb['failures_verdict'])} / "
                     f"{_min(tb['checks'])} | `{_local(command, repo)}`{more} |")
    return lines


def write_reproduction(out: Path, root: Path, runs: dict, sweeps: dict, presets: list[str], tiny: bool,
                       total_s: float, repo: Path, notes: Optional[Path] = None,
                       verdict_presets: tuple = ()) -> list[dict]:
    """Write REPRODUCTION.md to out and root/verdicts.json; the verdicts ({id, verdict, preset, measured}).
    runs: per preset what running it recorded (rc, seconds, commands, error); sweeps: the reported
    sweeps; presets: the order of the sweeps table; repo: stripped from the commands; notes: the
    hand-written reading of the numbers, appended unless tiny."""
    base = out.parent.resolve()
    rows = decide(runs, sweeps, tiny)
    try:
        figures = ladder_figures(rows, root / "figures")
    except Exception as e:  # a figure must not stop the report
        print(f"[reproduce] ladder figures failed: {type(e).__name__}: {e}")
        figures = {}
    commit = _commit(repo)
    lines = ["# Reproduction of the EMC paper and of Zhang et al. (2017) at CPU scale", ""]
    swept = sum(float(r.get("seconds") or 0.0) for r in runs.values())
    v_s = sum(float(r.get("seconds") or 0.0) for n, r in runs.items() if n in verdict_presets)
    full = full_run(root, verdict_presets) if verdict_presets else None
    lines.append(f"Written by `python scripts/reproduce.py{' --tiny' if tiny else ''}` "
                 f"({time.strftime('%Y-%m-%d %H:%M')}{', commit ' + commit if commit else ''}); sweeps under `{_rel(str(root), base)}/`; "
                 f"{total_s / 60:.1f} minutes of wall time for this invocation; the sweeps' multiruns "
                 f"(table below, as recorded in their reproduce.log) took {swept / 60:.1f} minutes one after another"
                 + (f", of which the verdict presets {v_s / 60:.1f} minutes and the extra "
                    f"presets (`make reproduce-extra`) {(swept - v_s) / 60:.1f}" if verdict_presets else "") + "."
                 + (f" The last run of all verdict presets from scratch (`make reproduce`, {full['date']}, "
                    f"`{RUNS_FILE}`) took **{full['wall_s'] / 60:.1f} minutes** of wall time, "
                    f"{full['slots']} multiruns at once." if full else ""))
    if tiny:
        lines += ["", "**--tiny: smoke-test budgets (5 epochs, one or two sweep points). These numbers say "
                      "nothing about the findings.**"]
    lines += ["", "Each sweep is regenerated by its command below and re-aggregated by "
                  "`python -m flexnet.report <sweep dir>` (or `python scripts/reproduce.py --skip-run`).", "",
              *_verdict_lines(rows, base, figures),
              "", "## Rules (fixed before the runs; never tuned to the numbers)", "", RULES_TEXT,
              *_tuning_lines(root, presets),
              *_sweep_lines(presets, runs, sweeps, repo, root, frozenset(verdict_presets)),
              "", "Per-sweep tables (emc.csv, groups.csv, report.json, emc.md) and figures are in "
                  "`<sweep dir>/report/`.", ""]
    if not tiny and notes is not None and notes.exists():   # reading of the numbers, written by hand after a run
        lines += [f"## Notes on this run (hand-written: `{_rel(str(notes), base)}`)", "",
                  notes.read_text().strip(), ""]
    out.write_text("\n".join(lines))
    verdicts = [{**{k: v[k] for k in ("id", "verdict", "preset", "measured")},
                 "effect": v["summary"].get("effect"), "trend": v["summary"].get("trend"),
                 "budget_stable": list(share(v["summary"]["stable"])) if v["summary"].get("stable") else None}
                for v in rows]
    root.mkdir(parents=True, exist_ok=True)
    (root / "verdicts.json").write_text(json.dumps(verdicts, indent=2) + "\n")
    return verdicts
