"""Issue 33, points 3 and 6: what a new user meets in the first hour. `describe` as a table (and --json),
its unknown-option line and the preset list; overrides on both sides of -m; the debug preset (a real EMC
in under 20 s); the config tree, console lines without timestamps (flexnet.log keeps them) and the resume
line; the progress bar on a pseudo-terminal; the bracket printed in order; search=fixed's per-job line;
the Slurm dry run. Real CLI runs on tiny configs (conftest.TINY, the debug preset)."""
from __future__ import annotations

import json
import logging
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY, run_cli

TIMESTAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]")


# ------------------------------------------------------------------ describe

def _describe(capsys, *args):
    from flexnet.describe import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_describe_prints_a_table_and_json_for_scripts(capsys):
    shape = ["describe.input_shape=[40]", "describe.num_classes=10"]
    code, out, _ = _describe(capsys, "scaling.params=2000", *shape)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["model", "mlp", "(scaling=width)"]
    assert "target 2,000, actual 1,999" in out
    assert re.search(r"^arch\s+mlp\s+conf/arch/mlp.yaml\s+src/flexnet/models/mlp.py$", out, re.M)
    assert not out.lstrip().startswith("{")
    code, out, _ = _describe(capsys, "scaling.params=2000", "--json", *shape)
    d = json.loads(out)
    assert code == 0 and d["params"]["actual"] == 1999 and d["options"]["arch"]["conf"] == "conf/arch/mlp.yaml"


def test_describe_unknown_option_lists_the_allowed_ones(capsys):
    code, out, err = _describe(capsys, "arch=foo")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("flexnet.describe: error: arch='foo': unknown option; allowed: ")
    assert "mlp" in err and "vit" in err and "resnet" in err
    code, _, err = _describe(capsys, "--bogus")
    assert code == 2 and "--bogus: not an override" in err and err.count("\n") == 1


def test_describe_experiments_lists_every_preset_on_one_line(capsys):
    presets = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    code, out, _ = _describe(capsys, "experiments")
    assert code == 0
    rows = out.splitlines()[1:]
    assert [r.split()[0] for r in rows] == presets
    for r in rows:
        assert len(r.split(None, 1)) == 2 and len(r) <= 120, r  # a name and its line
        assert "@package" not in r and "Experiment preset" not in r
    assert re.search(r"^  debug\s+debug: a real EMC end to end in seconds", out, re.M)
    code, out, _ = _describe(capsys, "experiments", "--json")
    assert code == 0 and sorted(json.loads(out)) == presets


# ------------------------------------------------------------------ runs

@pytest.mark.slow  # ~15 s: the acceptance of issue 33 (under 20 s on the project's 2-core CPU)
def test_debug_preset_measures_an_emc_in_under_20_s_and_resumes(tmp_path):
    out = tmp_path / "run"
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    p = run_cli(["experiment=debug", f"hydra.run.dir={out}"], cwd=tmp_path)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    # issue 33: under 20 s on this 2-core machine; a machine busy with more than one job per core (the
    # tests run beside measurements) gets twice that
    limit = 20 if load <= (os.cpu_count() or 1) else 40
    assert took < limit, f"experiment=debug took {took:.1f} s (load average {load:.1f} at the start)"
    r = json.loads((out / "emc.json").read_text())
    assert r["emc"] > 0 and r["bracket"]["failed"] is not None  # a real bracket, not a lower bound
    assert [c["cap_steps"] for c in r["emc_by_cap"]] == [100, 200, 400]
    # the config tree starts the run, on the console without timestamps; flexnet.log keeps them
    lines = p.stdout.splitlines()
    assert lines[0].startswith("config (")
    assert any(l.strip() == "train: policy=converge caps=[100, 200, 400]" for l in lines[:15])
    assert any(l.strip().startswith("dataset: mnist1d  num_samples=1200") for l in lines[:15])
    assert not any(TIMESTAMP.match(l) for l in lines), lines[:3]
    assert any(l.startswith("n=16 ") and "bracket [0, -]" in l for l in lines)
    log = (out / "flexnet.log").read_text().splitlines()
    assert TIMESTAMP.match(log[0]) and log[0].endswith("config (each group's option and what differs from its "
                                                      "file; all of it: --cfg job):")
    assert any("train: policy=converge caps=[100, 200, 400]" in l for l in log)
    # again on the same directory: every attempt replayed, the console says how many; no tree
    p2 = run_cli(["experiment=debug", f"hydra.run.dir={out}", "print_config=false"], cwd=tmp_path)
    assert p2.returncode == 0, p2.stderr
    assert f"resuming: {r['fits']} finished attempts found in {out / 'fits.jsonl'}" in p2.stdout
    assert "config (" not in p2.stdout
    assert json.loads((out / "emc.json").read_text())["emc"] == r["emc"]


