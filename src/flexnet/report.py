"""`python -m flexnet.report DIR [DIR...] [--by KEY ...] [--wandb]`: tables and figures from sweeps.

Reads every `emc.json` under the given directories (any launcher, any mix of jobs) and
writes into `<first DIR>/report/` (or `--out`):

* `emc.csv` / `emc.md`: one row per job (the swept keys, parameters, EMC, bracket, fits,
  unverified attempts, accuracies, bits per parameter for random labels), and per group a
  power law EMC = a * params^b (least squares on log-log, bootstrap 95% interval for b);
* `emc_vs_params.png` (log-log, diagonal EMC = #params, Zhang et al.'s Theorem-1 line
  n = (p - d) / 2, one series per group, mean and standard error over seeds);
* `log_emc.png` (mean log10 EMC over model sizes per group, standard error over trials);
* `generalization.png` + `generalization.csv` (Pearson r) when semantic and random labels
  are both present;
* `double_descent.png` for `search=fixed` jobs (test and train error against parameter count at n,
  mean and SE band over seeds, the interpolation threshold marked, and the parameter count at which
  the EMC equals n, from `--emc-dir` (an EMC sweep) or `--emc-params`, as a vertical line);
* `double_descent_epochs.png` for jobs trained past the fit (`search.stop_at_fit=false`): test and
  train error against epoch at the interpolation threshold's size (and the largest size);
* `learning_curves.png`, `time_to_fit.png`, `corruption_test_error.png` from `curve.jsonl`
  of `search=fixed` jobs (Zhang et al. Fig. 1a-c).

Unfinished jobs (a job directory with `fits.jsonl` or `.hydra` but no `emc.json`) and
unreadable `emc.json` files are listed, never fatal. Groups: one per value of the `--by`
keys (default: every config key that varies across jobs, except `scaling.params` and seeds).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from .loggers import flatten, sweep_group_name
from .records import CURVE_FILE, FITS_FILE, RESULT_FILE, RESULT_NEUTRAL_KEYS

REPORT_DIR = "report"
# config keys that never define a result or a group
IGNORED_PREFIXES = (*RESULT_NEUTRAL_KEYS, "device")
# never default grouping keys: the x axis and the trials
NOT_GROUP_KEYS = ("scaling.params", "seed", "search.trials")  # trials: more seeds, not another series
CAP_KEY = "train.min_steps"  # swept in the emc_budget preset: the safety cap (converge) or schedule length (fixed)
RANDOM_LABELINGS = ("random_labels",)
CAP_FIGURE = "emc_vs_cap.png"  # drawn when the cap (train.min_steps) is swept, as in the emc_budget preset
MIN_INTERVAL_POINTS = 3  # no interval (power-law CI, error bar) from fewer points (sizes, seeds)
FIGURES = ("emc_vs_params.png", "log_emc.png", "generalization.png", "double_descent.png",
           "learning_curves.png", "time_to_fit.png", "corruption_test_error.png")
EPOCHS_FIGURE = "double_descent_epochs.png"  # drawn for jobs trained past the fit (search.stop_at_fit=false)
INTERPOLATION_TOL = 0.01  # interpolation threshold: the smallest size whose mean final train error is <= this


# ---------------------------------------------------------------- collecting

@dataclass
class Job:
    path: Path                 # the job directory
    result: dict
    config: dict               # flattened result config, ignored keys dropped
    group: str = ""
    curve: Optional[list] = None
    trial: Optional[int] = None  # search.trials > 1: which of the job's trials this row is

    @property
    def emc(self) -> int:
        return int(self.result.get("emc") or 0)

    @property
    def params(self) -> float:
        p = self.result.get("params") or {}
        return float(p.get("actual") or p.get("target") or float("nan"))

    @property
    def target(self) -> float:
        p = self.result.get("params") or {}
        return float(p.get("target") if p.get("target") is not None else self.params)

    @property
    def search(self) -> str:
        return str(self.result.get("search") or self.config.get("search.name") or "")

    @property
    def labeling(self) -> Optional[str]:
        return self.config.get("labeling.name")

    @property
    def seed(self) -> Any:
        """The trial's identity for means and SEs: the job's seed, "<seed>/t<k>" for trial k >= 1."""
        seed = self.config.get("seed")
        return seed if not self.trial else f"{seed}/t{self.trial}"

    @property
    def num_classes(self) -> Optional[int]:
        c = self.result.get("num_classes") or self.config.get("dataset.num_classes")
        return int(c) if c else None

    @property
    def input_dim(self) -> Optional[int]:
        shape = self.result.get("input_shape")
        return int(np.prod(shape)) if shape else None

    @property
    def threshold(self) -> float:
        return float(self.config.get("search.fit_threshold", 1.0) or 1.0)

    def bits_per_param(self) -> Optional[float]:
        if (self.labeling not in RANDOM_LABELINGS or self.search == "fixed" or not self.num_classes
                or not self.params > 0):
            return None
        return self.emc * math.log2(self.num_classes) / self.params


@dataclass
class Collection:
    jobs: list[Job] = field(default_factory=list)
    unfinished: list[Path] = field(default_factory=list)
    broken: list[tuple[Path, str]] = field(default_factory=list)


def _flat_config(cfg: dict) -> dict:
    flat = flatten(cfg or {})
    out = {}
    for k, v in flat.items():
        if k.split(".")[0] in IGNORED_PREFIXES:
            continue
        out[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out


def _skip(p: Path, root: Path) -> bool:
    parts = p.relative_to(root).parts[:-1]
    return any(x == REPORT_DIR or x == "wandb" or x.startswith(".") for x in parts)


def _trial_jobs(path: Path, res: dict) -> list[Job]:
    """A job's result as report rows: one, or with search.trials > 1 one per trial, each as a seed of
    its own ("<seed>/t<k>"; trial 0 keeps the job's seed), so means and SEs over seeds count trials."""
    config = _flat_config(res.get("config") or {})
    trials = res.get("trials") or []
    if len(trials) < 2:
        return [Job(path, res, config)]
    jobs = []
    for row in trials:
        k = int(row["trial"])
        own = {key: row.get(key) for key in ("emc", "bracket", "lower_bound", "fits", "cost_sample_epochs",
                                             "unverified", "test_accuracy", "train_accuracy")}
        jobs.append(Job(path, {**res, **own}, config, trial=k))
    return jobs


def collect(dirs: Iterable[Path]) -> Collection:
    col = Collection()
    seen: set[Path] = set()
    finished: set[Path] = set()
    candidates: set[Path] = set()
    for d in dirs:
        d = Path(d)
        if not d.exists():
            col.broken.append((d, "no such directory"))
            continue
        for p in sorted(d.rglob(RESULT_FILE)):
            if _skip(p, d) or p.resolve() in seen:
                continue
            seen.add(p.resolve())
            finished.add(p.parent.resolve())
            try:
                res = json.loads(p.read_text())
                if not isinstance(res, dict) or "emc" not in res or "params" not in res:
                    raise ValueError("missing 'emc' or 'params'")
            except (ValueError, OSError) as e:
                col.broken.append((p, str(e).splitlines()[0] if str(e) else type(e).__name__))
                continue
            col.jobs.extend(_trial_jobs(p.parent, res))
        for marker in (FITS_FILE, ".hydra", CURVE_FILE):
            for m in d.rglob(marker):
                if not _skip(m, d):
                    candidates.add(m.parent.resolve())
    broken_dirs = {p.parent.resolve() for p, _ in col.broken}
    col.unfinished = sorted(c for c in candidates if c not in finished and c not in broken_dirs)
    return col


def read_curve(path: Path) -> list[dict]:
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "step" in rec:
            out.append(rec)
    return out


# ---------------------------------------------------------------- grouping and statistics

def varying_keys(jobs: list[Job]) -> list[str]:
    """Config keys whose value differs across jobs, without keys that just copy the seed."""
    keys = sorted({k for j in jobs for k in j.config})
    out = []
    for k in keys:
        vals = {json.dumps(j.config.get(k), sort_keys=True, default=str) for j in jobs}
        if len(vals) < 2:
            continue
        if k != "seed" and k.endswith("seed") and all(j.config.get(k) == j.config.get("seed") for j in jobs):
            continue  # e.g. dataset.seed: ${seed}
        out.append(k)
    return out


def _short(k: str) -> str:
    return k[:-5] if k.endswith(".name") else k


OPTION_ORDER = ("dataset", "labeling", "arch", "scaling", "optimizer", "regularizer", "reparam", "search")


def _follows(jobs: list[Job], key: str, kept: list[str]) -> bool:
    """Is `key` a function of the `kept` keys over these jobs (one value of key per combination)?"""
    seen: dict[str, str] = {}
    for j in jobs:
        a = json.dumps([j.config.get(k) for k in kept], sort_keys=True, default=str)
        b = json.dumps(j.config.get(key), sort_keys=True, default=str)
        if seen.setdefault(a, b) != b:
            return False
    return True


def series_keys(jobs: list[Job], swept: list[str], exclude: Iterable[str] = NOT_GROUP_KEYS) -> list[str]:
    """The default series keys: of the keys that vary (but the x axis and the seeds), only those
    needed to tell the series apart. Group options first (dataset, labeling, arch, ...), then the
    other keys; a key that is a function of the ones kept so far names no new series and is left
    out: in a sweep over arch=mlp,vit, arch.embed_dim "varies" only because vit has it, and
    scaling.name because each family has its law. The series are the same, the names far shorter."""
    keys = [k for k in swept if k not in exclude]
    rank = {f"{g}.name": i for i, g in enumerate(OPTION_ORDER)}
    ordered = sorted(keys, key=lambda k: (0, rank[k]) if k in rank else ((1, 0) if k.endswith(".name") else (2, 0)))
    kept: list[str] = []
    for k in ordered:
        if not kept or not _follows(jobs, k, kept):
            kept.append(k)
    return [k for k in keys if k in kept]  # in the swept keys' order


def short_label(job: Job, by: list[str]) -> str:
    """A series' name in the figures: an option by its value (vit, random_labels), any other key by
    its last part (lr=0.01); the full key only where two last parts collide."""
    last = [k.split(".")[-1] for k in by if not k.endswith(".name")]
    parts = []
    for k in by:
        v = job.config.get(k)
        if v is None:
            continue
        if k.endswith(".name"):
            parts.append(_fmt(v))
        else:
            name = k.split(".")[-1]
            parts.append(f"{name if last.count(name) == 1 else k}={_fmt(v)}")
    return ", ".join(parts)


# the settings a reader needs to know what a figure shows, named in its title when they are fixed
TITLE_KEYS = (("dataset.name", "dataset"), ("labeling.name", "labels"), ("arch.name", "arch"),
              ("scaling.name", "scaling"), ("optimizer.name", "optimizer"), ("optimizer.lr", "lr"))


def fixed_settings(jobs: list[Job]) -> str:
    """The title line: dataset, labeling, arch (and scaling law), optimizer (and lr) where every job
    has the same one; the ones that vary are in the legend."""
    parts = []
    for key, word in TITLE_KEYS:
        vals = {json.dumps(j.config.get(key), default=str) for j in jobs}
        if len(vals) == 1 and jobs[0].config.get(key) is not None:
            parts.append(f"{word} {_fmt(jobs[0].config[key])}")
    return ", ".join(parts)


def group_label(job: Job, by: list[str]) -> str:
    if not by:
        return "all"
    parts = [f"{_short(k)}={_fmt(job.config.get(k))}" for k in by if job.config.get(k) is not None]
    return ", ".join(parts) or "all"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    if a.size == 1:
        return float(a[0]), float("nan")
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))


