"""scripts/probe_minimum.py: the evidence behind docs/convergence.md's "no finite minimum" section.

A real attempt that ends at a tiny cap without fitting is continued by full-batch L-BFGS: the loss
must only go down along the recorded trajectory, and the record must say how it ended."""
from __future__ import annotations

import importlib.util
import json
import sys

from conftest import ROOT

spec = importlib.util.spec_from_file_location("probe_minimum", ROOT / "scripts" / "probe_minimum.py")
probe_minimum = importlib.util.module_from_spec(spec)
sys.modules["probe_minimum"] = probe_minimum
spec.loader.exec_module(probe_minimum)


def test_probe_continues_a_capped_attempt_downhill(tmp_path):
    out = tmp_path / "probes.jsonl"
    rc = probe_minimum.main(["--n", "160", "--evals", "120", "--every", "40", "--out", str(out),
                             "labeling=random_labels", "scaling.params=300", "train.caps=null", "train.epochs=1",
                             "train.min_steps=30", "dataset.num_samples=400"])
    assert rc == 0
    rec = json.loads(out.read_text().splitlines()[-1])
    assert rec["n"] == 160 and rec["sgd"]["stop_reason"] == "cap" and rec["sgd"]["steps"] >= 30
    traj = rec["lbfgs"]
    assert traj[0]["evals"] == 0 and len(traj) >= 2
    assert traj[0]["acc"] == rec["sgd"]["train_acc"]  # starts where the procedure stopped
    losses = [t["loss"] for t in traj]
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:])), losses  # Wolfe line search: downhill only
    assert losses[-1] < losses[0]
    assert rec["end"]["fitted"] == (traj[-1]["acc"] >= 1.0)
    assert rec["end"]["init_weight_norm"] > 0 and rec["end"]["max_eig"] >= rec["end"]["min_eig"]