@pytest.mark.slow  # ~12 s
def test_overrides_on_both_sides_of_m_and_the_fixed_search_job_line(tmp_path):
    """`python -m flexnet a=1 -m b=2` (argparse refused it once); a search=fixed job's line says its train
    and test error, not `EMC = n`."""
    sweep = tmp_path / "s"
    p = run_cli(["experiment=debug", "search=fixed", "search.n=40", "-m", f"hydra.sweep.dir={sweep}",
                 "scaling.params=300", "hydra.launcher.max_parallel=1", "hydra.callbacks.sweep_summary.report=false"],
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    r = json.loads((sweep / "0" / "emc.json").read_text())
    assert r["config"]["search"]["n"] == 40 and r["config"]["scaling"]["params"] == 300
    line = next(l for l in p.stdout.splitlines() if l.startswith("[1/1] #0"))
    assert f"n = 40: train error {1 - r['train_accuracy']:.4f}, test error {1 - r['test_accuracy']:.4f}" in line
    assert "EMC =" not in line and not TIMESTAMP.match(line)


def _run_on_a_pty(args: list, cwd: Path, timeout: float = 120) -> str:
    """`python -m flexnet args` with stdout and stderr on a pseudo-terminal of 100 columns."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "flexnet", *args], stdin=slave, stdout=slave, stderr=slave,
                         cwd=str(cwd), env=env, close_fds=True)
    os.close(slave)
    buf, t0 = b"", time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                buf += chunk
            elif p.poll() is not None:
                break
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        os.close(master)
    assert p.returncode == 0, buf.decode(errors="replace")[-2000:]
    return buf.decode(errors="replace")


@pytest.mark.slow  # ~8 s
def test_the_progress_bar_appears_on_a_terminal(tmp_path):
    text = _run_on_a_pty([*TINY, "train.caps=[300]", "search.start=64", f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    bars = re.findall(r"n=64 attempt 0:\s+\d+%\|[^\r\n]*\| \d+/\d+ \[[^\r\n]*ep/s, [^\r\n]*loss=", text)
    assert bars, text[:2000]  # tqdm's bar: percentage, bar, epochs done / cap, rate, loss, accuracy, lr
    # the bar is erased at the attempt's end, then its end line, no timestamp
    assert re.search(r"(^|\r)n=64\s+attempt 0: (fitted|unverified)", text, re.M), text[:2000]


# ------------------------------------------------------------------ pieces

def test_the_bracket_is_printed_in_order_after_a_rescued_size(caplog):
    """After a retry rescues the failed size (585), the search grows above it with its bracket's failed
    size not yet known: printed open, never `[614, 585]`."""
    from flexnet.pipeline import _progress
    from flexnet.search import Attempt

    rec = {"train_acc": 1.0, "epochs": 10, "seconds": 0.1}
    with caplog.at_level(logging.INFO, logger="flexnet"):
        _progress(Attempt(644, 0, True, 1.0, "fitted", rec), 614, 585)
        _progress(Attempt(600, 0, True, 1.0, "fitted", rec), 585, 585)
        _progress(Attempt(600, 0, True, 1.0, "fitted", rec), 585, 644)
    got = [m.split("| ")[1] for m in caplog.messages]
    assert got == ["bracket [614, -]", "bracket [585, -]", "bracket [585, 644]"]


def test_console_format_keeps_warnings_marked():
    from flexnet.console import ConsoleFormatter

    f = ConsoleFormatter()
    rec = lambda lvl: logging.LogRecord("flexnet", lvl, __file__, 1, "hello %s", ("x",), None)  # noqa: E731
    assert f.format(rec(logging.INFO)) == "hello x"
    assert f.format(rec(logging.WARNING)) == "WARNING: hello x"


def test_config_tree_names_each_group_and_what_differs():
    from flexnet.config import compose
    from flexnet.console import config_tree

    tree = config_tree(compose(["experiment=debug", "optimizer=adam", "optimizer.lr=0.01"]))
    lines = tree.splitlines()
    assert lines[0].startswith("config (") and len(lines) <= 16
    assert "  dataset: mnist1d  num_samples=1200" in lines
    assert "  optimizer: adam  lr=0.01" in lines
    assert "  arch: mlp" in lines and "  scaling: width  params=300" in lines
    assert "  convergence: patience=5 patience_steps=20" in lines
    assert "print_config" not in compose([])  # a console setting: not in the config a job runs


@pytest.mark.slow  # ~6 s
def test_slurm_dry_run_prints_the_jobs_and_the_sbatch_script_without_a_cluster(tmp_path):
    env = dict(PATH=str(tmp_path))  # no sbatch, srun or sacct on this PATH
    sweep = tmp_path / "s"
    p = run_cli(["-m", "hydra/launcher=slurm", "hydra.launcher.dry_run=true", "scaling.params=1e4,1e5",
                 "labeling=random_labels", "hydra.launcher.partition=gpu", f"hydra.sweep.dir={sweep}"],
                cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "2 Slurm job(s) would be submitted as one array; nothing was submitted" in out
    assert f"#0 scaling.params=10000.0  ->  {sweep / '0'}" in out and f"#1 scaling.params=100000.0  ->  {sweep / '1'}" in out
    for line in ("#!/bin/bash", "#SBATCH --array=0-1%2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --job-name=flexnet", "export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4"):
        assert line in out.splitlines(), line
    assert "srun --unbuffered" in out and "EMC per job" not in out
    assert not (sweep / "multirun.yaml").exists() and not list(sweep.glob("*/"))


@pytest.mark.slow  # ~5 s
def test_a_launcher_value_of_the_wrong_type_is_one_line_naming_it(tmp_path):
    p = run_cli(["-m", "hydra/launcher=slurm", "hydra.launcher.dry_run=maybe", "scaling.params=1e4",
                 f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path, env=dict(PATH=str(tmp_path)))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == "flexnet: error: hydra.launcher.dry_run=maybe: Value 'maybe' is not a valid bool (type str)"
