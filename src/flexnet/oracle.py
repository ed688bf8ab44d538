"""One fit attempt: `Oracle(n, attempt) -> Attempt`, the search's only way to train.

An attempt gets its own seed, subset and freshly initialised model (`_prepare`), is solved
(`fit_closed_form`, for models built from the data), trained past the fit (search.stop_at_fit=false:
fit/pastfit.py) or trained to a minimum (fit/loop.py), and is recorded through records.py (a
fits.jsonl line, curve.jsonl when asked) and the logger; a journalled attempt is replayed instead.
`train_together` trains a group of attempts as one stacked model (fit/stacked.py) where it can;
`calibrate_grad_tol` sets convergence.grad_tol=auto once per job.
"""
from __future__ import annotations

import copy
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch

from .errors import require
from .fit.loop import FitResult, Recipe, train_to_minimum
from .fit.minimum import evaluate
from .loggers import Logger
from .optim import apply_reparam
from .records import Journal, append_curve, checkpoint_path, drop_curve, load_checkpoint, save_checkpoint
from .search import Attempt
from .search.ladder import read_off
from .utils import derive_seed, generator, knobs, seeded_init

if TYPE_CHECKING:
    from .job import Setup

log = logging.getLogger("flexnet")

HEARTBEAT_S = 10.0  # progress=log: at most one line per attempt this often


