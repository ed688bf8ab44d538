"""`python -m flexnet.report --wandb`: the report's EMC-curve table, line plots and figures logged to a
`report` run in the sweep's W&B group. Never needed for the report's files, never fatal.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..loggers import sweep_group_name, wandb_mode

if TYPE_CHECKING:
    from .build import Report


def report_group(rep: Report, dirs: list[Path]) -> str:
    """The sweep's W&B group: logger.group of the jobs if they agree, else the sweep directory's name."""
    jobs = rep.collection.jobs
    cfg_groups = {(j.result.get("config") or {}).get("logger", {}).get("group") for j in jobs}
    if len(cfg_groups) == 1 and None not in cfg_groups:
        return str(cfg_groups.pop())
    sweep = {sweep_group_name((j.result.get("job") or {}).get("sweep_dir")) for j in jobs}
    sweep.discard(None)
    if len(sweep) == 1:
        return sweep.pop()
    return sweep_group_name(str(Path(dirs[0]).resolve())) or "flexnet"


def upload_wandb(rep: Report, dirs: list[Path], project: Optional[str] = None, entity: Optional[str] = None,
                 group: Optional[str] = None, mode: str = "auto", init_timeout: float = 30.0,
                 finish_timeout: float = 60.0) -> Optional[Path]:
    """Log the aggregated EMC-curve table, line plots and figures to a `report` run in the sweep's group.
    Returns the local run directory, or None if W&B could not be used (never raises)."""
    try:
        import wandb
    except ImportError:
        print("flexnet.report: wandb is not installed; skipping upload", file=sys.stderr)
        return None
    lcfg = next(((j.result.get("config") or {}).get("logger") or {} for j in rep.collection.jobs
                 if ((j.result.get("config") or {}).get("logger") or {}).get("name") == "wandb"), {})
    project = project or lcfg.get("project") or "flexnet"
    entity = entity or lcfg.get("entity")
    group = group or report_group(rep, dirs)
    m = wandb_mode(mode if mode != "auto" else lcfg.get("mode", "auto"))
    kw = dict(project=project, entity=entity, group=group, job_type="report", name=f"report-{group}",
              dir=str(rep.out), config={"by": rep.by, "dirs": [str(d) for d in dirs]}, reinit="finish_previous")

    def settings(mode: str):
        return wandb.Settings(mode=mode, init_timeout=float(init_timeout), finish_timeout=float(finish_timeout),
                              silent=True, x_disable_stats=True)

    try:
        try:
            run = wandb.init(settings=settings(m), **kw)
        except Exception:
            if m != "online":
                raise
            m = "offline"
            run = wandb.init(settings=settings(m), **kw)
        rows = [[r.get(k) for k in ("group", "params_target", "params_actual", "emc", "test_accuracy", "seed")]
                for r in rep.rows]
        jobs_table = wandb.Table(columns=["group", "params_target", "params_actual", "emc", "test_accuracy", "seed"],
                                 data=rows)
        curve_rows = [[name, s["params"], s["emc"], s["emc_se"] if math.isfinite(s["emc_se"]) else None,
                       s["test_error"] if math.isfinite(s["test_error"]) else None]
                      for name, g in rep.groups.items() for s in g["sizes"]]
        curve = wandb.Table(columns=["group", "params", "emc_mean", "emc_se", "test_error"], data=curve_rows)
        log = {"emc_jobs": jobs_table, "emc_curve": curve,
               "emc_vs_params_line": wandb.plot.line(curve, "params", "emc_mean", stroke="group",
                                                     title="EMC against parameter count")}
        if any(math.isfinite(s["test_error"]) for g in rep.groups.values() for s in g["sizes"]):
            log["test_error_line"] = wandb.plot.line(curve, "params", "test_error", stroke="group",
                                                     title="Test error against parameter count")
        for p in rep.figures:
            log[f"figures/{p.stem}"] = wandb.Image(str(p))
        run.log(log)
        for name, g in rep.groups.items():
            pl = g["power_law"]
            if pl:
                run.summary[f"power_law/{name}/b"] = pl.b
                run.summary[f"power_law/{name}/a"] = pl.a
        if math.isfinite(rep.generalization.get("r", float("nan"))):
            run.summary["generalization/pearson_r"] = rep.generalization["r"]
        run_dir = Path(run.dir).parent
        run.finish()
        if m == "offline":
            print(f"W&B offline report run saved; upload with: wandb sync {run_dir}")
        return run_dir
    except Exception as e:  # the report's files are written already; W&B is optional
        print(f"flexnet.report: W&B upload skipped: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return None
