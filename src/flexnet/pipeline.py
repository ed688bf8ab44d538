"""One EMC measurement from a resolved config: data -> model -> fit oracle -> search -> records.

`run_job(cfg, outdir)` is what the Hydra entry point calls; tests call it too. `setup` validates the
config and builds everything before any training (data, the solved model, the training recipe);
run_job then runs the configured search over an `Oracle` (oracle.py), one search per trial, and
writes the result (summary.py's dict) through records.py.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional

import torch

from . import data as data_mod
from .errors import ConfigError, require
from .fit.spec import Recipe, budget_from_config as build_budget, checks_from_config as build_checks
from .job import Setup
from .loggers import make_logger
from .models import plan_model
from .optim import budget_factor, build_procedure
from .oracle import Oracle, TrialWorkers, calibrate_grad_tol, past_fit, train_together, trial_workers
from .records import _HASH_DEFAULTS, CURVE_FILE, FITS_FILE, Journal, result_hash, write_result
from .schema import validate_config
from .search import SEARCHES, Attempt, run_trials
from .provenance import code_hash, provenance
from .search.ladder import ladder_search
from .summary import _trials_summary, ladder_summary, print_summary, summarise
from .utils import knobs, plain, resolve_device

log = logging.getLogger("flexnet")

_DATA_CACHE: dict[str, Any] = {}


def load_data(cfg: dict, device: torch.device):
    """Dataset + labeling for a config, cached per process (a sweep in one process loads once)."""
    key = repr((plain(cfg["dataset"]), plain(cfg["labeling"]), str(device)))
    if key not in _DATA_CACHE:
        bundle = data_mod.load_dataset(knobs(cfg["dataset"], drop=()))
        bundle = data_mod.apply_labeling(bundle, knobs(cfg["labeling"], drop=()))
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = bundle.to(device)
    return _DATA_CACHE[key]



def setup(cfg: dict) -> Setup:
    """Validate and build everything from a plain config dict; raises ConfigError on bad input."""
    validate_config(cfg)  # every key's type and range, before any data loads (schema/)
    require(isinstance(cfg.get("seed"), int), "seed", cfg.get("seed"), "must be an integer")
    thr = cfg["search"].get("fit_threshold", 1.0)
    require(isinstance(thr, (int, float)) and 0 < thr <= 1, "search.fit_threshold", thr,
            "must lie in (0, 1] (1.0: the paper's 100%; 0.98: its relaxed variant)")
    params = cfg["scaling"].get("params")
    if cfg["scaling"].get("name") != "none":
        require(isinstance(params, (int, float)) and params > 0, "scaling.params", params,
                "must be a positive number of parameters (e.g. 1e4)")
    device = resolve_device(cfg.get("device", "auto"))
    procedure = build_procedure(knobs(cfg["optimizer"], drop=()), knobs(cfg["regularizer"], drop=()))
    checks, tol_spec = build_checks(knobs(cfg.get("convergence") or {}, drop=()))
    budget = build_budget(knobs(cfg.get("train") or {}, drop=()))
    recipe = Recipe(procedure=procedure, budget=budget, checks=checks, fit_threshold=float(thr))
    data = load_data(cfg, device)
    scaling_cfg = knobs(cfg["scaling"], drop=())
    factor = budget_factor(knobs(cfg.get("reparam") or {"name": "none"}, drop=()))  # quant8: 4 weights per fp32
    if factor != 1 and isinstance(scaling_cfg.get("params"), (int, float)):
        scaling_cfg["params"] = scaling_cfg["params"] * factor
    plan = plan_model(knobs(cfg["arch"], drop=()), scaling_cfg, data.input_shape, data.num_classes)
    if factor != 1 and plan.target is not None:
        plan.target = plan.target / factor  # emc.json's params.target stays the budget asked for
    if plan.note:
        log.warning(plan.note)
    return Setup(cfg, device, data, plan, recipe, tol_spec)


def model_line(plan, arch_cfg: dict) -> str:
    """The solved model, logged when a job starts: `--cfg job` shows the arch group's defaults (e.g.
    arch.width: 64), which the scaling law replaces."""
    shape = " ".join(f"{k}={v}" for k, v in plan.shape.items())
    replaced = [f"arch.{k}={arch_cfg[k]}" for k, v in plan.shape.items() if k in arch_cfg and arch_cfg[k] != v]
    target = "" if plan.target is None else f", target {plan.target:g}"
    note = f"; solved by scaling={plan.scaling} (replaces the config's {', '.join(replaced)})" if replaced else ""
    return f"model: {plan.arch} {shape}: {plan.actual} parameters{target}{note}"


def _progress(a: Attempt, lo: int, hi: Optional[int]) -> None:
    r = a.record
    if r.get("reread"):  # trained earlier in this job (a lower rung of the ladder): logged then
        return
    trial = f"trial {r['trial']}: " if "trial" in r else ""
    # the search's bracket before this attempt; a failed size at or below the fitted one is stale (a retry
    # rescued it and the search grows above it: no failed size yet), shown open ("-")
    hi = None if hi is not None and hi <= lo else hi
    log.info("%sn=%-6d attempt %d: %-10s acc %.4f  %4d epochs %6.1fs  | bracket [%d, %s]%s", trial,
             a.n, a.attempt, a.status, r.get("train_acc") or 0.0, r.get("epochs") or 0, r.get("seconds") or 0.0,
             lo, "-" if hi is None else hi, "  (replayed from the journal)" if r.get("replayed") else "")


def _check_sizes(search: dict, start: int, pool: int) -> None:
    """The search's first (or only) size against the pool, with the key that sets it."""
    if search.get("name") == "fixed" and search.get("n") is not None:
        key, n = "search.n", search["n"]
    else:
        key, n = ("search.start_ratio" if search.get("start_ratio") is not None else "search.start"), start
    require(int(n) <= pool, key, search.get(key.split(".")[1], n),
            f"gives n={n}, more than the training pool ({pool} samples); lower it or enlarge the dataset")


