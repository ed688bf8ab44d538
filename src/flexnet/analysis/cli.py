"""`python -m flexnet.report DIR [DIR...] [--by KEY ...] [--wandb]`: tables and figures from sweeps.

Reads every `emc.json` under the given directories (any launcher, any mix of jobs) and
writes into `<first DIR>/report/` (or `--out`):

* `emc.csv` / `emc.md`: one row per job (the swept keys, parameters, EMC, bracket, fits,
  unverified attempts, accuracies, bits per parameter for random labels), and per group a
  power law EMC = a * params^b (least squares on log-log, bootstrap 95% interval for b);
* `emc_vs_params.png` (log-log, diagonal EMC = #params, Zhang et al.'s Theorem-1 line
  n = (p - d) / 2, one series per group, mean and standard error over seeds);
* `log_emc.png` (mean log10 EMC over model sizes per group, standard error over trials);
* `generalization.png` + `generalization.csv` (Pearson r) when semantic and random labels
  are both present;
* `double_descent.png` for `search=fixed` jobs (test and train error against parameter count at n,
  mean and SE band over seeds, the interpolation threshold marked, and the parameter count at which
  the EMC equals n, from `--emc-dir` (an EMC sweep) or `--emc-params`, as a vertical line);
* `double_descent_epochs.png` for jobs trained past the fit (`search.stop_at_fit=false`): test and
  train error against epoch at the interpolation threshold's size (and the largest size);
* `learning_curves.png`, `time_to_fit.png`, `corruption_test_error.png` from `curve.jsonl`
  of `search=fixed` jobs (Zhang et al. Fig. 1a-c).

Unfinished jobs (a job directory with `fits.jsonl` or `.hydra` but no `emc.json`) and
unreadable `emc.json` files are listed, never fatal. Groups: one per value of the `--by`
keys (default: every config key that varies across jobs, except `scaling.params` and seeds).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Optional

from .build import build_report, write_report
from .collect import collect
from .double_descent import INTERPOLATION_TOL
from .labels import varying_keys
from .wandb_upload import upload_wandb


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flexnet.report",
                                 description="Aggregate flexnet sweep directories into tables and figures.")
    ap.add_argument("dirs", nargs="+", type=Path, help="sweep directories (searched recursively for emc.json)")
    ap.add_argument("--by", nargs="+", action="extend", default=None, metavar="KEY",
                    help="config keys that define the series (e.g. labeling.name); default: every key that varies "
                         "across jobs except scaling.params and seeds. Short form 'labeling' = 'labeling.name'.")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: DIR/report)")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the power-law interval")
    ap.add_argument("--converged-only", action="store_true",
                    help="keep only EMCs certified converged (emc.json 'converged': true; docs/convergence.md)")
    ap.add_argument("--interpolation-tol", type=float, default=INTERPOLATION_TOL, metavar="TOL",
                    help="double descent: the interpolation threshold is the smallest size whose mean final train "
                         f"error is <= TOL (default {INTERPOLATION_TOL})")
    ap.add_argument("--emc-dir", nargs="+", action="extend", type=Path, default=None, metavar="DIR",
                    help="double descent: EMC search results (an EMC sweep over scaling.params on the same data and "
                         "procedure); the figure marks the parameter count where their mean EMC equals the fixed n")
    ap.add_argument("--emc-params", type=float, default=None, metavar="P",
                    help="double descent: draw the EMC line at P parameters (instead of --emc-dir)")
    ap.add_argument("--wandb", action="store_true", help="also upload the EMC-curve table and plots to W&B")
    ap.add_argument("--wandb-project", default=None)
    ap.add_argument("--wandb-entity", default=None)
    ap.add_argument("--wandb-group", default=None, help="default: the jobs' logger.group, else the sweep dir name")
    ap.add_argument("--wandb-mode", default="auto", choices=["auto", "online", "offline", "disabled"])
    args = ap.parse_args(argv)
    col_preview = collect(args.dirs)
    for p, e in col_preview.broken:  # one line per job left out, naming it; the others are reported
        print(f"flexnet.report: warning: skipped {p}: {e}", file=sys.stderr)
    if not col_preview.jobs:
        print("flexnet.report: no readable emc.json under " + ", ".join(map(str, args.dirs)), file=sys.stderr)
        for p in col_preview.unfinished:
            print(f"  unfinished: {p}", file=sys.stderr)
        return 1
    by = None
    if args.by is not None:
        keys = {k for j in col_preview.jobs for k in j.config}
        by = []
        for k in args.by:
            if k not in keys and f"{k}.name" in keys:
                k = f"{k}.name"
            if k not in keys:
                print(f"flexnet.report: --by {k}: no such config key in the jobs; e.g. "
                      + ", ".join(sorted(varying_keys(col_preview.jobs)) or sorted(keys)[:8]), file=sys.stderr)
                return 2
            by.append(k)
    rep = build_report(args.dirs, by=by, out=args.out, n_boot=args.bootstrap, converged_only=args.converged_only,
                       interpolation_tol=args.interpolation_tol, emc_dirs=args.emc_dir, emc_params=args.emc_params)
    write_report(rep)
    print(f"{len(rep.rows)} job(s), {len(rep.groups)} group(s) -> {rep.out}")
    for p in rep.files:  # every file written: tables, report.json, emc.md, figures
        print(f"  {p}")
    gen = rep.generalization
    if gen.get("points") and math.isfinite(gen["r"]):
        print(f"  Pearson r (EMC increase vs generalization gap) = {gen['r']:.3f} over {len(gen['points'])} pairs")
    for p in rep.collection.unfinished:
        print(f"  unfinished (no emc.json): {p}")
    if args.wandb:
        upload_wandb(rep, args.dirs, args.wandb_project, args.wandb_entity, args.wandb_group, args.wandb_mode)
    return 0
