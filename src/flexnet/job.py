"""One EMC measurement from a resolved config: data -> model -> fit oracle -> search -> records.

`run_job(cfg, outdir)` is what the Hydra entry point calls; tests call it too.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from . import data as data_mod
from .fit.minimum import evaluate
from .search import SEARCHES, Attempt, SearchResult, run_trials
from .errors import ConfigError, require
from .models import plan_model
from .optim import apply_reparam, budget_factor, build_procedure
from .schema import validate_config
from .loggers import make_logger
from .records import (_HASH_DEFAULTS, CURVE_FILE, FITS_FILE, Journal, append_curve, drop_curve, result_hash,
                      write_result)
from .fit.loop import Budget, Checks, FitResult, Recipe, train_to_minimum
from .utils import derive_seed, generator, knobs, plain, resolve_device, seeded_init

log = logging.getLogger("flexnet")

HEARTBEAT_S = 10.0  # progress=log: at most one line per attempt this often

_DATA_CACHE: dict[str, Any] = {}


def build_checks(cfg: dict) -> tuple[Checks, Any]:
    """convergence.* -> Checks. grad_tol: a number (absolute), 'descent' (the default), 'init', or
    'auto' (an absolute tolerance calibrated once per job, see calibrate_grad_tol)."""
    c = dict(cfg)
    grad_tol = c.pop("grad_tol", "descent")
    calib = {k: c.pop(k) for k in ("calibration_n", "calibration_factor") if k in c}
    fields = {f.name for f in dataclasses.fields(Checks)} - {"grad_rule"}
    unknown = sorted(set(c) - fields)
    if unknown:
        raise ConfigError(f"convergence.{unknown[0]}: unknown key; allowed: {', '.join(sorted(fields | {'grad_tol', 'calibration_n', 'calibration_factor'}))}")
    if isinstance(grad_tol, str) and grad_tol != "auto":
        checks = Checks(**c, grad_rule=grad_tol)
    else:
        require(grad_tol == "auto" or (isinstance(grad_tol, (int, float)) and not isinstance(grad_tol, bool)),
                "convergence.grad_tol", grad_tol, "must be a positive number, 'descent', 'init' or 'auto'")
        checks = Checks(**c, grad_rule="absolute", grad_tol=1.0 if grad_tol == "auto" else grad_tol)
    checks.validate()
    return checks, (grad_tol, calib)


def build_budget(cfg: dict) -> Budget:
    fields = {f.name for f in dataclasses.fields(Budget)}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise ConfigError(f"train.{unknown[0]}: unknown key; allowed: {', '.join(sorted(fields))}")
    b = Budget(**cfg)
    b.validate()
    return b


def load_data(cfg: dict, device: torch.device):
    """Dataset + labeling for a config, cached per process (a sweep in one process loads once)."""
    key = repr((plain(cfg["dataset"]), plain(cfg["labeling"]), str(device)))
    if key not in _DATA_CACHE:
        bundle = data_mod.load_dataset(knobs(cfg["dataset"], drop=()))
        bundle = data_mod.apply_labeling(bundle, knobs(cfg["labeling"], drop=()))
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = bundle.to(device)
    return _DATA_CACHE[key]


@dataclass
class Setup:
    """Everything built from the config before any training."""

    cfg: dict
    device: torch.device
    data: Any
    plan: Any
    recipe: Recipe
    grad_tol_spec: Any


def setup(cfg: dict) -> Setup:
    """Validate and build everything from a plain config dict; raises ConfigError on bad input."""
    validate_config(cfg)  # every key's type and range, before any data loads (schema.py)
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


def past_fit(cfg: dict) -> bool:
    """search=fixed with search.stop_at_fit=false: train the whole fixed length past the first fit
    (pastfit.py), recording the epoch of the first fit and a train/test curve."""
    return cfg["search"].get("name") == "fixed" and cfg["search"].get("stop_at_fit", True) is False


def model_line(plan, arch_cfg: dict) -> str:
    """The solved model, logged when a job starts: `--cfg job` shows the arch group's defaults (e.g.
    arch.width: 64), which the scaling law replaces."""
    shape = " ".join(f"{k}={v}" for k, v in plan.shape.items())
    replaced = [f"arch.{k}={arch_cfg[k]}" for k, v in plan.shape.items() if k in arch_cfg and arch_cfg[k] != v]
    target = "" if plan.target is None else f", target {plan.target:g}"
    note = f"; solved by scaling={plan.scaling} (replaces the config's {', '.join(replaced)})" if replaced else ""
    return f"model: {plan.arch} {shape}: {plan.actual} parameters{target}{note}"


def calibrate_grad_tol(s: Setup) -> dict:
    """`convergence.grad_tol=auto`: train the model to the full budget on a small subset it clearly
    fits, read off the full-batch gradient norm there, and multiply by the calibration factor."""
    spec, calib = s.grad_tol_spec
    if spec in ("init", "descent"):  # per attempt: recorded in each fits.jsonl line (grad_tol)
        return {"grad_tol": None, "mode": spec, **({"grad_rel": s.recipe.checks.grad_rel} if spec == "init" else {})}
    if spec != "auto":
        return {"grad_tol": float(spec), "mode": "fixed"}
    n = int(calib.get("calibration_n", 64))
    factor = float(calib.get("calibration_factor", 10.0))
    require(1 <= n <= s.data.pool_size, "convergence.calibration_n", n, f"must lie in [1, {s.data.pool_size}]")
    require(factor > 0, "convergence.calibration_factor", factor, "must be > 0")
    seed = derive_seed(s.cfg["seed"], n, 9999)
    g = generator(seed)
    idx = torch.randperm(s.data.pool_size, generator=g)[:n].to(s.device)
    with seeded_init(seed):
        model = s.plan.build()
        model, _ = apply_reparam(model, knobs(s.cfg["reparam"], drop=()), g)  # calibrate what is trained
    model.to(s.device)
    rec = copy.deepcopy(s.recipe)
    rec.fit_threshold = 2.0  # never 'fitted': train through the whole budget
    rec.checks.early_verdict = False
    rec.checks.hessian = False
    rec.budget.max_extensions = 0
    rec.budget.policy = "fixed"  # the whole budget on the optimizer's schedule
    res = train_to_minimum(model, s.data.x_train[idx], s.data.y_train[idx], rec,
                           g=generator(seed + 1, s.device), seed=seed)
    gn = float(res.grad_norm or 0.0)
    tol = max(gn * factor, 1e-8)
    s.recipe.checks.grad_tol = tol
    log.info("grad_tol=auto: gradient norm %.3g on %d samples (acc %.3f) x %g -> grad_tol %.3g",
             gn, n, res.train_acc, factor, tol)
    return {"grad_tol": tol, "mode": "auto", "calibration_n": n, "calibration_factor": factor,
            "calibration_grad_norm": gn, "calibration_train_acc": res.train_acc}


class Oracle:
    """n, attempt -> Attempt: a fresh subset and init per attempt, trained to a minimum."""

    def __init__(self, s: Setup, journal: Journal, logger, curve_path: Optional[Path] = None,
                 trial: Optional[int] = None):
        self.s, self.journal, self.logger = s, journal, logger
        self.curve_path = curve_path
        self.trial = trial  # search.trials > 1: this trial's number (its attempt seeds), recorded
        self.replayed = 0
        self.replayed_seconds = 0.0  # training time of the replayed attempts (earlier segments of the job)
        self.reparam_info: dict = {}

    def seed(self, n: int, attempt: int) -> int:
        """The attempt's seed: from (run seed, n, attempt), and the trial number for trials after the first."""
        extra = (self.trial,) if self.trial else ()
        return derive_seed(self.s.cfg["seed"], n, attempt, *extra)

    def _tag(self) -> dict:
        return {} if self.trial is None else {"trial": self.trial}

    def _curve_every(self) -> int:
        return int(self.s.cfg["search"].get("curve_every", 1) or 1)

    def _write_curve(self, n: int, attempt: int, rec: dict) -> None:
        append_curve(self.curve_path, {**self._tag(), "n": n, "attempt": attempt, **rec})

    def _curve_callback(self, n: int, attempt: int, x, y, best: dict):
        """Per-epoch learning curve (every search.curve_every epochs): loss and accuracy on the
        stream trained on, clean train accuracy on the subset and test accuracy, appended to curve.jsonl."""
        s = self.s
        has_test = s.data.x_test.shape[0] > 0
        every = self._curve_every()

        def cb(model, m: dict) -> None:
            if m["epoch"] % every and m["epoch"] != 1:
                return
            train_acc, _ = evaluate(model, x, y, s.recipe.procedure.loss_fn, s.recipe.checks.chunk)
            test_acc = evaluate(model, s.data.x_test, s.data.y_test)[0] if has_test else None
            if test_acc is not None and test_acc > best.get("best_test_acc", -1.0):
                best.update(best_test_acc=test_acc, best_test_epoch=m["epoch"])
            append_curve(self.curve_path, {**self._tag(), "n": n, "attempt": attempt, **m, "train_acc": train_acc,
                                           "test_acc": test_acc})

        return cb

    def _progress_callback(self, n: int, attempt: int):
        """Per-epoch progress of one attempt, through train_to_minimum's on_epoch: a bar on a terminal
        (progress=bar, or auto when stderr is one), else a heartbeat line in the log at most every
        HEARTBEAT_S seconds (progress=log, or auto otherwise), nothing with progress=false; and the
        epoch's loss, accuracy and lr to the logger (W&B curves). Returns (callback or None, close)."""
        from .loggers import Logger

        mode = self.s.cfg.get("progress", "auto")
        if mode in ("auto", True):
            mode = "bar" if sys.stderr.isatty() else "log"
        if mode is False and type(self.logger) is Logger:  # quiet, and no logger wants the epochs
            return None, lambda: None
        trial = f"trial {self.trial}: " if self.trial else ""
        budget = self.s.recipe.budget
        state = {"last": time.perf_counter(), "t0": time.perf_counter(), "bar": None}

        def cb(model, m: dict) -> None:
            self.logger.log_epoch({**self._tag(), "n": n, "attempt": attempt, **m})
            if mode == "bar":
                post = {"loss": f"{m['train_loss']:.4g}", "acc": f"{m['online_acc']:.4f}", "lr": f"{m['lr']:.3g}"}
                if state["bar"] is None:
                    from tqdm import tqdm

                    spe = max(1, m["step"] // max(1, m["epoch"]))
                    cap = max(int(budget.epochs), -(-int(budget.min_steps) // spe))  # the safety cap, in epochs
                    state["bar"] = tqdm(total=cap, desc=f"{trial}n={n} attempt {attempt}", unit="ep", leave=False,
                                        file=sys.stderr, mininterval=0.5, dynamic_ncols=True, postfix=post)
                state["bar"].set_postfix(post, refresh=False)
                state["bar"].update(1)
            elif mode == "log":
                now = time.perf_counter()
                if now - state["last"] >= HEARTBEAT_S:
                    state["last"] = now
                    log.info("%sn=%-6d attempt %d: epoch %d, step %d, loss %.4g, acc %.4f, lr %.3g, %.0fs so far",
                             trial, n, attempt, m["epoch"], m["step"], m["train_loss"], m["online_acc"], m["lr"],
                             now - state["t0"])

        def close() -> None:
            if state["bar"] is not None:
                state["bar"].close()

        return cb, close

    def _replay(self, n: int, attempt: int) -> Optional[Attempt]:
        old = self.journal.get(n, attempt, self.trial or 0)
        if old is None:
            return None
        self.replayed += 1
        self.replayed_seconds += float(old.get("seconds") or 0.0)
        old = {**old, "replayed": True}  # marked in the progress log (not written back to the journal)
        return Attempt(n, attempt, old["status"] == "fitted", float(old.get("cost") or 0.0), old["status"], old)

    def _prepare(self, n: int, attempt: int):
        """The attempt's own seed, subset and freshly initialised model."""
        s = self.s
        seed = self.seed(n, attempt)
        g = generator(seed)
        idx = torch.randperm(s.data.pool_size, generator=g)[:n].to(s.device)
        with seeded_init(seed):
            model = s.plan.build()
            model, rinfo = apply_reparam(model, knobs(s.cfg["reparam"], drop=()), g)
        self.reparam_info = rinfo
        return seed, s.data.x_train[idx], s.data.y_train[idx], model.to(s.device)

    def _record(self, n: int, attempt: int, seed: int, model, res: FitResult, best: dict,
                extra: Optional[dict] = None) -> Attempt:
        """The attempt's journal record. `extra` (a past-fit attempt's: fitted_epoch, test_acc, ...)
        replaces what is computed here; otherwise the first fit is where the attempt stopped."""
        s = self.s
        test_acc = None
        if extra is None and (res.fitted or self.curve_path) and s.data.x_test.shape[0] > 0:
            test_acc, _ = evaluate(model, s.data.x_test, s.data.y_test)
        fit = {"fitted_epoch": res.epochs if res.fitted else None, "fitted_step": res.steps if res.fitted else None}
        rec = {**self._tag(), "n": n, "attempt": attempt, "seed": seed, **res.to_dict(), "test_acc": test_acc,
               "fitted": res.fitted, "cost": float(n * res.epochs), **fit, **best, **(extra or {})}
        self.journal.append(rec)
        self.logger.log_attempt(rec)
        return Attempt(n, attempt, res.fitted, rec["cost"], res.status, rec)

    def __call__(self, n: int, attempt: int) -> Attempt:
        old = self._replay(n, attempt)
        if old is not None:
            return old
        s = self.s
        seed, x, y, model = self._prepare(n, attempt)
        best: dict = {}
        extra = None
        if hasattr(model, "fit_closed_form"):  # e.g. Zhang et al.'s construction, min-norm kernel
            res = fit_closed_form(model, x, y, s.recipe)
        elif past_fit(s.cfg):
            res, extra = self._train_past_fit(n, attempt, seed, x, y, model)
        else:
            if self.curve_path:
                drop_curve(self.curve_path, n, attempt, self.trial)
            curve = self._curve_callback(n, attempt, x, y, best) if self.curve_path else None
            progress, close = self._progress_callback(n, attempt)

            def both(model, m: dict) -> None:
                progress(model, m)
                curve(model, m)

            cb = both if progress and curve else (progress or curve)
            try:
                res = train_to_minimum(model, x, y, s.recipe, g=generator(seed + 1, s.device), seed=seed, on_epoch=cb)
            finally:
                close()
        return self._record(n, attempt, seed, model, res, best, extra)

    def _train_past_fit(self, n: int, attempt: int, seed: int, x, y, model):
        """search.stop_at_fit=false: the whole fixed length, the curve every search.curve_every epochs."""
        from .fit.pastfit import train_past_fit

        s = self.s
        if self.curve_path:
            drop_curve(self.curve_path, n, attempt, self.trial)
        progress, close = self._progress_callback(n, attempt)
        on_curve = (lambda rec: self._write_curve(n, attempt, rec)) if self.curve_path else None
        try:
            return train_past_fit(model, x, y, s.recipe, s.data.x_test, s.data.y_test, g=generator(seed + 1, s.device),
                                  seed=seed, curve_every=self._curve_every(), on_epoch=progress, on_curve=on_curve)
        finally:
            close()

    def batch(self, n: int, attempts: list[int]) -> list[Attempt]:
        """Several attempts at one size trained together as one stacked model (see train_together)."""
        return train_together([(self, n, a) for a in attempts], batched=True)


def train_together(items: list[tuple[Oracle, int, int]], batched: bool) -> list[Attempt]:
    """(oracle, n, attempt) items, any mix of trials and sizes: each size's attempts trained as one
    stacked model (batched.py) when `batched`, else one at a time; replayed attempts are not
    retrained. Falls back to one at a time where the procedure or model cannot be batched."""
    from .fit.stacked import batchable, train_batched

    out: dict[int, Attempt] = {}
    by_n: dict[int, list[int]] = {}
    for i, (o, n, a) in enumerate(items):
        old = o._replay(n, a)
        if old is not None:
            out[i] = old
        else:
            by_n.setdefault(int(n), []).append(i)
    for n, idxs in by_n.items():
        if batched and len(idxs) > 1 and not any(items[i][0].curve_path for i in idxs):
            prepared = [items[i][0]._prepare(n, items[i][2]) for i in idxs]
            models = [p[3] for p in prepared]
            if not any(hasattr(m, "fit_closed_form") for m in models) and batchable(models, items[idxs[0]][0].s.recipe):
                s = items[idxs[0]][0].s
                seeds = [p[0] for p in prepared]
                results = train_batched(models, [p[1] for p in prepared], [p[2] for p in prepared], s.recipe,
                                        [generator(sd + 1, s.device) for sd in seeds], seeds)
                for i, (seed, _, _, model), res in zip(idxs, prepared, results):
                    o, _, a = items[i]
                    out[i] = o._record(n, a, seed, model, res, {"stacked": len(idxs)})
                continue
        for i in idxs:
            o, _, a = items[i]
            out[i] = o(n, a)
    return [out[i] for i in range(len(items))]


def fit_closed_form(model, x, y, recipe: Recipe) -> FitResult:
    """Models that are solved, not trained: build from the data and evaluate."""
    t0 = time.perf_counter()
    model.fit_closed_form(x, y)
    acc, loss = evaluate(model, x, y, recipe.procedure.loss_fn, recipe.checks.chunk)
    fitted = acc >= recipe.fit_threshold
    return FitResult(status="fitted" if fitted else "failed", stop_reason="closed_form", train_acc=acc,
                     train_loss=loss if math.isfinite(loss) else None, epochs=0, steps=0,
                     seconds=time.perf_counter() - t0, verified=None if fitted else True)


def _progress(a: Attempt, lo: int, hi: Optional[int]) -> None:
    r = a.record
    trial = f"trial {r['trial']}: " if "trial" in r else ""
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


def run_job(cfg: dict, outdir: Path, job_info: Optional[dict] = None) -> dict:
    """Run one EMC measurement; writes fits.jsonl and emc.json into outdir; returns the result dict."""
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
    journal = Journal(outdir / FITS_FILE, result_hash(cfg), fit_threshold=float(cfg["search"].get("fit_threshold", 1.0)))
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
        if past_fit(cfg):  # the stacked trainer (batched.py) stops at the fit
            batch = False
        common = dict(start=int(start), pool=s.data.pool_size, progress=_progress, batch_attempts=bool(batch), **scfg)
        if trials == 1:
            oracles = [Oracle(s, journal, logger, curve_path)]
            runs = [strategy(oracles[0], **common)]
        else:
            oracles = [Oracle(s, journal, logger, curve_path, trial=k) for k in range(trials)]

            def train_round(keys: list) -> dict:
                return dict(zip(keys, train_together([(oracles[k], n, a) for k, n, a in keys], bool(batch))))

            runs = run_trials(lambda k, oracle: strategy(oracle, **common), trials, train_round)
        res = runs[0]
        replayed = sum(o.replayed for o in oracles)
        result = summarise(s, res, tol, time.perf_counter() - t0, cfg, replayed, job_info)
        if trials > 1:
            result.update(_trials_summary(s, runs))
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


def _at_emc(res: SearchResult) -> Optional[Attempt]:
    """The attempt whose accuracies the result reports: a fit at the EMC (fixed search: the first fit, else the last)."""
    if res.search == "fixed" and res.attempts:
        return next((a for a in res.attempts if a.fitted), res.attempts[-1])
    return next((a for a in res.attempts if a.n == res.emc and a.fitted), None)


def _trials_summary(s: Setup, runs: list[SearchResult]) -> dict:
    """search.trials > 1: each trial's outcome, and the EMC's mean and standard error over trials."""
    rows = []
    for k, r in enumerate(runs):
        a = _at_emc(r)
        rows.append({"trial": k, "emc": r.emc, "converged": certificate(r)["converged"],
                     "bracket": {"fitted": r.fitted, "failed": r.failed},
                     "lower_bound": r.lower_bound, "fits": r.fits, "cost_sample_epochs": r.cost,
                     "unverified": r.unverified,
                     "test_accuracy": a.record.get("test_acc") if a else None,
                     "train_accuracy": a.record.get("train_acc") if a else None,
                     "fitted_epoch": a.record.get("fitted_epoch") if a else None})
    emcs = [float(r.emc) for r in runs]
    mean = sum(emcs) / len(emcs)
    sd = math.sqrt(sum((e - mean) ** 2 for e in emcs) / (len(emcs) - 1))
    conv = [row["converged"] for row in rows]
    return {"trials": rows, "emc_mean": mean, "emc_se": sd / math.sqrt(len(emcs)),
            "trials_converged": sum(1 for c in conv if c),
            "total_fits": sum(r.fits for r in runs), "total_cost_sample_epochs": sum(r.cost for r in runs)}


VERDICT_STOPS = ("verified_minimum", "diverged", "degenerate", "closed_form")  # not at a cap or lr floor


def certificate(res: SearchResult) -> dict:
    """Is the EMC converged, i.e. a property of the network and procedure rather than of the budget?
    Yes when every attempt at the bracket's failed size ended with a verdict (a verified minimum,
    divergence, a degenerate plateau), none at the safety cap or lr floor. None where there is no
    failed size (the whole pool fitted, or search=fixed)."""
    stops = Counter(str(a.record.get("stop_reason")) for a in res.attempts)
    at_failed = [a for a in res.attempts if res.failed is not None and a.n == res.failed]
    fs = Counter(str(a.record.get("stop_reason")) for a in at_failed)
    ok = sum(v for k, v in fs.items() if k in VERDICT_STOPS)
    converged = (ok == len(at_failed)) if at_failed else None
    return {"converged": converged,
            "failed_size": res.failed if at_failed else None,
            "failed_size_stops": dict(fs), "failed_size_verdict_fraction": ok / len(at_failed) if at_failed else None,
            "stop_reasons": dict(stops)}


def summarise(s: Setup, res: SearchResult, tol: dict, seconds: float, cfg: dict, replayed: int,
              job_info: Optional[dict]) -> dict:
    """The result (emc.json); with search.trials > 1 its top-level outcome is trial 0's (the run seed's)."""
    a = _at_emc(res)
    at_emc = [a] if a is not None else []
    test_acc = at_emc[0].record.get("test_acc") if at_emc else None
    train_acc = at_emc[0].record.get("train_acc") if at_emc else None
    unverified = [{"n": a.n, "attempt": a.attempt} for a in res.attempts if a.status == "unverified"]
    cert = certificate(res)
    b = s.recipe.budget
    past = past_fit(cfg)
    if past:  # a fixed length past the fit: no verdicts to certify
        cert["converged"] = None
    broken = sum(1 for a in res.attempts if a.status in ("diverged", "degenerate"))
    return {
        "emc": res.emc,
        "converged": cert.pop("converged"),
        "convergence": {**cert, "policy": "past_fit" if past else b.policy,
                        "cap": {"epochs": b.epochs, "min_steps": b.min_steps},
                        **({"schedule": s.recipe.procedure.schedule} if past else
                           {"lr_decay": b.lr_decay, "min_lr_factor": b.min_lr_factor} if b.policy == "converge"
                           else {"schedule": s.recipe.procedure.schedule, "max_extensions": b.max_extensions}),
                        "grad_rule": s.recipe.checks.grad_rule},
        "diverged": sum(1 for a in res.attempts if a.status == "diverged"),
        "degenerate": sum(1 for a in res.attempts if a.status == "degenerate"),
        "mostly_broken": broken * 2 >= max(1, len(res.attempts)),
        "bracket": {"fitted": res.fitted, "failed": res.failed},
        "lower_bound": res.lower_bound,
        "params": {"target": s.plan.target, "actual": s.plan.actual},
        "fits": res.fits,
        "cost_sample_epochs": res.cost,
        "seconds": seconds,
        "unverified": len(unverified),
        "unverified_attempts": unverified,
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "best_test_accuracy": at_emc[0].record.get("best_test_acc") if at_emc else None,
        "test_loss": at_emc[0].record.get("test_loss") if at_emc else None,
        "train_loss": at_emc[0].record.get("train_loss") if at_emc else None,
        "fitted_epoch": at_emc[0].record.get("fitted_epoch") if at_emc else None,
        "past_fit": past,
        "search": res.search,
        "device": str(s.device),
        "pool_size": s.data.pool_size,
        "num_classes": s.data.num_classes,
        "input_shape": list(s.data.input_shape),
        "arch": s.plan.arch,
        "shape": s.plan.shape,
        "grad_tol": tol,
        "replayed_attempts": replayed,
        "host": platform.node(),
        "job": job_info or {},
        "config": cfg,
    }


def _convergence_line(r: dict) -> str:
    c = r.get("convergence") or {}
    if c.get("policy") == "past_fit":
        fe = r.get("fitted_epoch")
        return (f"trained past the fit: {c['cap']['epochs']} epochs / {c['cap']['min_steps']} steps, "
                + ("never fitted" if fe is None else f"first fitted at epoch {fe}")
                + ("" if r.get("test_accuracy") is None else f"; test accuracy {r['test_accuracy']:.4f}"))
    stops = ", ".join(f"{v} {k}" for k, v in sorted((c.get("failed_size_stops") or {}).items()))
    if r.get("converged") is None:
        return f"converged: n/a (no failed size); policy {c.get('policy')}"
    if r["converged"]:
        return f"converged: yes (attempts at the failed size {c['failed_size']}: {stops}); policy {c.get('policy')}"
    return (f"converged: NO, budget-bound (attempts at the failed size {c['failed_size']}: {stops}); "
            f"policy {c.get('policy')}, cap {c['cap']['epochs']} epochs / {c['cap']['min_steps']} steps")


def print_summary(r: dict, outdir: Path) -> None:
    if r["lower_bound"]:
        what = f"EMC >= {r['emc']} (the whole pool of {r['pool_size']} fitted: a lower bound, not a measurement)"
    else:
        what = f"EMC = {r['emc']}  (bracket: fitted {r['bracket']['fitted']}, failed {r['bracket']['failed']})"
    lines = [
        f"{what}",
        f"  {r['arch']} {r['shape']}  params {r['params']['actual']} (target {r['params']['target']})",
        f"  {r['fits']} fit attempts, {r['cost_sample_epochs']:.3g} sample-epochs, {r['seconds']:.1f}s on {r['device']}"
        + (f", {r['unverified']} unverified" if r["unverified"] else ""),
        f"  {_convergence_line(r)}",
        f"  results: {Path(outdir) / 'emc.json'}",
    ]
    if r.get("mostly_broken"):
        lines.insert(1, f"  WARNING: {r['diverged']} attempts diverged and {r['degenerate']} ended degenerate "
                        f"(loss above its initial value or weights blown up) of {r['fits']}: the training "
                        f"procedure is broken, not the network's capacity; try a lower optimizer.lr")
    if r.get("trials"):
        t = r["trials"]
        lines.insert(1, f"  over {len(t)} trials: EMC {r['emc_mean']:.1f} +- {r['emc_se']:.1f} (SE); per trial "
                        f"{', '.join(str(x['emc']) + ('+' if x['lower_bound'] else '') for x in t)}; "
                        f"{r['total_fits']} fit attempts in all (the lines below: trial 0)")
    print("\n".join(lines), flush=True)
