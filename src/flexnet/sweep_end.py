"""The end of a sweep (`-m`): a table of EMC per job on the terminal and the report in the sweep dir.

`SweepSummary` is a Hydra callback (conf/config.yaml, `hydra.callbacks.sweep_summary`): when every
job of a multirun has returned, it reads the jobs' `emc.json` files, prints one row per job (the
keys that vary across the sweep, the parameter count, the solved shape where it varies, EMC,
bracket, whether it converged, test accuracy, attempts, time) and writes `flexnet.report`'s tables
and figures into `<sweep dir>/report/`. `hydra.callbacks.sweep_summary.report=false` prints the
table only; `~hydra.callbacks.sweep_summary` switches both off. A Slurm sweep submitted with
`hydra.launcher.wait=false` has no results yet: the callback says how to collect them later.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

try:  # Hydra is a dependency; the table itself (summary_table) needs none of it
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[misc,assignment]

# shape keys worth a column (sizes), in this order, shortened
SHAPE_KEYS = (("embed_dim", "embed"), ("depth", "depth"), ("num_heads", "heads"), ("mlp_dim", "mlp"),
              ("width", "width"), ("layers", "layers"), ("filters", "filters"), ("channels", "channels"),
              ("stem_width", "stem"), ("fc", "fc"), ("width_multiplier", "wm"), ("depth_multiplier", "dm"),
              ("n_points", "points"))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "x".join(str(x) for x in v)
    return str(v)


def _shape_text(shape: dict, keys: list[str]) -> str:
    names = dict(SHAPE_KEYS)
    return " ".join(f"{names[k]}={_fmt(shape.get(k))}" for k in keys)


def _converged(res: dict) -> str:
    """yes / no (how the attempts at the failed size ended, e.g. 'no: 4 cap') / - (no failed size)."""
    c = res.get("converged")
    if c is True:
        return "yes"
    if c is None:
        return "-"
    stops = (res.get("convergence") or {}).get("failed_size_stops") or {}
    return "no" + (": " + ", ".join(f"{v} {k}" for k, v in sorted(stops.items())) if stops else "")


def summary_rows(sweep_dir: Path) -> tuple[list[str], list[list[str]], list[str], str]:
    """(header, rows, notes, the settings every job shares) of the sweep's jobs, in job order."""
    from .analysis.collect import collect
    from .analysis.labels import differing_keys, fixed_settings, varying_keys

    col = collect([sweep_dir])
    jobs = sorted(col.jobs, key=lambda j: (_job_num(j.path, sweep_dir), j.trial or 0))
    swept = differing_keys(jobs, [k for k in varying_keys(jobs) if k not in ("scaling.params",)])
    shapes = [j.result.get("shape") or {} for j in jobs]
    shape_keys = [k for k, _ in SHAPE_KEYS
                  if any(k in s for s in shapes) and len({json.dumps(s.get(k)) for s in shapes}) > 1]
    if not shape_keys:  # one job, or a sweep whose shapes do not vary: show the sizes anyway
        shape_keys = [k for k, _ in SHAPE_KEYS if any(k in s for s in shapes)][:4]
    header = ["job", *[k[:-5] if k.endswith(".name") else k for k in swept], "params (target)", "shape",
              "EMC", "failed at", "converged", "test acc", "attempts", "seconds"]
    rows = []
    for j, shape in zip(jobs, shapes):
        res = j.result
        name = str(j.path.relative_to(sweep_dir)) if j.path != sweep_dir else "."
        if j.trial:
            name += f"/t{j.trial}"
        target = (res.get("params") or {}).get("target")
        params = f"{int(j.params)}" + (f" ({_fmt(target)})" if target is not None else "")
        emc = f">={j.emc}" if res.get("lower_bound") else str(j.emc)
        failed = (res.get("bracket") or {}).get("failed")
        acc = res.get("test_accuracy")
        rows.append([name, *[_fmt(j.config.get(k)) for k in swept], params, _shape_text(shape, shape_keys), emc,
                     "-" if failed is None else str(failed), _converged(res),
                     "-" if acc is None else f"{acc:.3f}", str(res.get("fits", "")),
                     f"{float(res.get('seconds') or 0):.0f}"])
    notes = [f"unfinished (no emc.json): {p}" for p in col.unfinished]
    notes += [f"unreadable: {p}: {e}" for p, e in col.broken]
    fixed = fixed_settings(jobs) if jobs else ""
    caps = {json.dumps(((j.result.get("convergence") or {}).get("cap"))) for j in jobs}
    cap = (jobs[0].result.get("convergence") or {}).get("cap") if len(caps) == 1 and jobs else None
    if cap and cap.get("caps"):  # the ladder (train.caps): its rungs, in steps
        fixed += f"{', ' if fixed else ''}caps {', '.join(str(c) for c in cap['caps'])} steps"
    elif cap:
        fixed += f"{', ' if fixed else ''}cap {cap.get('epochs')} epochs / {cap.get('min_steps')} steps"
    return header, rows, notes, fixed


