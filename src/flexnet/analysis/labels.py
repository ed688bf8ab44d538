"""Names of series and settings: the config keys that vary across jobs, the keys that tell the series
apart (in option order: dataset, labeling, arch, ...), a series' label in tables and figures, and the
settings every job shares (a figure's title line).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from .collect import Job

# never default grouping keys: the x axis and the trials
NOT_GROUP_KEYS = ("scaling.params", "seed", "search.trials")  # trials: more seeds, not another series
OPTION_ORDER = ("dataset", "labeling", "arch", "scaling", "optimizer", "regularizer", "reparam", "search")
# the settings a reader needs to know what a figure shows, named in its title when they are fixed
TITLE_KEYS = (("dataset.name", "dataset"), ("labeling.name", "labels"), ("arch.name", "arch"),
              ("scaling.name", "scaling"), ("optimizer.name", "optimizer"), ("optimizer.lr", "lr"))


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


def differing_keys(jobs: list[Job], keys: list[str]) -> list[str]:
    """The keys of `keys` a summary table shows: without those that only come with an option (a key of
    group g set in some jobs, absent in the others, and one value per option g.name where set: e.g.
    optimizer.momentum beside optimizer=sgd,adam), which the option's own column already says."""
    out = []
    for k in keys:
        head = k.split(".", 1)[0]
        name = f"{head}.name"
        absent = any(j.config.get(k) is None for j in jobs)
        if k != name and absent and len({str(j.config.get(name)) for j in jobs}) > 1:
            per: dict[str, set] = {}
            for j in jobs:
                if j.config.get(k) is not None:
                    per.setdefault(str(j.config.get(name)), set()).add(json.dumps(j.config.get(k), default=str))
            if all(len(v) == 1 for v in per.values()):
                continue
        out.append(k)
    return out


def _short(k: str) -> str:
    return k[:-5] if k.endswith(".name") else k


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