def set_threads(spec, params: int) -> int:
    """Intra-op threads per job. auto: one thread for small models (under 1e5 parameters: as fast
    as two on a CPU, and parallel jobs do not oversubscribe the cores), torch's default otherwise."""
    if spec in (None, "auto"):
        n = 1 if params < 100_000 else torch.get_num_threads()
    else:
        require(isinstance(spec, int) and spec >= 1, "threads", spec, "must be a positive integer or 'auto'")
        n = int(spec)
    torch.set_num_threads(n)
    return n


def _check_code(journal: Journal, accept: bool) -> None:
    """A journal written by other code (another code hash, provenance.py) is not resumed silently."""
    if not journal.other_code:
        return
    other = ", ".join(f"{h} ({k} attempt(s))" for h, k in sorted(journal.other_code.items()))
    if not accept:
        raise ConfigError(f"{journal.path}: written by other flexnet code (code hash {other}; this code: "
                          f"{journal.code_hash}): its attempts may not be what this code trains; rerun with "
                          f"+accept_code_change=true to replay them anyway, or +fresh=true to start afresh")
    log.warning("+accept_code_change=true: replaying %s written by other code (code hash %s)", journal.path, other)


def ladder_caps(cfg: dict, budget) -> list:
    """The rungs searched: train.caps (converge policy), its one cap otherwise; [None] without
    train.caps (one cap from train.epochs / train.min_steps, per size) and when training past the fit."""
    if not budget.caps or past_fit(cfg):  # past the fit: a fixed length (train.epochs / min_steps), no cap
        return [None]
    return [int(c) for c in budget.caps]