def _job_num(path: Path, root: Path) -> tuple:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def summary_table(sweep_dir: Path) -> str:
    """The table as aligned text (empty when the sweep has no results)."""
    header, rows, notes, fixed = summary_rows(Path(sweep_dir))
    if not rows:
        return "\n".join(notes)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {"EMC", "failed at", "test acc", "attempts", "seconds", "params (target)"}
    fmt = lambda r: "  ".join(c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(r, widths, header))
    lines = [fmt(header).rstrip(), "  ".join("-" * w for w in widths), *[fmt(r).rstrip() for r in rows]]
    return "\n".join(([fixed] if fixed else []) + lines + notes)


class SweepSummary(Callback):  # type: ignore[misc,valid-type]
    """Hydra callback (conf/config.yaml, hydra.callbacks): the EMC table and the report at the end of -m."""

    def __init__(self, report: bool = True, bootstrap: int = 2000) -> None:
        self.report = bool(report)
        self.bootstrap = int(bootstrap)
        self.t0: Optional[float] = None

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.t0 = time.monotonic()

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        launcher = config.hydra.get("launcher") or {}
        if launcher.get("dry_run", False):  # a Slurm preview: nothing ran
            return
        if launcher.get("wait", True) is False:  # Slurm, submitted without waiting: nothing to show yet
            print(f"flexnet: collect the results when the jobs are done: python -m flexnet.report {sweep_dir}",
                  flush=True)
            return
        try:
            text = summary_table(sweep_dir)
        except Exception as e:  # the jobs' results are on disk whatever happens here
            print(f"flexnet: no summary table ({type(e).__name__}: {e}); python -m flexnet.report {sweep_dir}",
                  file=sys.stderr, flush=True)
            return
        if not text.strip():
            return
        took = "" if self.t0 is None else f", {time.monotonic() - self.t0:.0f} s"
        print(f"\nEMC per job ({sweep_dir}{took}):\n{text}", flush=True)
        if self.report:
            write_report(sweep_dir, self.bootstrap)


def write_report(sweep_dir: Path, bootstrap: int = 2000) -> Optional[Path]:
    """flexnet.report's tables and figures into <sweep dir>/report/; one line saying where."""
    try:
        import logging
        import warnings

        from .analysis import build

        logging.getLogger("matplotlib").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = build.write_report(build.build_report([sweep_dir], n_boot=bootstrap))
    except Exception as e:
        print(f"flexnet: report not written ({type(e).__name__}: {e}); python -m flexnet.report {sweep_dir}",
              file=sys.stderr, flush=True)
        return None
    figures = [Path(p).name for p in rep.files if str(p).endswith(".png")]
    print(f"report: {rep.out} ({len(rep.files)} files: tables, {', '.join(figures) or 'no figures'})", flush=True)
    return rep.out
