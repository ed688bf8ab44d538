"""Reading sweep directories: every job's emc.json (one `Job` per job, or per trial with
search.trials > 1), its curve.jsonl, and the jobs that did not finish or cannot be read
(`Collection`). Also what kind of job a `Job` is (Zhang et al.'s ReLU MLP, label-corruption level).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from ..loggers import flatten
from ..records import CURVE_FILE, FITS_FILE, RESULT_FILE, RESULT_NEUTRAL_KEYS

REPORT_DIR = "report"
# config keys that never define a result or a group
IGNORED_PREFIXES = (*RESULT_NEUTRAL_KEYS, "device")
RANDOM_LABELINGS = ("random_labels",)


@dataclass
class Job:
    path: Path                 # the job directory
    result: dict
    config: dict               # flattened result config, ignored keys dropped
    group: str = ""
    curve: Optional[list] = None
    trial: Optional[int] = None  # search.trials > 1: which of the job's trials this row is
    train_log: Optional[list] = None  # logger=csv: the job's per-epoch rows (log/epochs.csv)

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
    return any(x == REPORT_DIR or x == "wandb" or x.startswith((".", "replaced-")) for x in parts)


def _number(v: Any, lo: float = 0.0) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= lo


def _size(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


def check_result(res: Any) -> Optional[str]:
    """Why an emc.json cannot be a row of the report (None: it can): the fields the report reads, with
    their types and ranges (an edited or corrupted file is skipped with a warning, never a crash)."""
    if not isinstance(res, dict):
        return f"not a JSON object ({type(res).__name__})"
    if not (isinstance(res.get("emc"), int) and not isinstance(res.get("emc"), bool) and res["emc"] >= 0):
        return f"emc={res.get('emc')!r} is not an integer >= 0"
    params = res.get("params")
    if not isinstance(params, dict) or not any(_number(params.get(k)) for k in ("actual", "target")):
        return f"params={params!r} holds no parameter count"
    for k in ("actual", "target"):
        if params.get(k) is not None and not _number(params[k]):
            return f"params.{k}={params[k]!r} is not a number >= 0"
    br = res.get("bracket")
    if br is not None and not (isinstance(br, dict) and _size(br.get("fitted")) and _size(br.get("failed"))):
        return f"bracket={br!r} is not {{fitted, failed}} sizes"
    for k in ("seconds", "fits", "cost_sample_epochs", "emc_mean", "emc_se", "num_classes"):
        if res.get(k) is not None and not _number(res[k]):
            return f"{k}={res[k]!r} is not a number >= 0"
    if res.get("config") is not None and not isinstance(res["config"], dict):
        return f"config={res['config']!r} is not a mapping"
    trials = res.get("trials")
    if trials is not None:
        if not isinstance(trials, list) or not all(isinstance(t, dict) and _size(t.get("trial")) and t.get("trial")
                                                   is not None and _size(t.get("emc")) for t in trials):
            return "trials is not a list of {trial, emc, ...} records"
    return None


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
                why = check_result(res)
                if why:
                    raise ValueError(why)
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


def first_attempt(curve: list[dict]) -> list[dict]:
    """The curve lines of the curve's first fit attempt (its first (n, attempt))."""
    if not curve:
        return []
    key = (curve[0].get("n"), curve[0].get("attempt"))
    return [r for r in curve if (r.get("n"), r.get("attempt")) == key]


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
