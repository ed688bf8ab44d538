"""Shared fixtures: a hermetic data cache, tiny fast configs, a CLI runner."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flexnet.config import compose  # noqa: F401  (the real config as `python -m flexnet` runs it, a dict)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Overrides that make a whole EMC search take seconds on a CPU: a two-rung ladder of tiny caps (the
# default path); train.epochs / min_steps set the cap of tests that turn the ladder off (train.caps=null).
TINY = [
    "dataset.num_samples=1200",
    "train.caps=[30,60]",
    "train.epochs=30",
    "train.min_steps=60",
    "train.max_extensions=0",
    "search.start=16",
    "scaling.params=300",
    "convergence.patience=5",
    "convergence.patience_steps=20",
]


@pytest.fixture(autouse=True, scope="session")
def _hermetic_cache(tmp_path_factory):
    os.environ.setdefault("FLEXNET_CACHE", str(tmp_path_factory.mktemp("flexnet-cache")))
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    # the tests train small models: one intra-op thread is as fast and avoids oversubscription
    import torch

    torch.set_num_threads(1)
    yield


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    src = str(ROOT / "src")
    e["PYTHONPATH"] = src + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("OMP_NUM_THREADS", "1")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "flexnet", *args], cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout, env=e)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