@dataclass
class PowerLaw:
    a: float
    b: float
    b_lo: float
    b_hi: float
    points: int


def fit_power_law(params: list[float], emc: list[float], n_boot: int = 2000, seed: int = 0) -> Optional[PowerLaw]:
    """EMC = a * params^b by least squares on log-log; percentile bootstrap (over jobs) for b, from
    at least MIN_INTERVAL_POINTS distinct sizes (else b_lo, b_hi are NaN)."""
    x = np.asarray(params, dtype=float)
    y = np.asarray(emc, dtype=float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    if lx.size < 2 or np.unique(lx).size < 2:
        return None
    b, loga = np.polyfit(lx, ly, 1)
    if np.unique(lx).size < MIN_INTERVAL_POINTS:  # a line through 2 sizes: no interval worth the name
        return PowerLaw(float(math.exp(loga)), float(b), float("nan"), float("nan"), int(lx.size))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, lx.size, lx.size)
        if np.unique(lx[i]).size < 2:
            continue
        boots.append(np.polyfit(lx[i], ly[i], 1)[0])
    lo, hi = (np.percentile(boots, [2.5, 97.5]) if boots else (float("nan"), float("nan")))
    return PowerLaw(float(math.exp(loga)), float(b), float(lo), float(hi), int(lx.size))


def relu_mlp(job: Job) -> bool:
    """Does Zhang et al.'s Theorem 1 (a 2-layer ReLU network with 2n + d weights fits any n points in
    d dimensions) speak about this job's model? For ReLU MLPs and the construction itself."""
    arch = job.config.get("arch.name") or job.result.get("arch")
    if arch == "zhang_construction":
        return True
    return arch == "mlp" and job.config.get("arch.activation", "relu") == "relu"


def corruption_level(job: Job) -> Optional[float]:
    """Label-corruption level for Zhang et al.'s Fig. 1b/c: semantic 0, random labels 1, corrupt p."""
    name = job.labeling
    if name == "semantic":
        return 0.0
    if name in RANDOM_LABELINGS:
        return 1.0
    if name == "corrupt":
        p = job.config.get("labeling.p")
        return float(p) if p is not None else None
    return None


def time_to_fit(curve: list[dict], threshold: float) -> Optional[int]:
    """Optimizer steps until the clean training accuracy first reaches the fit threshold."""
    for rec in sorted(curve, key=lambda r: r.get("step", 0)):
        acc = rec.get("train_acc")
        if acc is not None and acc >= threshold - 1e-12:
            return int(rec["step"])
    return None


# ---------------------------------------------------------------- double descent (search=fixed)

def interpolation_threshold(sizes: list[dict], tol: float = INTERPOLATION_TOL) -> Optional[dict]:
    """The interpolation threshold: the smallest size (a `_by_size` row) whose mean final train error
    over seeds is <= tol (~100% train accuracy); None when no size gets there."""
    for s in sorted(sizes, key=lambda s: s["params"]):
        if math.isfinite(s["train_error"]) and s["train_error"] <= tol + 1e-12:
            return s
    return None


