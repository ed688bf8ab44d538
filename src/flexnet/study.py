"""Run the CPU-scale experiment presets, report each sweep, and write REPRODUCTION.md (the study
behind `make reproduce`; `scripts/reproduce.py` is its command line).

    python scripts/reproduce.py --out REPRODUCTION.md                # the verdict presets (make reproduce)
    python scripts/reproduce.py --only emc_optimizers --only emc_activations
    python scripts/reproduce.py --tiny --only zhang_corruption        # tiny budgets (tests, smoke runs)
    python scripts/reproduce.py --skip-run                           # re-aggregate existing sweep dirs

Each preset is one or more Hydra multiruns, ``python -m flexnet +experiment=<preset> -m
hydra.sweep.dir=<root>/<preset>``, all sharing the cores through flexnet.taskpool (--jobs at once,
longest first); then ``python -m flexnet.report <root>/<preset>`` writes its ``report/``. A sweep dir
that holds jobs is resumed (each job replays its fits.jsonl journal); ``--fresh`` deletes it first.
Verdicts come from the fixed rules of flexnet.analysis (RULES_TEXT, stated in REPRODUCTION.md); a
preset that fails or is missing gives "inconclusive" with the reason.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional

from flexnet.analysis.hparams import TUNE_FACTORS, choose_arm_lrs
from flexnet.analysis.reported import load_sweep
from flexnet.analysis.reproduction import logged_runs, previous_seconds, record_run, write_reproduction
from flexnet.config import missing_options
from flexnet.taskpool import Task, run_tasks

ROOT = Path(__file__).resolve().parents[2]   # the checkout (src/flexnet/study.py): sweeps run there
NOTES = ROOT / "docs" / "reproduce_notes.md"

# Overrides of --tiny: budgets that make every job take seconds (the sweep axes are cut by the
# per-preset `tiny` lists below to one or two points).
TINY = ["train.epochs=5", "train.min_steps=20", "train.max_extensions=0", "dataset.max_pool_size=300",
        "convergence.patience=5", "convergence.patience_steps=20", "seed=0"]
TINY_EMC = ["search.start=16"]       # EMC searches (bisect)
TINY_FIXED = ["search.n=64"]         # search=fixed presets
# the smoke-scale cap of the slow families run as parts (emc.json's "converged" says they are budget-bound)
SMOKE = ["train.epochs=100", "train.min_steps=300"]
TUNE_SEED = 100  # the tuning searches' seed: no verdict job uses it


@dataclass
class Arm:
    """One arm of a tuned preset: what sets it apart (overrides) and its default lr (the grid's middle)."""
    name: str
    overrides: list
    lr: float
    sweep: list = field(default_factory=list)    # the arm's own axes (e.g. its sizes), replacing the preset's
    tune: list = field(default_factory=list)     # where its lr grid runs (one size)
    labelings: Optional[list] = None             # default: the preset's
    gap: bool = True                             # run the preset's gap sweep for this arm (P4: families with sizes)


@dataclass
class Tuned:
    """Tuning as part of a preset: per (arm, labeling) one EMC search per lr of the grid (the arm's lr x
    TUNE_FACTORS) at the arm's `tune` size and the tuning seed, the lr chosen by hparams.choose_lr, then
    one verdict sweep per (arm, labeling) at that lr into <sweep dir>/<arm>-<labeling>. `gap`: overrides of
    a search=fixed sweep on semantic labels (P4's gap at one n) into <sweep dir>/<arm>-gap, per arm with `gap`."""
    arms: list
    labelings: list
    gap: list = field(default_factory=list)


@dataclass
class Preset:
    name: str
    fixed: bool = False                          # search=fixed (train at one n)
    tiny: list = field(default_factory=list)     # axis overrides for --tiny (one or two sweep points)
    # more sweeps of the same preset into <sweep dir>/<part>, each with its own overrides (for
    # families whose smallest model is above the preset's sizes); --tiny adds TINY and seed=0
    parts: dict = field(default_factory=dict)
    emc_line: Optional[str] = None               # the preset whose EMC sweep gives the report's --emc-dir
    tuned: Optional[Tuned] = None                # lr tuned per arm before the verdict sweeps
    verdict: bool = False                        # feeds a finding of REPRODUCTION.md (make reproduce)


def _arms(key: str, names: list, lr, sweep: list, tune: list) -> list:
    """Arms that differ in one key (an option or a value), at the same sizes; lr: one or per name."""
    return [Arm(n, [f"{key}={n}"], lr[n] if isinstance(lr, dict) else lr, sweep, tune) for n in names]


ARCHS_SIZES = {"mlp": "112,170,240,320,630,1000", "cnn": "66,112,170,240,320,1000", "vit": "1000"}
PRESETS = [
    # ---- verdict presets (make reproduce): each feeds a finding of REPRODUCTION.md
    Preset("emc_archs", verdict=True,
           tiny=["arch=mlp", "labeling=semantic,random_labels", "scaling.params=300"],
           # P4's gap (search=fixed at n=1000) is needed within a family over sizes: not for the one ViT size
           tuned=Tuned(arms=[Arm(a, [f"arch={a}"], 0.1, [f"scaling.params={ARCHS_SIZES[a]}"],
                                 [f"scaling.params={ {'mlp': 320, 'cnn': 170, 'vit': 1000}[a]}"], gap=a != "vit")
                             for a in ("mlp", "cnn", "vit")],
                       labelings=["semantic", "random_labels"],
                       gap=["search=fixed", "search.n=1000", "search.max_attempts=1", "~search.resolution"])),
    Preset("emc_optimizers", verdict=True, tiny=["optimizer=sgd,gd", "labeling=semantic", "scaling.params=300"],
           tuned=Tuned(arms=[*_arms("optimizer", ["sgd", "gd"], {"sgd": 0.1, "gd": 0.5}, ["scaling.params=320,1000"],
                                    ["scaling.params=320"]),
                             Arm("shampoo", ["optimizer=shampoo"], 2.0, ["scaling.params=320"], ["scaling.params=320"])],
                       labelings=["semantic", "random_labels"])),
    Preset("emc_activations", verdict=True, tiny=["arch.activation=relu,sigmoid", "scaling.params=300"],
           tuned=Tuned(arms=_arms("arch.activation", ["relu", "tanh", "sigmoid", "identity"], 0.1,
                                  ["scaling.params=320,1000"], ["scaling.params=320"]),
                       labelings=["semantic"])),
    Preset("zhang_randomization", fixed=True, verdict=True,
           tiny=["labeling=random_labels,random_inputs", "scaling.params=2000"]),
    Preset("zhang_corruption", fixed=True, verdict=True, tiny=["labeling.p=0.0,1.0", "scaling.params=2000"]),
    Preset("double_descent", fixed=True, verdict=True, tiny=["scaling.params=250,2000"], emc_line="double_descent_emc"),
    # ---- the other studies (make reproduce-extra); double_descent_emc: D1's figure's EMC line, read by no rule
    Preset("double_descent_emc", tiny=["scaling.params=1000"]),
    Preset("emc_data", tiny=["dataset=digits", "dataset.binary=null,true", "scaling.params=300"]),
    Preset("emc_labels", tiny=["labeling=semantic,random_labels", "arch=mlp", "scaling.params=300"]),
    Preset("emc_classes", tiny=["dataset.num_classes=2", "labeling=semantic,random_labels", "scaling.params=300"]),
    Preset("emc_resolution", tiny=["dataset.resolution=null,16", "scaling.params=500"]),
    Preset("emc_families", tiny=["arch=mlp,cnn", "labeling=random_labels", "scaling.params=500", "seed=0"],
           parts={"resnet": ["arch=resnet", "scaling.params=5000", *SMOKE],
                  "efficientnet": ["arch=efficientnet", "scaling=efficientnet", "scaling.params=20000", *SMOKE]}),
    Preset("emc_scaling_cnn", tiny=["scaling=width,resnet_rs", "scaling.params=30000"],
           parts={"efficientnet": ["arch=efficientnet", "~arch.channels", "~arch.stem_width", "scaling=efficientnet"]}),
    Preset("emc_scaling_vit", tiny=["scaling=width,sovit", "scaling.params=5000"]),
    Preset("emc_regularizers", tiny=["regularizer=none,sam", "scaling.params=300"]),
    Preset("emc_reparam", tiny=["reparam=subspace,quant8", "scaling.params=1000"]),
    Preset("zhang_regularizers", fixed=True,
           tiny=["regularizer=none,augment", "arch.dropout=0.0", "labeling=random_labels", "scaling.params=2000"]),
    Preset("zhang_batchnorm", fixed=True, tiny=["arch.batchnorm=true,false", "labeling=semantic", "scaling.params=20000"]),
    # EMC against the cap: the converge policy (main sweep) and the old fixed schedule (part)
    Preset("emc_budget", tiny=["arch=mlp", "labeling=random_labels", "train.caps=[20,40]", "scaling.params=300"],
           parts={"fixed": ["train.policy=fixed", "train.caps=null", "train.epochs=1",
                                  "train.min_steps=5000,10000,20000,40000"]}),  # one search per cap (its schedule)
]
BY_NAME = {p.name: p for p in PRESETS}
# presets that read their dataset from disk (not embedded): not run by `make reproduce`; each is tested
# on generated files in the real format (tests/test_double_descent.py)
DATA_PRESETS = {"double_descent_cifar": "CIFAR-10 python batches under dataset.root or $FLEXNET_DATA"}


def preset_overrides(p: Preset, tiny: bool, part: Optional[str] = None) -> list:
    """Overrides of one sweep: the preset's own (part None) or one part's; --tiny cuts budgets and axes."""
    tiny_budget = [*TINY, *(TINY_FIXED if p.fixed else TINY_EMC)] if tiny else []
    if part is None:
        return [*tiny_budget, *p.tiny] if tiny else []
    extra = p.parts[part]
    if tiny:   # one sweep point: the part's first size, one labeling where the preset sweeps it
        extra = [o.split(",")[0] if o.startswith("scaling.params=") else o for o in extra]
        extra += ["seed=0", *[o for o in p.tiny if o.startswith("labeling=")]]
    return [*extra, *tiny_budget]


# ------------------------------------------------------------------ running

def _env() -> dict:
    e = dict(os.environ)
    src = str(ROOT / "src")
    e["PYTHONPATH"] = src + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("OMP_NUM_THREADS", "1")
    e.setdefault("WANDB_MODE", "offline")
    return e


def run_sweep(p: Preset, part: Optional[str], sweep_dir: Path, tiny: bool, extra: list) -> dict:
    """One Hydra multirun of preset p (or of one of its parts, into sweep_dir/<part>)."""
    d = sweep_dir if part is None else sweep_dir / part
    return multirun(p.name, d, p.name if part is None else f"{p.name}/{part}",
                    [*preset_overrides(p, tiny, part), *extra])


def multirun(name: str, d: Path, label: str, overrides: list) -> dict:
    """`python -m flexnet -m +experiment=<name> hydra.sweep.dir=<d> <overrides>`, logged to d/reproduce.log."""
    d.mkdir(parents=True, exist_ok=True)
    args = ["-m", "flexnet", "-m", f"+experiment={name}", f"hydra.sweep.dir={d}", *overrides]
    command = " ".join(["python", *[_quote(a) for a in args]])
    t0 = time.time()
    print(f"[reproduce] {label}: {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, *args], cwd=str(ROOT), capture_output=True, text=True, env=_env())
    secs = time.time() - t0
    with open(d / "reproduce.log", "a") as log:   # appended: a resumed sweep keeps its earlier runs
        log.write(f"$ {command}\n# rc={proc.returncode} seconds={secs:.1f}\n"
                  f"{proc.stdout}\n--- stderr ---\n{proc.stderr}\n")
    print(f"[reproduce] {label}: rc={proc.returncode} in {secs:.0f}s", flush=True)
    info = {"rc": proc.returncode, "seconds": secs, "commands": [command]}
    if proc.returncode != 0:
        info["error"] = f"{label}: " + (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1][:300]
    return info


def _add(info: dict, r: dict) -> None:
    info["seconds"] += r["seconds"]
    info["commands"] += r["commands"]
    if r["rc"] != 0:
        info["rc"] = r["rc"]
        info.setdefault("error", r["error"])


def _lr(x: float) -> str:
    return f"{x:.4g}"


def tuning_dir(root: Path, name: str) -> Path:
    return root / "tuning" / name


def choose_lrs(p: Preset, tdir: Path, arms: Optional[list] = None) -> dict:
    """Per (arm, labeling) of `arms` (default: the preset's) the lr chosen from tdir/<arm> (choose_lr)."""
    return choose_arm_lrs(tdir, [(a.name, float(_lr(a.lr)), a.labelings or p.tuned.labelings)
                                 for a in arms or p.tuned.arms])


def _chain(*seconds: Optional[float]) -> float:
    """Priority of a task that starts a chain of multiruns: their total; unknown (never ran) first."""
    return math.inf if any(s is None for s in seconds) else float(sum(seconds))


def tuned_tasks(p: Preset, sweep_dir: Path, root: Path, tiny: bool, extra: list) -> list:
    """A tuned preset's tasks: per arm the lr grid (into root/tuning/<preset>/<arm>); when it finishes,
    the choice (root/tuning/<preset>/chosen.json) and the arm's verdict sweeps at the chosen lr (and its
    gap sweep) become tasks of their own."""
    t, tdir = p.tuned, tuning_dir(root, p.name)
    budget = [*TINY, *TINY_EMC] if tiny else []
    axes = [o for o in p.tiny if not o.startswith(("labeling=", "arch=", "optimizer=", "arch.activation="))] \
        if tiny else []
    tasks = []
    for arm in t.arms:
        labs = arm.labelings or t.labelings
        gap = bool(t.gap and arm.gap)
        sweeps = [(lab, sweep_dir / f"{arm.name}-{lab}") for lab in labs]
        est_tune = previous_seconds(tdir / arm.name)
        est_sweeps = [previous_seconds(d) for _, d in sweeps + ([("", sweep_dir / f"{arm.name}-gap")] if gap else [])]
        grid = ",".join(_lr(arm.lr * f) for f in TUNE_FACTORS)

        def then(_r: dict, arm=arm, sweeps=sweeps, gap=gap, est=est_sweeps) -> list:
            chosen = _record_choice(p, tdir, arm)
            out = []
            for (lab, d), e in zip(sweeps, est):
                c, key = chosen.get(f"{arm.name}-{lab}"), f"{p.name}/{arm.name}-{lab}"
                if c is None:
                    out.append(Task(key, partial(dict, rc=1, seconds=0.0, commands=[], error=f"{p.name}: no tuning "
                                                 f"result for {arm.name}, {lab}"), group=p.name))
                    continue
                ov = [*arm.overrides, f"labeling={lab}", f"optimizer.lr={_lr(c['lr'])}", *arm.sweep, *budget,
                      *axes, *extra]
                out.append(Task(key, partial(multirun, p.name, d, key, ov), _chain(e), group=p.name))
            c = chosen.get(f"{arm.name}-semantic")
            if gap and c is not None:
                key = f"{p.name}/{arm.name}-gap"
                ov = [*arm.overrides, "labeling=semantic", f"optimizer.lr={_lr(c['lr'])}", *arm.sweep, *t.gap,
                      *budget, *axes, *(TINY_FIXED if tiny else []), *extra]
                out.append(Task(key, partial(multirun, p.name, sweep_dir / f"{arm.name}-gap", key, ov),
                                _chain(est[-1]), group=p.name))
            return out

        key = f"{p.name}/tuning/{arm.name}"
        ov = [*arm.overrides, f"labeling={','.join(labs)}", f"optimizer.lr={grid}", *arm.tune, *budget,
              f"seed={TUNE_SEED}", *extra]
        tasks.append(Task(key, partial(multirun, p.name, tdir / arm.name, key, ov),
                          _chain(est_tune, max(est_sweeps, key=lambda x: math.inf if x is None else x)),
                          then, group=p.name))
    return tasks


def _record_choice(p: Preset, tdir: Path, arm: Arm) -> dict:
    """The arm's lrs (from its own tuning only), merged into tdir/chosen.json, whose other entries are
    those the other arms' finished tuning wrote: an arm still tuning is never read half done."""
    mine = choose_lrs(p, tdir, [arm])
    f = tdir / "chosen.json"
    names = [a.name for a in p.tuned.arms]
    old = {k: v for k, v in (json.loads(f.read_text()) if f.exists() else {}).items()
           if v.get("arm") in names and v.get("arm") != arm.name}
    f.write_text(json.dumps(dict(sorted({**old, **mine}.items(), key=lambda kv: names.index(kv[1]["arm"]))),
                            indent=2) + "\n")
    return mine


def preset_tasks(p: Preset, sweep_dir: Path, root: Path, tiny: bool, fresh: bool, extra: list) -> list:
    """The preset's multiruns as tasks: its sweep into sweep_dir and each part's into sweep_dir/<part>,
    or, tuned, its tuning then one sweep per (arm, labeling). The run times of an earlier run are read
    (for the order) before --fresh deletes it."""
    if p.tuned is not None:
        tasks = tuned_tasks(p, sweep_dir, root, tiny, extra)
    else:
        tasks = [Task(p.name if part is None else f"{p.name}/{part}",
                      partial(run_sweep, p, part, sweep_dir, tiny, extra),
                      _chain(previous_seconds(sweep_dir if part is None else sweep_dir / part)), group=p.name)
                 for part in [None, *p.parts]]
    if fresh:
        for d in (sweep_dir, tuning_dir(root, p.name)):
            if d.exists():
                shutil.rmtree(d)
    return tasks


def run_presets(presets: list, root: Path, tiny: bool, fresh: bool, slots: int, extra: list) -> tuple:
    """Every multirun of the presets, `slots` at once, longest chain first (taskpool). Each multirun
    runs its jobs one after another in its own process (Hydra's basic launcher: no per-job start-up);
    a single multirun with nothing to wait for gets the local launcher's `slots` jobs at once instead.
    Returns (per preset: rc, seconds, commands, error; the pool's run)."""
    single = len(presets) == 1 and presets[0].tuned is None and not presets[0].parts
    launcher = ["hydra/launcher=local", f"hydra.launcher.max_parallel={slots}"] if single and slots > 1 \
        else ["hydra/launcher=basic"]
    pool = run_tasks([t for p in presets for t in preset_tasks(p, root / p.name, root, tiny, fresh,
                                                               [*launcher, *extra])], slots)
    runs = {p.name: {"rc": 0, "seconds": 0.0, "commands": []} for p in presets}
    for d in pool.done:
        r = d.result if d.error is None else {"rc": 1, "seconds": d.end - d.start, "commands": [],
                                              "error": f"{d.key}: {type(d.error).__name__}: {d.error}"}
        _add(runs[d.group], r)
    return runs, pool


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in "~[]* ") else arg


def run_report(sweep_dir: Path, emc_dir: Optional[Path] = None) -> dict:
    cmd = [sys.executable, "-m", "flexnet.report", str(sweep_dir), "--bootstrap", "500"]
    if emc_dir is not None and any(emc_dir.rglob("emc.json")):
        cmd += ["--emc-dir", str(emc_dir)]
    proc = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, env=_env())
    info = {"rc": proc.returncode}
    if proc.returncode != 0:
        info["error"] = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1][:300]
    return info


