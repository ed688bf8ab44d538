"""The end of a sweep (flexnet.sweep_end.SweepSummary, a Hydra callback): a real tiny multirun of two jobs,
run in parallel by the default launcher, prints a table of EMC per job and writes the report into the
sweep dir."""
from __future__ import annotations

import json

from conftest import TINY, run_cli


def _sweep(tmp_path, *extra):
    sweep = tmp_path / "sweep"
    over = [o for o in TINY if not o.startswith("scaling.params=")]
    p = run_cli([*over, "scaling.params=300,500", "threads=1", *extra, f"hydra.sweep.dir={sweep}", "-m"],
                cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return sweep, p


def test_sweep_ends_with_emc_table_and_report(tmp_path):
    sweep, p = _sweep(tmp_path)
    out = p.stdout + p.stderr
    assert "2 jobs, at most" in out  # the local launcher (parallel) is the default for -m
    lines = p.stdout.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("EMC per job ("))
    assert str(sweep) in lines[head]
    assert lines[head + 1].startswith("dataset mnist1d, labels semantic, arch mlp, scaling width, optimizer sgd")
    header = lines[head + 2].split()
    assert header[:3] == ["job", "params", "(target)"] and "EMC" in header and "converged" in header
    rows = [l.split() for l in lines[head + 4:head + 6]]
    for row, job in zip(rows, ("0", "1")):
        res = json.loads((sweep / job / "emc.json").read_text())
        assert row[0] == job and row[1] == str(res["params"]["actual"])
        assert str(res["emc"]) in row  # the EMC column, as emc.json has it
    report = sweep / "report"
    for name in ("emc.csv", "emc.md", "report.json", "emc_vs_params.png", "log_emc.png"):
        assert (report / name).stat().st_size > 0, name
    assert f"report: {report}" in p.stdout
    assert "Traceback" not in p.stderr and "Callback" not in p.stderr  # no callback warning


def test_report_false_prints_the_table_only(tmp_path):
    sweep, p = _sweep(tmp_path, "hydra.callbacks.sweep_summary.report=false", "hydra/launcher=basic")
    assert "EMC per job (" in p.stdout
    assert not (sweep / "report").exists()