def emc_crossing(points: list[tuple[float, float]], n: float) -> Optional[float]:
    """The parameter count at which the EMC reaches n, from (parameters, mean EMC) points of an EMC
    sweep: log-log interpolation between the first two consecutive sizes whose EMCs bracket n; None
    when no two sizes do (n outside the measured EMCs: no extrapolation)."""
    pts = sorted((float(p), float(e)) for p, e in points if p > 0 and e > 0)
    for (p0, e0), (p1, e1) in zip(pts, pts[1:]):
        if e0 == n:
            return p0
        if (e0 - n) * (e1 - n) < 0:
            t = (math.log(n) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp(math.log(p0) + t * (math.log(p1) - math.log(p0)))
    if pts and pts[-1][1] == n:
        return pts[-1][0]
    return None


def emc_line(emc_dirs: list[Path], n: float) -> dict:
    """Where the EMC equals the fixed n, from the EMC searches (search != fixed) under emc_dirs: mean
    EMC per parameter count over seeds, then emc_crossing. {'params', 'source', 'points', 'note'}."""
    col = collect(emc_dirs)
    jobs = [j for j in col.jobs if j.search != "fixed"]
    src = ", ".join(str(d) for d in emc_dirs)
    if not jobs:
        return {"params": None, "source": src, "points": [], "note": f"--emc-dir {src}: no EMC search results"}
    pts = [(s["params"], s["emc"]) for s in _by_size(jobs)]
    p = emc_crossing(pts, n)
    groups = {group_label(j, series_keys(jobs, varying_keys(jobs))) for j in jobs}
    note = None
    if p is None:
        note = (f"--emc-dir {src}: the mean EMCs ({', '.join(f'{e:.0f}' for _, e in pts)}) do not bracket "
                f"n = {n:g}: no EMC line drawn")
    elif len(groups) > 1:
        note = f"--emc-dir {src}: {len(groups)} series pooled for the EMC line"
    return {"params": p, "source": src, "points": [{"params": a, "emc": b} for a, b in pts], "note": note}


def epoch_curve(jobs: list[Job]) -> list[dict]:
    """Test and train error against epoch over the jobs' curves (their first attempt), mean and SE
    over the jobs at each epoch that has a test accuracy."""
    by_epoch: dict[int, dict[str, list[float]]] = defaultdict(lambda: {"test": [], "train": []})
    for j in jobs:
        for r in _first_attempt(j.curve or []):
            if r.get("test_acc") is None:
                continue
            by_epoch[int(r["epoch"])]["test"].append(1.0 - float(r["test_acc"]))
            if r.get("train_acc") is not None:
                by_epoch[int(r["epoch"])]["train"].append(1.0 - float(r["train_acc"]))
    out = []
    for e in sorted(by_epoch):
        te, tr = by_epoch[e]["test"], by_epoch[e]["train"]
        (tm, tse), (rm, rse) = mean_se(te), (mean_se(tr) if tr else (float("nan"), float("nan")))
        out.append({"epoch": e, "test_error": tm, "test_error_se": tse, "train_error": rm, "train_error_se": rse,
                    "jobs": len(te)})
    return out


def double_descent_summary(jobs: list[Job], tol: float = INTERPOLATION_TOL) -> dict:
    """One group's search=fixed jobs: per size test / train error (mean, SE), how many seeds fitted
    and when (fitted_epoch), the interpolation threshold and the size of the largest test error."""
    fixed = [j for j in jobs if j.search == "fixed"]
    sizes = _by_size(fixed)
    by_target: dict[float, list[Job]] = defaultdict(list)
    for j in fixed:
        by_target[j.target].append(j)
    for s in sizes:
        js = by_target[s["target"]]
        fe = [float(j.result["fitted_epoch"]) for j in js if j.result.get("fitted_epoch") is not None]
        s["fitted"] = len(fe)
        s["fitted_epoch"] = float(np.mean(fe)) if fe else None
    thr = interpolation_threshold(sizes, tol)
    finite = [s for s in sizes if math.isfinite(s["test_error"])]
    peak = max(finite, key=lambda s: s["test_error"]) if finite else None
    ns = sorted({j.config.get("search.n") for j in fixed if j.config.get("search.n") is not None})
    return {"n": ns[0] if len(ns) == 1 else ns, "tol": tol,
            "past_fit": any(j.result.get("past_fit") for j in fixed),
            "interpolation_threshold": thr["params"] if thr else None,
            "threshold_target": thr["target"] if thr else None,
            "peak_params": peak["params"] if peak else None, "peak_test_error": peak["test_error"] if peak else None,
            "sizes": sizes}


# ---------------------------------------------------------------- the report

@dataclass
class Report:
    out: Path
    collection: Collection
    by: list[str]
    swept: list[str]
    rows: list[dict]
    groups: "OrderedDict[str, dict]"
    generalization: dict
    figures: list[Path]
    notes: list[str]
    files: list[Path] = field(default_factory=list)  # every file written, figures included
    figure_text: dict = field(default_factory=dict)   # figure name -> its title, legend entries, x tick labels
    double_descent: dict = field(default_factory=dict)  # group -> threshold, peak, EMC line (search=fixed jobs)


ROW_FIELDS = ["params_target", "params_actual", "emc", "converged", "bracket_fitted", "bracket_failed",
              "lower_bound", "fits", "unverified", "diverged", "degenerate", "train_accuracy", "test_accuracy", "best_test_accuracy", "bits_per_param",
              "search", "seconds", "cost_sample_epochs"]


def _row(job: Job, swept: list[str], root: Path) -> dict:
    r = job.result
    br = r.get("bracket") or {}
    try:
        rel = str(job.path.relative_to(root))
    except ValueError:
        rel = str(job.path)
    row = {"job": rel, "group": job.group}
    if job.trial is not None:
        row["trial"] = job.trial
    for k in swept:
        row[k] = job.config.get(k)
    row.update({
        "params_target": (r.get("params") or {}).get("target"),
        "params_actual": (r.get("params") or {}).get("actual"),
        "emc": r.get("emc"),
        "bracket_fitted": br.get("fitted"),
        "bracket_failed": br.get("failed"),
        "lower_bound": r.get("lower_bound"),
        "converged": r.get("converged"),
        "fits": r.get("fits"),
        "unverified": r.get("unverified"),
        "diverged": r.get("diverged"),
        "degenerate": r.get("degenerate"),
        "train_accuracy": r.get("train_accuracy"),
        "test_accuracy": r.get("test_accuracy"),
        "best_test_accuracy": r.get("best_test_accuracy"),
        "bits_per_param": job.bits_per_param(),
        "search": job.search,
        "seconds": r.get("seconds"),
        "cost_sample_epochs": r.get("cost_sample_epochs"),
    })
    return row


def _by_size(jobs: list[Job]) -> list[dict]:
    """Per parameter-count target: mean/SE of EMC (and accuracies) over seeds."""
    sizes: dict[float, list[Job]] = defaultdict(list)
    for j in jobs:
        sizes[j.target].append(j)
    out = []
    for t in sorted(sizes):
        js = sizes[t]
        emc_m, emc_se = mean_se([j.emc for j in js])
        te = [1.0 - j.result["test_accuracy"] for j in js if j.result.get("test_accuracy") is not None]
        tr = [1.0 - j.result["train_accuracy"] for j in js if j.result.get("train_accuracy") is not None]
        te_m, te_se = mean_se(te)
        tr_m, tr_se = mean_se(tr)
        out.append({"target": t, "params": float(np.mean([j.params for j in js])), "emc": emc_m, "emc_se": emc_se,
                    "converged": all(j.result.get("converged") is True for j in js),
                    "test_error": te_m, "test_error_se": te_se, "train_error": tr_m, "train_error_se": tr_se,
                    "jobs": len(js)})
    return out


def _log_emc(jobs: list[Job]) -> tuple[float, float, int]:
    """Mean over model sizes of log10 EMC, per trial (seed); mean and SE over trials."""
    trials: dict[Any, list[float]] = defaultdict(list)
    for j in jobs:
        if j.emc > 0:
            trials[j.seed].append(math.log10(j.emc))
    m, se = mean_se([float(np.mean(v)) for v in trials.values()])
    return m, se, len(trials)


def _generalization(jobs: list[Job], by: list[str]) -> dict:
    """Pairs (semantic, random labels) with every other config key equal: percent increase of EMC
    from random to semantic labels against the semantic job's generalisation gap."""
    def pair_key(j: Job) -> str:
        return json.dumps({k: v for k, v in j.config.items() if not k.startswith("labeling.")},
                          sort_keys=True, default=str)

    sem = {pair_key(j): j for j in jobs if j.labeling == "semantic"}
    rnd = {pair_key(j): j for j in jobs if j.labeling in RANDOM_LABELINGS}
    if not sem or not rnd:
        return {}
    other_by = [k for k in by if not k.startswith("labeling.")]
    points = []
    for key in sorted(set(sem) & set(rnd)):
        s, r = sem[key], rnd[key]
        if r.emc <= 0 or s.result.get("test_accuracy") is None:
            continue
        train = s.result.get("train_accuracy")
        train = s.threshold if train is None else train
        points.append({"semantic_job": str(s.path), "random_job": str(r.path), "group": group_label(s, other_by),
                       "label": short_label(s, other_by),
                       "params": s.params, "seed": s.seed, "emc_semantic": s.emc, "emc_random": r.emc,
                       "emc_increase_pct": 100.0 * (s.emc - r.emc) / r.emc,
                       "generalization_gap": float(train) - float(s.result["test_accuracy"])})
    r_val = p_val = float("nan")
    if len(points) >= 3:
        from scipy.stats import pearsonr

        x = [p["generalization_gap"] for p in points]
        y = [p["emc_increase_pct"] for p in points]
        if np.std(x) > 0 and np.std(y) > 0:
            res = pearsonr(x, y)
            r_val, p_val = float(res[0]), float(res[1])
    return {"points": points, "r": r_val, "p": p_val}


def build_report(dirs: list[Path], by: Optional[list[str]] = None, out: Optional[Path] = None,
                 n_boot: int = 2000, converged_only: bool = False, interpolation_tol: float = INTERPOLATION_TOL,
                 emc_dirs: Optional[list[Path]] = None, emc_params: Optional[float] = None) -> Report:
    """interpolation_tol, emc_dirs, emc_params: the double-descent figure's interpolation threshold
    (mean final train error <= tol) and its EMC line: the parameter count where the EMC of the EMC
    searches under emc_dirs equals the fixed n, or emc_params given directly."""
    dirs = [Path(d) for d in dirs]
    root = dirs[0]
    out = Path(out) if out else root / REPORT_DIR
    col = collect(dirs)
    notes: list[str] = []
    if converged_only:  # keep the EMCs certified converged (emc.json "converged": true)
        left_out = [j for j in col.jobs if j.result.get("converged") is not True]
        col.jobs = [j for j in col.jobs if j.result.get("converged") is True]
        if left_out:
            notes.append(f"--converged-only: {len(left_out)} job(s) left out (EMC not converged, or no failed size)")
    jobs = col.jobs
    swept = varying_keys(jobs)
    if by is None:
        by = series_keys(jobs, swept)
    for j in jobs:
        j.group = group_label(j, by)
        cp = j.path / CURVE_FILE
        if cp.exists():
            j.curve = read_curve(cp)
            if j.trial is not None:  # one of a job's trials: its own curve lines
                j.curve = [r for r in j.curve if int(r.get("trial") or 0) == j.trial]
    jobs.sort(key=lambda j: (j.group, j.target, str(j.seed), str(j.path)))
    rows = [_row(j, swept, root) for j in jobs]
    groups: "OrderedDict[str, dict]" = OrderedDict()
    for j in jobs:
        groups.setdefault(j.group, {"jobs": []})["jobs"].append(j)
    for name, g in groups.items():
        js = g["jobs"]
        g["label"] = short_label(js[0], by) or "EMC"  # the figures' name of the series
        emc_jobs = [j for j in js if j.search != "fixed"]
        g["sizes"] = _by_size(js)
        g["emc_jobs"] = emc_jobs
        g["power_law"] = fit_power_law([j.params for j in emc_jobs], [j.emc for j in emc_jobs], n_boot) \
            if emc_jobs else None
        g["log_emc"] = _log_emc(emc_jobs) if emc_jobs else (float("nan"), float("nan"), 0)
        bpp = [j.bits_per_param() for j in emc_jobs if j.bits_per_param() is not None]
        g["bits_per_param"] = mean_se(bpp) if bpp else None
        g["unverified"] = sum(int(j.result.get("unverified") or 0) for j in js)
        g["converged"] = f"{sum(1 for j in emc_jobs if j.result.get('converged') is True)}/{len(emc_jobs)}"
        g["lower_bounds"] = sum(1 for j in emc_jobs if j.result.get("lower_bound"))
        if g["lower_bounds"]:
            notes.append(f"{name}: {g['lower_bounds']} job(s) fitted the whole pool (EMC is a lower bound there)")
    gen = _generalization([j for j in jobs if j.search != "fixed"], by)
    rep = Report(out, col, by, swept, rows, groups, gen, [], notes)
    dd = {name: double_descent_summary(g["jobs"], interpolation_tol) for name, g in groups.items()
          if any(j.search == "fixed" for j in g["jobs"])}
    if dd:
        n = next((d["n"] for d in dd.values() if isinstance(d["n"], (int, float))), None)
        if emc_params is not None:
            dd["_emc_line"] = {"params": float(emc_params), "source": "--emc-params", "n": n, "note": None}
        elif emc_dirs:
            if n is None:
                notes.append("--emc-dir: the search=fixed jobs have no single search.n: no EMC line drawn")
            else:
                dd["_emc_line"] = {**emc_line([Path(d) for d in emc_dirs], float(n)), "n": n}
        line = dd.get("_emc_line") or {}
        if line.get("note"):
            notes.append(line["note"])
    rep.double_descent = dd
    out.mkdir(parents=True, exist_ok=True)
    write_tables(rep)
    rep.figures = draw_figures(rep)
    rep.figure_text = getattr(rep.figures, "text", {})
    write_markdown(rep)
    rep.files += rep.figures
    return rep


# ---------------------------------------------------------------- tables

def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.{digits}g}"
    return str(v)