def run_job(cfg: dict, outdir: Path, job_info: Optional[dict] = None, accept_code_change: bool = False) -> dict:
    """Run one EMC measurement; writes fits.jsonl and emc.json into outdir; returns the result dict.
    `accept_code_change`: replay a journal written by other code (see _check_code)."""
    t0, started_at = time.perf_counter(), time.time()
    outdir = Path(outdir)
    s = setup(cfg)
    log.info(model_line(s.plan, cfg["arch"]))
    set_threads(cfg.get("threads", "auto"), s.plan.actual)
    scfg = knobs(cfg["search"], drop=())
    search_name = scfg.pop("name")
    strategy = SEARCHES.get(search_name)
    scfg.pop("fit_threshold", None)
    for k in _HASH_DEFAULTS:  # how each attempt trains (Oracle), not how the search runs
        scfg.pop(k, None)
    start = scfg.pop("start", 128)
    ratio = scfg.pop("start_ratio", None)
    if ratio is not None:  # a guess that scales with the model: start near the expected EMC
        require(isinstance(ratio, (int, float)) and ratio > 0, "search.start_ratio", ratio,
                "must be a positive number (search.start = ratio x actual parameters) or null")
        start = max(2, min(s.data.pool_size, int(round(ratio * s.plan.actual))))
        log.info("search.start_ratio=%g: starting at n=%d", ratio, start)
    _check_sizes(cfg["search"], start, s.data.pool_size)  # before any training (calibration included)
    journal = Journal(outdir / FITS_FILE, result_hash(cfg), fit_threshold=float(cfg["search"].get("fit_threshold", 1.0)),
                      code_hash=code_hash())
    _check_code(journal, accept_code_change)
    if journal.replayed:
        log.info("resuming: %d finished attempts found in %s", len(journal.replayed), journal.path)
    logger = make_logger(knobs(cfg.get("logger") or {"name": "none"}, drop=()), cfg, outdir, job_info)
    exit_code = 1
    try:
        tol = calibrate_grad_tol(s)
        curve = cfg.get("curve", "auto")
        if curve == "auto":
            curve = search_name == "fixed"
        curve_path = outdir / CURVE_FILE if curve else None
        trials = scfg.pop("trials", 1)
        require(isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1, "search.trials", trials,
                "must be a positive integer (independent repeats of the measurement in this job, for error bars)")
        batch = scfg.pop("batch_attempts", "auto")
        if batch == "auto":  # stacked models pay off on a GPU; on a 2-core CPU not even for trials (BENCHMARKS.md)
            batch = s.device.type == "cuda"
        if past_fit(cfg):  # the stacked trainer (fit/stacked.py) stops at the fit
            batch = False
        workers = trial_workers(scfg.pop("trial_workers", "auto"), trials, s.device, curve_path is not None,
                                bool(batch))
        common = dict(start=int(start), pool=s.data.pool_size, progress=_progress, batch_attempts=bool(batch), **scfg)
        caps = ladder_caps(cfg, s.recipe.budget)
        if trials == 1:
            oracles = [Oracle(s, journal, logger, curve_path)]
            ladders = [ladder_search(strategy, oracles[0], caps, **common)]
        else:
            oracles = [Oracle(s, journal, logger, curve_path, trial=k) for k in range(trials)]

            def train_round(keys: list) -> dict:
                return dict(zip(keys, train_together([(oracles[k], n, a, c) for k, n, a, c in keys], bool(batch))))

            pool = TrialWorkers(oracles, workers) if workers > 1 else None
            if pool is not None:
                log.info("search.trials=%d: %d worker processes", trials, workers)
            try:
                ladders = run_trials(lambda k, oracle: ladder_search(strategy, oracle, caps, **common), trials,
                                     train_round, pool)
            finally:
                if pool is not None:
                    pool.close()
        runs = [lad[-1].result for lad in ladders]  # each trial's top rung
        res = runs[0]
        replayed = sum(o.replayed for o in oracles)
        result = summarise(s, res, tol, time.perf_counter() - t0, cfg, replayed, job_info)
        result.update(ladder_summary(s, ladders[0], cfg, journal))
        result["resumed_attempts"] = sum(o.resumed for o in oracles)
        result["provenance"] = provenance(torch.get_num_threads(), s.device, s.recipe.budget.policy)
        if trials > 1:
            result.update(_trials_summary(s, ladders))
        result["params"].update(oracles[0].reparam_info.get("params", {}))
        earlier = sum(o.replayed_seconds for o in oracles)
        if earlier:  # a resumed job: its time covers the earlier segments' (journalled) training too
            result.update(seconds_this_segment=result["seconds"], seconds=result["seconds"] + earlier)
        result.update(started_at=started_at, finished_at=time.time())  # wall clock (s since epoch)
        write_result(outdir, result)
        logger.log_summary(result)
        exit_code = 0
    finally:
        logger.finish(exit_code)
    print_summary(result, outdir)
    return result
