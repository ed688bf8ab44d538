"""README's cited numbers cannot drift: they are the committed default runs' (multirun/default/), and
those runs are what the current code and config produce."""
from __future__ import annotations

import importlib.util
import json
import re
import sys

import pytest

from conftest import ROOT, compose

spec = importlib.util.spec_from_file_location("default_runs", ROOT / "scripts" / "default_runs.py")
default_runs = importlib.util.module_from_spec(spec)
sys.modules["default_runs"] = default_runs
spec.loader.exec_module(default_runs)

README = (ROOT / "README.md").read_text()


def test_readme_is_one_screen():
    assert len(README.splitlines()) <= 150


def test_readme_blocks_are_the_committed_runs():
    """Each marked block is what scripts/default_runs.py renders from the committed files: the table
    (EMC at each cap, budget-stable, attempts, wall time) and the printed summary."""
    blocks = re.findall(r"<!-- default-run:([^>]*?) -->\n(.*?)\n<!-- /default-run -->", README, flags=re.S)
    assert {b[0] for b in blocks} == {"table", "output semantic"}
    for what, body in blocks:
        kind, _, arg = what.partition(" ")
        assert body == (default_runs.table() if kind == "table" else default_runs.output(arg)), what


@pytest.mark.parametrize("name", list(default_runs.RUNS))
def test_committed_default_runs_are_from_the_current_code_and_config(name):
    """A change to the code that decides an attempt (its code hash) or to the default config makes the
    committed run stale: re-run `python scripts/default_runs.py --run` and commit it."""
    from flexnet.provenance import code_hash
    from flexnet.records import result_hash

    r = default_runs.result(name)
    assert r["provenance"]["code_hash"] == code_hash(), "stale: made by other code"
    assert r["provenance"]["git_dirty"] is False, "made from a checkout with uncommitted changes"
    assert result_hash(r["config"]) == result_hash(compose(default_runs.RUNS[name])), "stale: another config"
    # the summary printed is the emc.json beside it
    out = (default_runs.DIR / name / "stdout.txt").read_text()
    assert f"EMC({r['emc_cap_steps'] // 1000}k steps) = {r['emc']} " in out
    lines = (default_runs.DIR / name / "fits.jsonl").read_text().splitlines()
    assert len({(json.loads(l)["n"], json.loads(l)["attempt"]) for l in lines}) == r["fits"]