def _raw(v: Any) -> str:
    """Full precision for the CSV files (empty for missing / non-finite)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def write_tables(rep: Report) -> None:
    fields = ["job", *(["trial"] if any("trial" in r for r in rep.rows) else []), "group", *rep.swept, *ROW_FIELDS]
    with open(rep.out / "emc.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rep.rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    rep.files.append(rep.out / "emc.csv")
    with open(rep.out / "groups.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "jobs", "sizes", "mean_log10_emc", "mean_log10_emc_se", "trials", "power_law_a",
                    "power_law_b", "power_law_b_lo95", "power_law_b_hi95", "bits_per_param", "bits_per_param_se",
                    "unverified", "converged"])
        for name, g in rep.groups.items():
            pl = g["power_law"]
            bpp = g["bits_per_param"] or (None, None)
            lm, lse, nt = g["log_emc"]
            w.writerow([name, len(g["jobs"]), len(g["sizes"]), _raw(lm), _raw(lse), nt,
                        *([_raw(pl.a), _raw(pl.b), _raw(pl.b_lo), _raw(pl.b_hi)] if pl else [""] * 4),
                        _raw(bpp[0]), _raw(bpp[1]), g["unverified"], g["converged"]])
    if rep.generalization.get("points"):
        pts = rep.generalization["points"]
        with open(rep.out / "generalization.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(pts[0]))
            w.writeheader()
            w.writerows(pts)
        rep.files.append(rep.out / "generalization.csv")
    rep.files.insert(1, rep.out / "groups.csv")
    summary = {
        "jobs": len(rep.rows), "by": rep.by, "swept": rep.swept,
        "unfinished": [str(p) for p in rep.collection.unfinished],
        "broken": [{"path": str(p), "error": e} for p, e in rep.collection.broken],
        "groups": {name: {"jobs": len(g["jobs"]),
                          "power_law": (vars(g["power_law"]) if g["power_law"] else None),
                          "mean_log10_emc": g["log_emc"][0], "mean_log10_emc_se": g["log_emc"][1],
                          "bits_per_param": g["bits_per_param"][0] if g["bits_per_param"] else None,
                          "sizes": g["sizes"]}
                   for name, g in rep.groups.items()},
        "generalization": {k: v for k, v in rep.generalization.items() if k != "points"},
        "double_descent": rep.double_descent,
    }
    (rep.out / "report.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    rep.files.append(rep.out / "report.json")


def _json_default(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return str(v)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_markdown(rep: Report) -> None:
    col = rep.collection
    parts = [f"# EMC report\n\n{len(rep.rows)} finished job(s)"
             + (f", grouped by {', '.join(rep.by)}" if rep.by else "") + "."]
    if rep.groups:
        hdr = ["group", "jobs", "mean log10 EMC (SE)", "EMC = a·params^b", "b 95% CI", "bits/param", "unverified",
               "converged EMCs"]
        rows = []
        for name, g in rep.groups.items():
            pl = g["power_law"]
            lm, lse, _ = g["log_emc"]
            bpp = g["bits_per_param"]
            rows.append([name, len(g["jobs"]),
                         f"{lm:.3f} ({lse:.3f})" if math.isfinite(lm) and math.isfinite(lse)
                         else (f"{lm:.3f}" if math.isfinite(lm) else ""),
                         f"{pl.a:.3g}·p^{pl.b:.3f}" if pl else "",
                         f"[{pl.b_lo:.3f}, {pl.b_hi:.3f}]" if pl and math.isfinite(pl.b_lo) else "",
                         f"{bpp[0]:.3g}" if bpp else "", g["unverified"], g["converged"]])
        parts.append("## Groups\n\n" + _md_table(hdr, rows))
        cols = ["group", *[k for k in rep.swept if k not in rep.by], "params_target", "params_actual", "emc",
                "converged", "bracket_fitted", "bracket_failed", "fits", "unverified", "test_accuracy", "bits_per_param"]
        parts.append("## Jobs\n\n" + _md_table(cols, [[_num(r.get(c)) for c in cols] for r in rep.rows]))
    if CAP_KEY in rep.swept:
        lines = []
        for name, pts in cap_series(rep.collection.jobs, rep.swept).items():
            lines += [[name, p["cap"], f"{p['emc']:.0f}", "yes" if p["converged"] else "no",
                       "" if p["change"] is None else f"{100 * p['change']:+.1f}%"] for p in pts]
        parts.append("## EMC against the cap\n\n" + _md_table(["series", CAP_KEY, "EMC", "converged",
                                                               "change from the previous cap"], lines))
    gen = rep.generalization
    if gen.get("points"):
        r = gen["r"]
        parts.append(f"## Generalization\n\nPearson r = {r:.3f} (p = {gen['p']:.3g}) between the percent "
                     f"increase of EMC from random to semantic labels and the generalization gap, over "
                     f"{len(gen['points'])} pair(s)." if math.isfinite(r) else
                     f"## Generalization\n\n{len(gen['points'])} pair(s): too few (or constant) for a correlation.")
    dd_part = _double_descent_markdown(rep)
    if dd_part:
        parts.append(dd_part)
    if rep.figures:
        parts.append("## Figures\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in rep.figures))
    if col.unfinished:
        parts.append("## Unfinished jobs (no emc.json)\n\n" + "\n".join(f"- `{p}`" for p in col.unfinished))
    if col.broken:
        parts.append("## Unreadable results\n\n" + "\n".join(f"- `{p}`: {e}" for p, e in col.broken))
    if rep.notes:
        parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in rep.notes))
    (rep.out / "emc.md").write_text("\n\n".join(parts) + "\n")
    rep.files.append(rep.out / "emc.md")


def _pm(m: float, se: float) -> str:
    if not math.isfinite(m):
        return ""
    return f"{m:.3f} ± {se:.3f}" if math.isfinite(se) else f"{m:.3f}"


def _double_descent_markdown(rep: Report) -> str:
    """Per group of search=fixed jobs: error against size, who fitted and when, threshold, peak, EMC line."""
    dd = {k: v for k, v in rep.double_descent.items() if not k.startswith("_")}
    if not dd:
        return ""
    line = rep.double_descent.get("_emc_line") or {}
    parts = ["## Double descent"]
    for name, d in dd.items():
        rows = [[_num(s["params"]), _pm(s["test_error"], s["test_error_se"]), _pm(s["train_error"], s["train_error_se"]),
                 f"{s['fitted']}/{s['jobs']}", "" if s["fitted_epoch"] is None else f"{s['fitted_epoch']:.0f}"]
                for s in d["sizes"]]
        thr = d["interpolation_threshold"]
        head = (f"**{rep.groups[name]['label']}** (n = {d['n']}" + (", trained past the fit" if d["past_fit"] else "")
                + f"): interpolation threshold (mean train error <= {d['tol']:g}) "
                + (f"at {thr:.0f} parameters" if thr is not None else "not reached")
                + (f"; largest test error {d['peak_test_error']:.3f} at {d['peak_params']:.0f} parameters"
                   if d["peak_params"] is not None else "") + ".")
        parts.append(head + "\n\n" + _md_table(["parameters", "test error (SE)", "train error (SE)", "fitted",
                                                 "mean fitted epoch"], rows))
    if line.get("params") is not None:
        parts.append(f"EMC = n = {line.get('n')} at {line['params']:.0f} parameters ({line['source']}).")
    return "\n\n".join(parts)


# ---------------------------------------------------------------- figures

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(names: Iterable[str]) -> dict:
    plt = _plt()
    cyc = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cyc[i % len(cyc)] for i, n in enumerate(names)}


def _subplots(width: float = 7.0, height: float = 4.5):
    """A figure with constrained layout: room for the titles, tick labels and the legend outside the
    axes is made by matplotlib, without tight_layout's warnings."""
    return _plt().subplots(figsize=(width, height), layout="constrained")