def main(argv: Optional[list] = None) -> int:
    """scripts/reproduce.py's command line (make reproduce)."""
    ap = argparse.ArgumentParser(description="Run the CPU-scale experiment presets, report each sweep, and write "
                                             "REPRODUCTION.md.")
    ap.add_argument("--out", type=Path, default=Path("REPRODUCTION.md"))
    ap.add_argument("--only", action="append", default=None, metavar="PRESET",
                    help=f"run only these presets (repeatable); one of: {', '.join(BY_NAME)}")
    ap.add_argument("--set", choices=("verdict", "extra", "all"), default="verdict", dest="which",
                    help="which presets to run without --only: verdict (those behind a finding: make "
                         "reproduce), extra (the other studies: make reproduce-extra) or all")
    ap.add_argument("--tiny", action="store_true", help="tiny budgets and one or two sweep points (for tests)")
    ap.add_argument("--skip-run", action="store_true", help="do not run sweeps; re-aggregate existing dirs")
    ap.add_argument("--fresh", action="store_true", help="delete a preset's sweep dir before running it")
    ap.add_argument("--root", type=Path, default=None,
                    help="sweep dirs go to ROOT/<preset> (default: multirun/reproduce, or "
                         "multirun/reproduce-tiny with --tiny)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="multiruns at once (one torch thread each), every preset's and arm's sharing the "
                         "cores, longest first; each runs its jobs one after another (basic launcher)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides passed to every preset")
    a = ap.parse_args(argv)
    for n in a.only or []:
        if n not in BY_NAME:
            ap.error(f"--only {n}: unknown preset; allowed: {', '.join(BY_NAME)}")
    if a.jobs < 1:
        ap.error(f"--jobs {a.jobs}: must be at least 1")
    names = a.only or [p.name for p in PRESETS if a.which == "all" or p.verdict == (a.which == "verdict")]
    root = (a.root or ROOT / ("multirun/reproduce-tiny" if a.tiny else "multirun/reproduce")).resolve()
    t0 = time.time()
    runs, sweeps = {}, {}
    to_run = []
    for n in ([] if a.skip_run else names):
        miss = missing_options(n)
        if miss:
            runs[n] = {"rc": None, "error": f"option file(s) missing: {', '.join(miss)}", "seconds": 0.0}
            print(f"[reproduce] {n}: skipped, missing {miss}", flush=True)
        else:
            to_run.append(BY_NAME[n])
    if to_run:
        resumed = not a.fresh and any(d.exists() and any(d.rglob("emc.json"))
                                      for p in to_run for d in (root / p.name, tuning_dir(root, p.name)))
        ran, pool = run_presets(to_run, root, a.tiny, a.fresh, a.jobs, a.overrides)
        runs.update(ran)
        record_run(root, [p.name for p in to_run], a.jobs, pool, resumed)
        print(f"[reproduce] {len(pool.done)} multiruns, {a.jobs} at once: {pool.wall / 60:.1f} min", flush=True)
    # the presets not run now are read back from their sweep dirs, so REPRODUCTION.md covers them all
    for n in (names if a.tiny else [*names, *[q for q in BY_NAME if q not in names]]):
        p = BY_NAME[n]
        d = root / n
        skip = a.skip_run or n not in names
        if (skip and not d.exists()) or runs.get(n, {}).get("rc", 0) is None:
            continue
        if not (n not in names and (d / "report" / "emc.csv").exists()) and d.exists() and any(d.rglob("emc.json")):
            rep = run_report(d, root / p.emc_line if p.emc_line else None)
            if rep["rc"] != 0:
                runs.setdefault(n, {})["report_error"] = rep.get("error")
        sw = load_sweep(n, d)
        if sw is not None:
            sweeps[n] = sw
        elif skip:
            runs.setdefault(n, {})["error"] = f"no finished jobs under {d}"
        if skip:
            runs.setdefault(n, {}).update(logged_runs(d, tuning_dir(root, n)) or {})
    verdicts = write_reproduction(a.out.resolve(), root, runs, sweeps, [p.name for p in PRESETS], a.tiny,
                                  time.time() - t0, ROOT, NOTES, tuple(p.name for p in PRESETS if p.verdict))
    print(f"[reproduce] wrote {a.out} ({len(verdicts)} verdicts) in {(time.time() - t0) / 60:.1f} min")
    for v in verdicts:
        print(f"  {v['id']:3s} {v['preset']:22s} {v['verdict']}")
    return 0