def past_fit(cfg: dict) -> bool:
    """search=fixed with search.stop_at_fit=false: train the whole fixed length past the first fit
    (fit/pastfit.py), recording the epoch of the first fit and a train/test curve."""
    return cfg["search"].get("name") == "fixed" and cfg["search"].get("stop_at_fit", True) is False


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
        self.replayed_keys: set = set()  # attempts answered from an earlier run's journal lines
        self.replayed_seconds = 0.0  # training time of the replayed attempts (earlier segments of the job)
        self.resumed = 0  # capped attempts continued from their checkpoint (train.caps)
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
            self._write_curve(n, attempt, {**m, "train_acc": train_acc, "test_acc": test_acc})

        return cb

    def _progress_callback(self, n: int, attempt: int, forward: bool = True, cap: Optional[int] = None):
        """Per-epoch progress of one attempt, through train_to_minimum's on_epoch: a bar on a terminal
        (progress=bar, or auto when stderr is one), else a heartbeat line in the log at most every
        HEARTBEAT_S seconds (progress=log, or auto otherwise), nothing with progress=false; and the
        epoch's loss, accuracy and lr to the logger (W&B curves). Returns (callback or None, close).
        forward=False (an attempt trained in a worker process): heartbeat lines only, no bar, nothing
        to the logger (the parent process records the attempt)."""
        mode = self.s.cfg.get("progress", "auto")
        if mode in ("auto", True):
            mode = "bar" if sys.stderr.isatty() and forward else "log"
        if mode is False and (type(self.logger) is Logger or not forward):  # quiet, and no logger wants the epochs
            return None, lambda: None
        trial = f"trial {self.trial}: " if self.trial else ""
        budget = self.s.recipe.budget
        state = {"last": time.perf_counter(), "t0": time.perf_counter(), "bar": None}

        def cb(model, m: dict) -> None:
            if forward:
                self.logger.log_epoch({**self._tag(), "n": n, "attempt": attempt, **m})
            if mode == "bar":
                post = {"loss": f"{m['train_loss']:.4g}", "acc": f"{m['online_acc']:.4f}", "lr": f"{m['lr']:.3g}"}
                if state["bar"] is None:
                    from tqdm import tqdm

                    spe = max(1, m["step"] // max(1, m["epoch"]))
                    steps = int(cap) if cap is not None else max(int(budget.epochs) * spe, int(budget.min_steps))
                    total = -(-steps // spe)  # this attempt's cap (its rung of the ladder), in epochs
                    cols = shutil.get_terminal_size((100, 24)).columns or 100  # some ptys report 0 columns
                    state["bar"] = tqdm(total=total, desc=f"{trial}n={n} attempt {attempt}", unit="ep", leave=False,
                                        file=sys.stderr, mininterval=0.5, ncols=cols, postfix=post)
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

    @property
    def replayed(self) -> int:
        return len(self.replayed_keys)

    def _replay(self, n: int, attempt: int, cap: Optional[int] = None) -> Optional[Attempt]:
        """The attempt within `cap` from its journal line(s), or None when it must be trained (never
        trained, or stopped by a smaller cap: then `measure` resumes it from its checkpoint)."""
        old = self.journal.get(n, attempt, self.trial or 0)
        rec = None if old is None else read_off(old, cap)
        if rec is None:
            return None
        if self.journal.earlier(n, attempt, self.trial or 0) and (n, attempt) not in self.replayed_keys:
            self.replayed_keys.add((n, attempt))
            self.replayed_seconds += float(old.get("seconds") or 0.0)
        # marked in the progress log (not written back to the journal)
        earlier = self.journal.earlier(n, attempt, self.trial or 0)
        rec = {**rec, "replayed": True} if earlier else {**rec, "reread": True}
        return Attempt(n, attempt, rec["status"] == "fitted", float(rec.get("cost") or 0.0), rec["status"], rec)

    def at(self, n: int, attempt: int, cap: Optional[int]) -> Attempt:
        """Attempt (n, attempt) within the ladder's rung `cap` (steps; None: no ladder): read off its
        journal line(s), resumed from its checkpoint, or trained."""
        old = self._replay(n, attempt, cap)
        if old is not None:
            return old
        return self.commit(self.measure(n, attempt, cap=cap))

    def batch_at(self, n: int, attempts: list[int], cap: Optional[int]) -> list[Attempt]:
        return train_together([(self, n, a, cap) for a in attempts], batched=True)

    def _resume_state(self, n: int, attempt: int, cap: Optional[int], old: Optional[dict] = None) -> Optional[dict]:
        """The checkpoint of an attempt the journal (or `old`, its record handed to a worker process)
        has stopped by a smaller cap than `cap`, if it holds."""
        old = old or self.journal.get(n, attempt, self.trial or 0)
        if cap is None or old is None or old.get("stop_reason") != "cap":
            return None
        return load_checkpoint(checkpoint_path(self.journal.path.parent, n, attempt, self.trial),
                               {"config_hash": self.journal.chash, "steps": old.get("steps")})

    def _checkpointer(self, n: int, attempt: int):
        """on_cap for train_to_minimum: the capped attempt's state into checkpoints/ (train.caps)."""
        path = checkpoint_path(self.journal.path.parent, n, attempt, self.trial)

        def save(state: dict) -> None:
            save_checkpoint(path, state, {"config_hash": self.journal.chash, "code_hash": self.journal.code_hash,
                                          "steps": int(state["loop"]["steps"])})

        return save

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
        return self.commit(self._rec(n, attempt, seed, model, res, best, extra))

    def _rec(self, n: int, attempt: int, seed: int, model, res: FitResult, best: dict,
             extra: Optional[dict] = None) -> dict:
        """The attempt's journal record. `extra` (a past-fit attempt's: fitted_epoch, test_acc, ...)
        replaces what is computed here; otherwise the first fit is where the attempt stopped."""
        s = self.s
        test_acc = None
        if extra is None and (res.fitted or self.curve_path) and s.data.x_test.shape[0] > 0:
            test_acc, _ = evaluate(model, s.data.x_test, s.data.y_test)
        fit = {"fitted_epoch": res.epochs if res.fitted else None, "fitted_step": res.steps if res.fitted else None}
        return {**self._tag(), "n": n, "attempt": attempt, "seed": seed, **res.to_dict(), "test_acc": test_acc,
                "fitted": res.fitted, "cost": float(n * res.epochs), **fit, **best, **(extra or {})}

    def commit(self, rec: dict) -> Attempt:
        """Record a measured attempt: its fits.jsonl line and the logger's attempt record."""
        self.journal.append(rec)
        self.logger.log_attempt(rec)
        if rec.get("resumed_from_step") is not None:
            self.resumed += 1
        return Attempt(rec["n"], rec["attempt"], bool(rec["fitted"]), rec["cost"], rec["status"], rec)

    def __call__(self, n: int, attempt: int) -> Attempt:
        return self.at(n, attempt, None)

    def measure(self, n: int, attempt: int, forward: bool = True, cap: Optional[int] = None,
                old: Optional[dict] = None) -> dict:
        """Train (or solve) the attempt and evaluate it: its journal record; nothing is recorded
        (forward=False in a worker process: progress as heartbeat lines only, see TrialWorkers).
        `cap`: the ladder's rung to train it to; an attempt the journal has stopped by a smaller cap
        continues from its checkpoint (or, without one, is trained afresh)."""
        s = self.s
        seed, x, y, model = self._prepare(n, attempt)
        resume = self._resume_state(n, attempt, cap, old)
        ladder = cap is not None and s.recipe.budget.policy == "converge"
        best: dict = {}
        extra = None
        if hasattr(model, "fit_closed_form"):  # e.g. Zhang et al.'s construction, min-norm kernel
            res = fit_closed_form(model, x, y, s.recipe)
        elif past_fit(s.cfg):
            res, extra = self._train_past_fit(n, attempt, seed, x, y, model)
        else:
            if self.curve_path:
                drop_curve(self.curve_path, n, attempt, self.trial,
                           after_step=None if resume is None else int(resume["loop"]["steps"]))
            curve = self._curve_callback(n, attempt, x, y, best) if self.curve_path else None
            progress, close = self._progress_callback(n, attempt, forward, cap=cap)

            def both(model, m: dict) -> None:
                progress(model, m)
                curve(model, m)

            cb = both if progress and curve else (progress or curve)
            try:
                res = train_to_minimum(model, x, y, s.recipe, g=generator(seed + 1, s.device), seed=seed, on_epoch=cb,
                                       cap=cap, resume=resume,
                                       on_cap=self._checkpointer(n, attempt) if ladder else None)
                if resume is not None and res.stop_reason != "cap":  # decided: its checkpoint is spent
                    checkpoint_path(self.journal.path.parent, n, attempt, self.trial).unlink(missing_ok=True)
            finally:
                close()
        return self._rec(n, attempt, seed, model, res, best, extra)

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
        return self.batch_at(n, attempts, None)


_WORKER_ORACLES: list = []  # the oracles a forked worker process trains with (set before the fork)


def _worker_init() -> None:
    torch.set_num_threads(1)


def _worker_measure(key: tuple, old: Optional[dict]) -> tuple:
    trial, n, attempt, cap = key
    o = _WORKER_ORACLES[trial]
    return o.measure(n, attempt, forward=False, cap=cap, old=old), o.reparam_info


class TrialWorkers:
    """search.trial_workers > 1: the trials' attempts trained in forked worker processes (one torch
    thread each), each attempt as soon as its trial asks for it (search/trials.py, no lockstep).
    The parent replays journalled attempts and records each finished one (fits.jsonl, logger); the
    workers only train and evaluate. An attempt's result does not depend on the process that
    trains it (its seed, subset and init come from (seed, n, attempt, trial))."""

    def __init__(self, oracles: list[Oracle], workers: int):
        import multiprocessing
        import queue

        global _WORKER_ORACLES
        _WORKER_ORACLES = oracles
        self.oracles, self.done = oracles, queue.Queue()
        self.pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init)

    def start(self, key: tuple) -> Optional[Attempt]:
        """A journalled attempt at once; otherwise None, and the attempt goes to a worker."""
        trial, n, attempt, cap = key
        old = self.oracles[trial]._replay(n, attempt, cap)
        if old is None:
            # the journal's record of it (a capped attempt to resume): the worker's copy of the journal
            # is the one at the fork
            rec = self.oracles[trial].journal.get(n, attempt, trial)
            self.pool.apply_async(_worker_measure, (key, rec), callback=lambda r: self.done.put((key, r, None)),
                                  error_callback=lambda e: self.done.put((key, None, e)))
        return old

    def wait(self) -> tuple:
        """The next attempt a worker finished, recorded here: (key, Attempt)."""
        key, got, err = self.done.get()
        if err is not None:
            raise err
        rec, reparam_info = got
        o = self.oracles[key[0]]
        o.reparam_info = reparam_info
        return key, o.commit(rec)

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


def trial_workers(spec, trials: int, device: torch.device, curve: bool, batch: bool) -> int:
    """How many worker processes train a job's trials: `auto` uses one per core this job may use
    (OMP_NUM_THREADS when set, as the local launcher sets it, else the CPU affinity), at most one per
    trial, on a CPU, when the job has no curve.jsonl and no stacked attempts; 1 trains the trials
    in lockstep in this process (stacked where batch_attempts is on)."""
    import multiprocessing
    import os

    if spec == "auto":
        if trials < 2 or device.type != "cpu" or curve or batch or "fork" not in multiprocessing.get_all_start_methods():
            return 1
        cores = os.environ.get("OMP_NUM_THREADS", "")
        cores = int(cores) if cores.isdigit() else len(os.sched_getaffinity(0))
        return max(1, min(trials, cores // max(1, torch.get_num_threads())))
    require(isinstance(spec, int) and not isinstance(spec, bool) and spec >= 1, "search.trial_workers", spec,
            "must be a positive integer or 'auto'")
    require(spec == 1 or not (curve or batch), "search.trial_workers", spec,
            "worker processes need curve=false and search.batch_attempts=false (or trial_workers=1)")
    require(spec == 1 or "fork" in multiprocessing.get_all_start_methods(), "search.trial_workers", spec,
            "worker processes need the fork start method, which this platform lacks (use 1)")
    return min(int(spec), trials)


def train_together(items: list[tuple[Oracle, int, int, Optional[int]]], batched: bool) -> list[Attempt]:
    """(oracle, n, attempt, cap) items, any mix of trials and sizes: each size's attempts trained as one
    stacked model (fit/stacked.py) when `batched`, else one at a time; replayed attempts are not
    retrained. Falls back to one at a time where the procedure or model cannot be batched."""
    from .fit.stacked import batchable, train_batched

    out: dict[int, Attempt] = {}
    by_n: dict[int, list[int]] = {}
    for i, (o, n, a, cap) in enumerate(items):
        old = o._replay(n, a, cap)
        if old is not None:
            out[i] = old
        else:
            by_n.setdefault(int(n), []).append(i)
    for n, idxs in by_n.items():
        if batched and len(idxs) > 1 and not any(items[i][0].curve_path for i in idxs):
            # one size, one arch: the first attempt's model says whether the group can be stacked,
            # before the others are prepared (a group that cannot is trained one at a time)
            s = items[idxs[0]][0].s
            first = items[idxs[0]][0]._prepare(n, items[idxs[0]][2])
            if not hasattr(first[3], "fit_closed_form") and batchable([first[3]] * len(idxs), s.recipe):
                prepared = [first] + [items[i][0]._prepare(n, items[i][2]) for i in idxs[1:]]
                models = [p[3] for p in prepared]
                seeds = [p[0] for p in prepared]
                results = train_batched(models, [p[1] for p in prepared], [p[2] for p in prepared], s.recipe,
                                        [generator(sd + 1, s.device) for sd in seeds], seeds)
                for i, (seed, _, _, model), res in zip(idxs, prepared, results):
                    o, _, a, _ = items[i]
                    out[i] = o._record(n, a, seed, model, res, {"stacked": len(idxs)})
                continue
        for i in idxs:
            o, _, a, cap = items[i]
            out[i] = o.at(n, a, cap)
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