def _title(ax, rep: Report, what: str) -> None:
    """What the figure shows, and below it the settings every job shares (dataset, labels, arch, optimizer)."""
    fixed = fixed_settings(rep.collection.jobs)
    # packed into lines that fit the figure (a narrow figure cut the settings off at its edge)
    room = max(30, int(ax.figure.get_size_inches()[0] * 13))
    lines: list[str] = []
    for part in fixed.split(", ") if fixed else []:
        if lines and len(lines[-1]) + 2 + len(part) <= room:
            lines[-1] += ", " + part
        else:
            lines.append(part)
    ax.set_title("\n".join([what, *lines]), fontsize=9)


def _legend(fig, ax) -> None:
    """The legend outside the axes, to the right (never over the data); none for an empty one."""
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside right upper", fontsize=7)


def _err(se: float, n: int) -> float:
    """An error bar only from MIN_INTERVAL_POINTS seeds or more."""
    return se if n >= MIN_INTERVAL_POINTS and math.isfinite(se) else 0.0


class Figures(list):
    """The figures drawn (paths), and what each one says: title and legend entries (Report.figure_text)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, dict] = {}


def _save(fig, path: Path, figures: list[Path]) -> None:
    if isinstance(figures, Figures):
        figures.text[path.name] = {"title": fig.axes[0].get_title(),
                                   "legend": [t.get_text() for leg in fig.legends for t in leg.get_texts()],
                                   "ticks": [t.get_text() for t in fig.axes[0].get_xticklabels()]}
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    figures.append(path)


def draw_figures(rep: Report) -> list[Path]:
    figs = Figures()
    colors = _colors(rep.groups)
    emc_groups = {n: g for n, g in rep.groups.items() if g["emc_jobs"]}
    if emc_groups:
        _fig_emc_vs_params(rep, emc_groups, colors, figs)
        if CAP_KEY in rep.swept:
            _fig_emc_vs_cap(rep, figs)
        _fig_log_emc(rep, emc_groups, colors, figs)
    if rep.generalization.get("points"):
        _fig_generalization(rep, figs)
    fixed = {n: g for n, g in rep.groups.items() if any(j.search == "fixed" for j in g["jobs"])}
    if fixed:
        _fig_double_descent(rep, fixed, colors, figs)
        _fig_double_descent_epochs(rep, fixed, colors, figs)
        curve_jobs = [j for g in fixed.values() for j in g["jobs"] if j.search == "fixed" and j.curve]
        if curve_jobs:
            _fig_learning_curves(rep, curve_jobs, colors, figs)
            _fig_corruption(rep, [j for g in fixed.values() for j in g["jobs"] if j.search == "fixed"], figs)
    return figs


def _fig_emc_vs_params(rep: Report, groups: dict, colors: dict, figs: list[Path]) -> None:
    fig, ax = _subplots(9.0, 5.0)
    xs_all, ys_all = [], []
    for name, g in groups.items():
        sizes = _by_size(g["emc_jobs"])
        pts = [s for s in sizes if s["emc"] > 0]
        if not pts:
            continue
        x = np.array([s["params"] for s in pts])
        y = np.array([s["emc"] for s in pts])
        err = np.array([_err(s["emc_se"], s["jobs"]) for s in pts])
        pl = g["power_law"]
        ci = f" [{pl.b_lo:.2f}, {pl.b_hi:.2f}]" if pl and math.isfinite(pl.b_lo) else ""
        label = g["label"] + (f"  (b={pl.b:.2f}{ci})" if pl else "")
        ax.errorbar(x, y, yerr=err, fmt="-", color=colors[name], capsize=3, label=label)
        _converged_markers(ax, x, y, [s["converged"] for s in pts], colors[name])
        if pl:
            xx = np.geomspace(x.min(), x.max(), 50)
            ax.plot(xx, pl.a * xx ** pl.b, "--", color=colors[name], lw=1, alpha=0.7)
        xs_all += list(x)
        ys_all += list(y)
    if xs_all:
        lo = min(min(xs_all), min(ys_all)) / 1.5
        hi = max(xs_all) * 1.5
        xx = np.geomspace(lo, hi, 100)
        ax.plot(xx, xx, ":", color="black", lw=1, label="EMC = #params")
        # Zhang et al.'s Theorem 1 is about 2-layer ReLU networks: drawn for MLP (ReLU) series only
        dims = sorted({j.input_dim for g in groups.values() for j in g["emc_jobs"] if j.input_dim and relu_mlp(j)})
        for d in dims:
            xt = xx[xx > d * 1.05]
            if xt.size:
                ax.plot(xt, (xt - d) / 2, "-.", color="gray", lw=1,
                        label=f"2-layer ReLU construction, n = (p - d)/2, d = {d}")
        ax.set_ylim(min(ys_all) / 2, max(max(ys_all), max(xs_all)) * 1.5)
    _finish_loglog(fig, ax, rep, figs, "emc_vs_params.png", "parameters", "EMC (largest n fitted)",
                   "EMC against parameter count (mean ± SE over seeds; hollow: not converged)")


def cap_series(jobs: list[Job], swept: list[str]) -> "OrderedDict[str, list[dict]]":
    """EMC against the cap (train.min_steps) per series (every other swept key but seeds/params):
    mean over seeds, converged only if every seed's EMC is, and the change from the previous cap."""
    emc_jobs = [j for j in jobs if j.search != "fixed"]
    keys = series_keys(emc_jobs, swept, (*NOT_GROUP_KEYS, CAP_KEY))
    series: "OrderedDict[str, dict]" = OrderedDict()
    for j in sorted(emc_jobs, key=lambda j: group_label(j, keys)):
        series.setdefault(short_label(j, keys) or "EMC", defaultdict(list))[j.config.get(CAP_KEY)].append(j)
    out: "OrderedDict[str, list[dict]]" = OrderedDict()
    for name, by_cap in series.items():
        pts, prev = [], None
        for cap in sorted(by_cap):
            js = by_cap[cap]
            emc = float(np.mean([j.emc for j in js]))
            pts.append({"cap": cap, "emc": emc, "jobs": len(js),
                        "converged": all(j.result.get("converged") is True for j in js),
                        "change": None if prev in (None, 0) else emc / prev - 1.0})
            prev = emc
        out[name] = pts
    return out


