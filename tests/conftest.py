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


# hypothesis (tests/test_properties.py): no example database in the tree (.hypothesis/); a failure prints
# the example and a blob that reproduces it (@reproduce_failure). `make mutate` sets
# FLEXNET_HYPOTHESIS_PROFILE=mutate: the same examples for every mutant (derandomized), so its score repeats,
# and fewer of them (a mutant runs these tests hundreds of times).
try:
    from hypothesis import settings as _hsettings

    _hsettings.register_profile("flexnet", database=None, print_blob=True, max_examples=80)
    _hsettings.register_profile("mutate", database=None, print_blob=True, derandomize=True, max_examples=15)
    _hsettings.load_profile(os.environ.get("FLEXNET_HYPOTHESIS_PROFILE", "flexnet"))
except ImportError:  # the dev extras not installed: test_properties.py fails to import, nothing else needs it
    pass

# Per-test time limits (pytest-timeout; pyproject's `timeout` is the default, 120 s): a test that loops
# fails with its name instead of hanging the suite. `slow` and `slurm` tests get SLOW_TIMEOUT; the pure
# tests (synthetic oracles and sweeps, no training; milliseconds to a few seconds each) get PURE_TIMEOUT,
# so a search that loops fails within seconds. An explicit @pytest.mark.timeout(...) on a test wins.
# (A hypothesis test needs its own limit per example: hypothesis catches the timeout's failure and re-runs
# the example to shrink it, past the one alarm; tests/test_properties.py's time_limit does that.)
SLOW_TIMEOUT = 1200
PURE_TIMEOUT = 30
PURE_FILES = {"test_search.py", "test_search_aim.py", "test_properties.py", "test_verdicts.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if item.get_closest_marker("slow") or item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
        elif item.path.name in PURE_FILES:
            item.add_marker(pytest.mark.timeout(PURE_TIMEOUT))


# The timeout above interrupts the test's main thread. A loop in a worker thread (a search run by thread
# workers) cannot be interrupted: the test fails at its limit, then its clean-up waits on the thread for
# ever. The watchdog ends the run WATCHDOG_GRACE s past a test's limit, naming the test and dumping every
# thread's stack, instead of hanging the suite.
WATCHDOG_GRACE = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    import faulthandler
    import threading

    marker = item.get_closest_marker("timeout")
    limit = (marker.args[0] if marker and marker.args else item.config.getini("timeout")) or 0
    timer = None
    if float(limit) > 0:
        def fire():
            sys.stderr.write(f"\nflexnet tests: {item.nodeid} still running {WATCHDOG_GRACE} s past its "
                             f"{float(limit):g} s timeout (a loop in a thread the timeout cannot interrupt?); "
                             "ending the run. Stacks:\n")
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            sys.stderr.flush()
            os._exit(3)

        timer = threading.Timer(float(limit) + WATCHDOG_GRACE, fire)
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


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
