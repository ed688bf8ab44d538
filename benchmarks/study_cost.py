"""Section 7 of `make bench` (benchmarks/run.py): the whole study's cost, read back from the committed
`make reproduce` sweeps under multirun/reproduce/ (nothing is trained)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_reproduce(lines, root: Path = ROOT / "multirun" / "reproduce"):
    """Section 7: the wall time of the last run of every verdict preset from scratch (runs.jsonl), and
    per preset its multiruns' recorded minutes (reproduce.log) and CPU time by outcome (fits.jsonl)."""
    import importlib.util

    from flexnet.analysis.reproduction import RUNS_FILE, full_run, logged_runs, time_breakdown

    spec = importlib.util.spec_from_file_location("reproduce_script", ROOT / "scripts" / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # dataclasses look their module up while the class is created
    spec.loader.exec_module(mod)
    verdict = [q.name for q in mod.PRESETS if q.verdict]
    full = full_run(root, tuple(verdict))
    spans = (full or {}).get("spans") or {}
    later: dict = {}   # presets run again after the full run (e.g. one preset changed): their latest run
    if full:
        from flexnet.records import read_jsonl

        runs = list(read_jsonl(root / RUNS_FILE))
        for r in runs[runs.index(full) + 1:]:
            later.update({n: r for n in r.get("presets") or []})
    lines += ["## 7. Whole-study cost: `make reproduce` (the verdict presets)", "",
              "Read back from the committed sweeps under `multirun/reproduce/`: the wall time of the last run "
              f"of every verdict preset from scratch (`{RUNS_FILE}`: its multiruns shared the cores, longest "
              "first, each running its jobs one after another on one core), and per preset the minutes its "
              "multiruns took (their `reproduce.log`; tuning included), when it ran within that run, and "
              "the CPU minutes of training by outcome (the attempts' journals).", "",
              "| preset | multiruns, min | ran from - to (min) | fits | failures at the cap | failures with a verdict "
              "| of which checks |", "|---|---|---|---|---|---|---|"]
    tot = {"wall": 0.0, "fits": 0.0, "failures_cap": 0.0, "failures_verdict": 0.0, "checks": 0.0}
    for name in verdict:
        logged = logged_runs(root / name, root / "tuning" / name) or {}
        tb = time_breakdown([root / name, root / "tuning" / name])
        wall = float(logged.get("seconds") or 0.0)
        tot["wall"] += wall
        for k in ("fits", "failures_cap", "failures_verdict", "checks"):
            tot[k] += tb[k]
        span = spans.get(name)
        when = f"{span[0] / 60:.0f} - {span[1] / 60:.0f}" if span else "-"
        if name in later:
            when += f" (re-run alone {later[name]['date']}: {later[name]['wall_s'] / 60:.1f} min)"
        lines.append(f"| `{name}` | {wall / 60:.1f} | {when} | "
                     f"{tb['fits'] / 60:.1f} | {tb['failures_cap'] / 60:.1f} | {tb['failures_verdict'] / 60:.1f} | "
                     f"{tb['checks'] / 60:.1f} |")
    lines.append(f"| **total** | **{tot['wall'] / 60:.1f}** | | {tot['fits'] / 60:.1f} | {tot['failures_cap'] / 60:.1f} | "
                 f"{tot['failures_verdict'] / 60:.1f} | {tot['checks'] / 60:.1f} |")
    if full:
        tot["run"] = full["wall_s"]
        measured = (f"measured: **{full['wall_s'] / 60:.0f} minutes** (the run that ended {full['date']}, "
                    f"{full['slots']} multiruns at once on {full.get('cores') or '?'} cores)")
    else:
        measured = ("not measured: no run of all verdict presets from scratch is recorded; the multiruns' "
                    f"minutes one after another come to {tot['wall'] / 60:.0f}")
    lines += ["", f"Target (issue: the reproduction re-run): `make reproduce` at most 120 minutes on this 2-core "
                  f"machine; {measured}.", ""]
    return tot