def _fig_emc_vs_cap(rep: Report, figs: list[Path]) -> None:
    series = cap_series(rep.collection.jobs, rep.swept)
    colors = _colors(series)
    fig, ax = _subplots(9.0, 5.0)
    for name, pts in series.items():
        x = np.array([p["cap"] for p in pts], dtype=float)
        y = np.array([p["emc"] for p in pts])
        ax.plot(x, y, "--" if "fixed" in name else "-", color=colors[name], label=name)
        _converged_markers(ax, x, y, [p["converged"] for p in pts], colors[name])
    _finish_loglog(fig, ax, rep, figs, CAP_FIGURE, "cap (train.min_steps): converge = safety cap, fixed = "
                   "schedule length", "EMC", "EMC against the step budget (filled: converged EMC, hollow: not)",
                   xbase=2)


def _finish_loglog(fig, ax, rep: Report, figs: list[Path], name: str, xlabel: str, ylabel: str, title: str,
                   xbase: int = 10) -> None:
    """Log-log axes, labels, the title naming the fixed settings, the legend outside, saved as `name`."""
    ax.set_xscale("log", base=xbase)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _title(ax, rep, title)
    _legend(fig, ax)
    ax.grid(True, which="both", alpha=0.2)
    _save(fig, rep.out / name, figs)


def _converged_markers(ax, x: np.ndarray, y: np.ndarray, converged: list, color) -> None:
    """Filled markers for converged EMCs (emc.json "converged": true), hollow ones for the rest."""
    conv = np.array([c is True for c in converged], dtype=bool)
    ax.plot(x[conv], y[conv], "o", color=color, ms=5)
    ax.plot(x[~conv], y[~conv], "o", mfc="white", mec=color, ms=5)


