"""Analysis of finished sweeps: from the jobs' result files to tables, figures and the reproduction's verdicts.

Data flows one way: `collect` reads the jobs of sweep directories (emc.json, curve.jsonl) into `Job`s;
`labels` names the series and the settings they share; `stats` and `double_descent` compute the
aggregates (mean and SE over trials, power laws, the interpolation threshold); `build` assembles
them into a `Report` (computing only) and `write_report` writes it: `tables` (emc.csv, groups.csv,
report.json, emc.md) and `figures` / `figures_fixed` (PNG files, drawn with `plotting`'s helpers);
`wandb_upload` sends a report to W&B. The reproduction reads reported sweeps back (`reported`),
decides each finding by a fixed rule (`verdicts`) and writes REPRODUCTION.md (`reproduction`).
`cli` is `python -m flexnet.report`. This package holds no logic of its own.
"""