def _fig_log_emc(rep: Report, groups: dict, colors: dict, figs: list[Path]) -> None:
    names = [n for n, g in groups.items() if math.isfinite(g["log_emc"][0])]
    fig, ax = _subplots(max(5.0, 1.2 * len(names) + 2), 4.5)
    means = [groups[n]["log_emc"][0] for n in names]
    ses = [_err(groups[n]["log_emc"][1], groups[n]["log_emc"][2]) for n in names]
    ax.bar(range(len(names)), means, yerr=ses, capsize=4, color=[colors[n] for n in names])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([groups[n]["label"] for n in names], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean log10 EMC over model sizes")
    _title(ax, rep, "Mean log EMC per group (SE over trials)")
    _save(fig, rep.out / "log_emc.png", figs)


def _fig_generalization(rep: Report, figs: list[Path]) -> None:
    gen = rep.generalization
    pts = gen["points"]
    fig, ax = _subplots(8.0, 4.5)
    names = list(dict.fromkeys(p["group"] for p in pts))
    cols = _colors(names)
    for n in names:
        sel = [p for p in pts if p["group"] == n]
        ax.scatter([p["generalization_gap"] for p in sel], [p["emc_increase_pct"] for p in sel],
                   color=cols[n], label=sel[0]["label"] or None, s=25)
    x = np.array([p["generalization_gap"] for p in pts])
    y = np.array([p["emc_increase_pct"] for p in pts])
    title = "EMC increase (random → semantic labels) vs generalization gap"
    if math.isfinite(gen["r"]):
        b, a = np.polyfit(x, y, 1)
        xx = np.linspace(x.min(), x.max(), 10)
        ax.plot(xx, a + b * xx, "--", color="black", lw=1)
        title += f"\nPearson r = {gen['r']:.3f} (p = {gen['p']:.2g}, {len(pts)} pairs)"
    _title(ax, rep, title)
    ax.set_xlabel("generalization gap (train − test accuracy, semantic labels)")
    ax.set_ylabel("EMC increase from random to semantic labels (%)")
    if len(names) > 1:
        _legend(fig, ax)
    ax.grid(True, alpha=0.2)
    _save(fig, rep.out / "generalization.png", figs)


def _band(ax, x, m, se, jobs, color, fmt: str, label: Optional[str], ms: float = 4) -> None:
    """A mean line with a +-SE band (the band only from MIN_INTERVAL_POINTS seeds)."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    e = np.array([_err(s, k) for s, k in zip(se, jobs)], dtype=float)
    ax.plot(x, m, fmt, color=color, ms=ms, label=label)
    if np.any(e > 0):
        ax.fill_between(x, m - e, m + e, color=color, alpha=0.18, lw=0)


def _prefix(label: str) -> str:
    return "" if label in ("", "EMC") else f"{label}: "


def _fig_double_descent(rep: Report, groups: dict, colors: dict, figs: list[Path]) -> None:
    """Test error (solid) and train error (dotted) against parameters, mean and SE band over seeds; the
    interpolation threshold of each series (dashed) and where the EMC equals n (dash-dot, black)."""
    fig, ax = _subplots(9.0, 4.5)
    ns = sorted({j.config.get("search.n") for g in groups.values() for j in g["jobs"] if j.search == "fixed"},
                key=str)
    past = False
    for name, g in groups.items():
        d = rep.double_descent.get(name) or double_descent_summary(g["jobs"])
        past = past or d["past_fit"]
        pts = [s for s in d["sizes"] if math.isfinite(s["test_error"])]
        if not pts:
            continue
        pre = _prefix(g["label"])
        _band(ax, [s["params"] for s in pts], [s["test_error"] for s in pts], [s["test_error_se"] for s in pts],
              [s["jobs"] for s in pts], colors[name], "o-", f"{pre}test error")
        tr = [s for s in pts if math.isfinite(s["train_error"])]
        if tr:
            _band(ax, [s["params"] for s in tr], [s["train_error"] for s in tr], [s["train_error_se"] for s in tr],
                  [s["jobs"] for s in tr], colors[name], "x:", f"{pre}train error")
        if d["interpolation_threshold"] is not None:
            ax.axvline(d["interpolation_threshold"], color=colors[name], ls="--", lw=1,
                       label=f"{pre}interpolation threshold: {d['interpolation_threshold']:.0f} params "
                             f"(train error <= {d['tol']:g})")
    line = rep.double_descent.get("_emc_line") or {}
    if line.get("params") is not None:
        ax.axvline(line["params"], color="black", ls="-.", lw=1.2,
                   label=f"EMC = n at {line['params']:.0f} params ({'EMC search' if line['source'] != '--emc-params' else 'given'})")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("error")
    what = "Test and train error against parameter count at fixed n = " + ", ".join(str(n) for n in ns)
    _title(ax, rep, what + ("\n(trained a fixed length past interpolation; mean ± SE over seeds)" if past
                             else " (mean ± SE over seeds)"))
    _legend(fig, ax)
    ax.grid(True, which="both", alpha=0.2)
    _save(fig, rep.out / "double_descent.png", figs)


def _epoch_pick(g: dict, d: dict) -> tuple[list[Job], str]:
    """The jobs at the size nearest the interpolation threshold (the threshold's own size, else the
    largest size, which came nearest), and what the choice was."""
    fixed = [j for j in g["jobs"] if j.search == "fixed" and j.curve]
    if not fixed:
        return [], ""
    if d["threshold_target"] is not None:
        t, why = d["threshold_target"], "at the interpolation threshold"
    else:
        t, why = max(j.target for j in fixed), "largest size (no size reached the threshold)"
    return [j for j in fixed if j.target == t], why


def _fig_double_descent_epochs(rep: Report, groups: dict, colors: dict, figs: list[Path]) -> None:
    """Epoch-wise: test error (solid) and train error (dotted) against epoch, mean and SE band over seeds,
    for the size at the interpolation threshold; the largest size thinner for comparison; the mean
    epoch of the first fit (dotted vertical)."""
    fig, ax = _subplots(9.0, 4.5)
    drawn = []
    for name, g in groups.items():
        d = rep.double_descent.get(name)
        if not d or not d["past_fit"]:
            continue
        js, why = _epoch_pick(g, d)
        c = epoch_curve(js)
        if not c:
            continue
        pre = _prefix(g["label"])
        params = float(np.mean([j.params for j in js]))
        x = [r["epoch"] for r in c]
        _band(ax, x, [r["test_error"] for r in c], [r["test_error_se"] for r in c], [r["jobs"] for r in c],
              colors[name], "-", f"{pre}{params:.0f} params ({why}): test error", ms=0)
        tr = [r for r in c if math.isfinite(r["train_error"])]
        _band(ax, [r["epoch"] for r in tr], [r["train_error"] for r in tr], [r["train_error_se"] for r in tr],
              [r["jobs"] for r in tr], colors[name], ":", f"{pre}{params:.0f} params: train error", ms=0)
        fe = [j.result["fitted_epoch"] for j in js if j.result.get("fitted_epoch") is not None]
        if fe:
            ax.axvline(float(np.mean(fe)), color=colors[name], ls=(0, (1, 3)), lw=1,
                       label=f"{pre}first fit, mean epoch {np.mean(fe):.0f} ({len(fe)}/{len(js)} seeds)")
        top = max(j.target for j in g["jobs"] if j.search == "fixed" and j.curve)
        big = [j for j in g["jobs"] if j.search == "fixed" and j.curve and j.target == top]
        if big and top != js[0].target:
            cb = epoch_curve(big)
            ax.plot([r["epoch"] for r in cb], [r["test_error"] for r in cb], "-", color=colors[name], lw=0.8,
                    alpha=0.5, label=f"{pre}{np.mean([j.params for j in big]):.0f} params (largest): test error")
        drawn.append(name)
    if not drawn:
        _plt().close(fig)
        return
    ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error")
    _title(ax, rep, "Epoch-wise: error against epoch at the interpolation threshold\n(mean ± SE over seeds)")
    _legend(fig, ax)
    ax.grid(True, which="both", alpha=0.2)
    _save(fig, rep.out / EPOCHS_FIGURE, figs)


def _curve_pick(jobs: list[Job]) -> list[Job]:
    """Learning curves: per group, the jobs at the group's largest parameter count (all seeds)."""
    by_group: dict[str, list[Job]] = defaultdict(list)
    for j in jobs:
        by_group[j.group].append(j)
    out = []
    for js in by_group.values():
        top = max(j.target for j in js)
        out += [j for j in js if j.target == top]
    return out


def _first_attempt(curve: list[dict]) -> list[dict]:
    if not curve:
        return []
    key = (curve[0].get("n"), curve[0].get("attempt"))
    return [r for r in curve if (r.get("n"), r.get("attempt")) == key]


def _fig_learning_curves(rep: Report, jobs: list[Job], colors: dict, figs: list[Path]) -> None:
    fig, ax = _subplots(9.0, 4.5)
    labelled = set()
    for j in _curve_pick(jobs):
        c = [r for r in _first_attempt(j.curve) if r.get("train_loss") is not None]
        if not c:
            continue
        label = ", ".join(x for x in (rep.groups[j.group]["label"], f"{j.params:.0f} params") if x != "EMC")
        ax.plot([r["step"] for r in c], [r["train_loss"] for r in c], color=colors[j.group], lw=1.2,
                label=None if label in labelled else label)
        labelled.add(label)
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel("training loss")
    _title(ax, rep, "Learning curves (cf. Zhang et al. 2017, Fig. 1a)")
    _legend(fig, ax)
    ax.grid(True, alpha=0.2)
    _save(fig, rep.out / "learning_curves.png", figs)


def _fig_corruption(rep: Report, jobs: list[Job], figs: list[Path]) -> None:
    """Fig. 1b (time to fit) and 1c (test error) against label-corruption level."""
    jobs = [j for j in jobs if corruption_level(j) is not None]
    if len({corruption_level(j) for j in jobs}) < 2:
        return
    other = [k for k in rep.by if not k.startswith("labeling.")]
    series: dict[str, list[Job]] = defaultdict(list)
    for j in jobs:
        series[", ".join(x for x in (short_label(j, other), f"{j.target:g} params") if x)].append(j)
    names = sorted(series, key=lambda s: (s.split(",")[:-1], min(j.target for j in series[s])))
    cols = _colors(names)

    def per_level(js: list[Job], value) -> tuple[list, list, list]:
        lv: dict[float, list[float]] = defaultdict(list)
        for j in js:
            v = value(j)
            if v is not None:
                lv[corruption_level(j)].append(v)
        xs = sorted(lv)
        ms = [mean_se(lv[x]) for x in xs]
        return xs, [m for m, _ in ms], [_err(s, len(lv[x])) for x, (_, s) in zip(xs, ms)]

    fig, ax = _subplots(8.5, 4.5)
    missing = 0
    for n in names:
        js = [j for j in series[n] if j.curve]
        missing += sum(1 for j in js if time_to_fit(_first_attempt(j.curve), j.threshold) is None)
        xs, ms, ses = per_level(js, lambda j: time_to_fit(_first_attempt(j.curve), j.threshold))
        if xs:
            ax.errorbar(xs, ms, yerr=ses, fmt="o-", color=cols[n], capsize=3, ms=4, label=n)
    ax.set_xlabel("label corruption (0: true labels, 1: random labels)")
    ax.set_ylabel("optimizer steps to fit (train acc ≥ threshold)")
    _title(ax, rep, "Time to fit (cf. Zhang et al. 2017, Fig. 1b)"
           + (f"; {missing} run(s) never reached the threshold (left out)" if missing else ""))
    _legend(fig, ax)
    ax.grid(True, alpha=0.2)
    _save(fig, rep.out / "time_to_fit.png", figs)
    if missing:
        rep.notes.append(f"time_to_fit.png: {missing} run(s) never reached the fit threshold and are left out")

    fig, ax = _subplots(8.5, 4.5)
    best_drawn = False
    for n in names:
        xs, ms, ses = per_level(series[n], lambda j: None if j.result.get("test_accuracy") is None
                                else 1.0 - j.result["test_accuracy"])
        if xs:
            ax.errorbar(xs, ms, yerr=ses, fmt="o-", color=cols[n], capsize=3, ms=4, label=n)
        xs, ms, _ = per_level(series[n], lambda j: None if j.result.get("best_test_accuracy") is None
                              else 1.0 - j.result["best_test_accuracy"])
        if xs:
            best_drawn = True
            ax.plot(xs, ms, "x:", color=cols[n])
    if best_drawn:
        ax.plot([], [], "x:", color="gray", label="dotted: best along training")
    ax.set_xlabel("label corruption (0: true labels, 1: random labels)")
    ax.set_ylabel("test error")
    _title(ax, rep, "Test error against label corruption (cf. Zhang et al. 2017, Fig. 1c)")
    _legend(fig, ax)
    ax.grid(True, alpha=0.2)
    _save(fig, rep.out / "corruption_test_error.png", figs)


# ---------------------------------------------------------------- W&B upload

def report_group(rep: Report, dirs: list[Path]) -> str:
    """The sweep's W&B group: logger.group of the jobs if they agree, else the sweep directory's name."""
    jobs = rep.collection.jobs
    cfg_groups = {(j.result.get("config") or {}).get("logger", {}).get("group") for j in jobs}
    if len(cfg_groups) == 1 and None not in cfg_groups:
        return str(cfg_groups.pop())
    sweep = {sweep_group_name((j.result.get("job") or {}).get("sweep_dir")) for j in jobs}
    sweep.discard(None)
    if len(sweep) == 1:
        return sweep.pop()
    return sweep_group_name(str(Path(dirs[0]).resolve())) or "flexnet"


def upload_wandb(rep: Report, dirs: list[Path], project: Optional[str] = None, entity: Optional[str] = None,
                 group: Optional[str] = None, mode: str = "auto", init_timeout: float = 30.0,
                 finish_timeout: float = 60.0) -> Optional[Path]:
    """Log the aggregated EMC-curve table, line plots and figures to a `report` run in the sweep's group.
    Returns the local run directory, or None if W&B could not be used (never raises)."""
    from .loggers import wandb_mode

    try:
        import wandb
    except ImportError:
        print("flexnet.report: wandb is not installed; skipping upload", file=sys.stderr)
        return None
    lcfg = next(((j.result.get("config") or {}).get("logger") or {} for j in rep.collection.jobs
                 if ((j.result.get("config") or {}).get("logger") or {}).get("name") == "wandb"), {})
    project = project or lcfg.get("project") or "flexnet"
    entity = entity or lcfg.get("entity")
    group = group or report_group(rep, dirs)
    m = wandb_mode(mode if mode != "auto" else lcfg.get("mode", "auto"))
    kw = dict(project=project, entity=entity, group=group, job_type="report", name=f"report-{group}",
              dir=str(rep.out), config={"by": rep.by, "dirs": [str(d) for d in dirs]}, reinit="finish_previous")

    def settings(mode: str):
        return wandb.Settings(mode=mode, init_timeout=float(init_timeout), finish_timeout=float(finish_timeout),
                              silent=True, x_disable_stats=True)

    try:
        try:
            run = wandb.init(settings=settings(m), **kw)
        except Exception:
            if m != "online":
                raise
            m = "offline"
            run = wandb.init(settings=settings(m), **kw)
        rows = [[r.get(k) for k in ("group", "params_target", "params_actual", "emc", "test_accuracy", "seed")]
                for r in rep.rows]
        jobs_table = wandb.Table(columns=["group", "params_target", "params_actual", "emc", "test_accuracy", "seed"],
                                 data=rows)
        curve_rows = [[name, s["params"], s["emc"], s["emc_se"] if math.isfinite(s["emc_se"]) else None,
                       s["test_error"] if math.isfinite(s["test_error"]) else None]
                      for name, g in rep.groups.items() for s in g["sizes"]]
        curve = wandb.Table(columns=["group", "params", "emc_mean", "emc_se", "test_error"], data=curve_rows)
        log = {"emc_jobs": jobs_table, "emc_curve": curve,
               "emc_vs_params_line": wandb.plot.line(curve, "params", "emc_mean", stroke="group",
                                                     title="EMC against parameter count")}
        if any(math.isfinite(s["test_error"]) for g in rep.groups.values() for s in g["sizes"]):
            log["test_error_line"] = wandb.plot.line(curve, "params", "test_error", stroke="group",
                                                     title="Test error against parameter count")
        for p in rep.figures:
            log[f"figures/{p.stem}"] = wandb.Image(str(p))
        run.log(log)
        for name, g in rep.groups.items():
            pl = g["power_law"]
            if pl:
                run.summary[f"power_law/{name}/b"] = pl.b
                run.summary[f"power_law/{name}/a"] = pl.a
        if math.isfinite(rep.generalization.get("r", float("nan"))):
            run.summary["generalization/pearson_r"] = rep.generalization["r"]
        run_dir = Path(run.dir).parent
        run.finish()
        if m == "offline":
            print(f"W&B offline report run saved; upload with: wandb sync {run_dir}")
        return run_dir
    except Exception as e:  # the report's files are written already; W&B is optional
        print(f"flexnet.report: W&B upload skipped: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return None


# ---------------------------------------------------------------- CLI

def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flexnet.report",
                                 description="Aggregate flexnet sweep directories into tables and figures.")
    ap.add_argument("dirs", nargs="+", type=Path, help="sweep directories (searched recursively for emc.json)")
    ap.add_argument("--by", nargs="+", action="extend", default=None, metavar="KEY",
                    help="config keys that define the series (e.g. labeling.name); default: every key that varies "
                         "across jobs except scaling.params and seeds. Short form 'labeling' = 'labeling.name'.")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: DIR/report)")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the power-law interval")
    ap.add_argument("--converged-only", action="store_true",
                    help="keep only EMCs certified converged (emc.json 'converged': true; docs/convergence.md)")
    ap.add_argument("--interpolation-tol", type=float, default=INTERPOLATION_TOL, metavar="TOL",
                    help="double descent: the interpolation threshold is the smallest size whose mean final train "
                         f"error is <= TOL (default {INTERPOLATION_TOL})")
    ap.add_argument("--emc-dir", nargs="+", action="extend", type=Path, default=None, metavar="DIR",
                    help="double descent: EMC search results (an EMC sweep over scaling.params on the same data and "
                         "procedure); the figure marks the parameter count where their mean EMC equals the fixed n")
    ap.add_argument("--emc-params", type=float, default=None, metavar="P",
                    help="double descent: draw the EMC line at P parameters (instead of --emc-dir)")
    ap.add_argument("--wandb", action="store_true", help="also upload the EMC-curve table and plots to W&B")
    ap.add_argument("--wandb-project", default=None)
    ap.add_argument("--wandb-entity", default=None)
    ap.add_argument("--wandb-group", default=None, help="default: the jobs' logger.group, else the sweep dir name")
    ap.add_argument("--wandb-mode", default="auto", choices=["auto", "online", "offline", "disabled"])
    args = ap.parse_args(argv)
    col_preview = collect(args.dirs)
    if not col_preview.jobs:
        print("flexnet.report: no readable emc.json under " + ", ".join(map(str, args.dirs)), file=sys.stderr)
        for p in col_preview.unfinished:
            print(f"  unfinished: {p}", file=sys.stderr)
        for p, e in col_preview.broken:
            print(f"  unreadable: {p}: {e}", file=sys.stderr)
        return 1
    by = None
    if args.by is not None:
        keys = {k for j in col_preview.jobs for k in j.config}
        by = []
        for k in args.by:
            if k not in keys and f"{k}.name" in keys:
                k = f"{k}.name"
            if k not in keys:
                print(f"flexnet.report: --by {k}: no such config key in the jobs; e.g. "
                      + ", ".join(sorted(varying_keys(col_preview.jobs)) or sorted(keys)[:8]), file=sys.stderr)
                return 2
            by.append(k)
    rep = build_report(args.dirs, by=by, out=args.out, n_boot=args.bootstrap, converged_only=args.converged_only,
                       interpolation_tol=args.interpolation_tol, emc_dirs=args.emc_dir, emc_params=args.emc_params)
    print(f"{len(rep.rows)} job(s), {len(rep.groups)} group(s) -> {rep.out}")
    for p in rep.files:  # every file written: tables, report.json, emc.md, figures
        print(f"  {p}")
    gen = rep.generalization
    if gen.get("points") and math.isfinite(gen["r"]):
        print(f"  Pearson r (EMC increase vs generalization gap) = {gen['r']:.3f} over {len(gen['points'])} pairs")
    for p in rep.collection.unfinished:
        print(f"  unfinished (no emc.json): {p}")
    for p, e in rep.collection.broken:
        print(f"  unreadable: {p}: {e}")
    if args.wandb:
        upload_wandb(rep, args.dirs, args.wandb_project, args.wandb_entity, args.wandb_group, args.wandb_mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
