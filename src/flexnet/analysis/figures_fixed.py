"""The figures of search=fixed jobs: double descent (error against parameters at fixed n), the
epoch-wise curve past the fit, learning curves, and Zhang et al.'s time to fit and test error against
label corruption (Fig. 1a-c). Each draws into the `Figures` it is given.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from . import plotting as P
from .collect import Job, corruption_level, first_attempt
from .double_descent import double_descent_summary, epoch_curve
from .labels import short_label
from .stats import mean_se, time_to_fit

if TYPE_CHECKING:
    from .build import Report

EPOCHS_FIGURE = "double_descent_epochs.png"  # drawn for jobs trained past the fit (search.stop_at_fit=false)
CORRUPTION_AXIS = "label corruption (0: true labels, 1: random labels)"


def fig_double_descent(rep: Report, groups: dict, colors: dict, figs: P.Figures) -> None:
    """Test error (solid) and train error (dotted) against parameters, mean and SE band over seeds; the
    interpolation threshold of each series (dashed) and where the EMC equals n (dash-dot, black)."""
    fig, ax = P.subplots(9.0, 4.5)
    ns = sorted({j.config.get("search.n") for g in groups.values() for j in g["jobs"] if j.search == "fixed"},
                key=str)
    past = False
    for name, g in groups.items():
        d = rep.double_descent.get(name) or double_descent_summary(g["jobs"])
        past = past or d["past_fit"]
        pts = [s for s in d["sizes"] if math.isfinite(s["test_error"])]
        if not pts:
            continue
        pre = P.prefix(g["label"])
        P.band(ax, [s["params"] for s in pts], [s["test_error"] for s in pts], [s["test_error_se"] for s in pts],
               [s["jobs"] for s in pts], colors[name], "o-", f"{pre}test error")
        tr = [s for s in pts if math.isfinite(s["train_error"])]
        if tr:
            P.band(ax, [s["params"] for s in tr], [s["train_error"] for s in tr], [s["train_error_se"] for s in tr],
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
    what = "Test and train error against parameter count at fixed n = " + ", ".join(str(n) for n in ns)
    P.finish(fig, ax, rep, figs, "double_descent.png", "parameters", "error",
             what + ("\n(trained a fixed length past interpolation; mean ± SE over seeds)" if past
                     else " (mean ± SE over seeds)"), grid="both")


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


def fig_double_descent_epochs(rep: Report, groups: dict, colors: dict, figs: P.Figures) -> None:
    """Epoch-wise: test error (solid) and train error (dotted) against epoch, mean and SE band over seeds,
    for the size at the interpolation threshold; the largest size thinner for comparison; the mean
    epoch of the first fit (dotted vertical)."""
    fig, ax = P.subplots(9.0, 4.5)
    drawn = []
    for name, g in groups.items():
        d = rep.double_descent.get(name)
        if not d or not d["past_fit"]:
            continue
        js, why = _epoch_pick(g, d)
        c = epoch_curve(js)
        if not c:
            continue
        pre = P.prefix(g["label"])
        params = float(np.mean([j.params for j in js]))
        x = [r["epoch"] for r in c]
        P.band(ax, x, [r["test_error"] for r in c], [r["test_error_se"] for r in c], [r["jobs"] for r in c],
               colors[name], "-", f"{pre}{params:.0f} params ({why}): test error", ms=0)
        tr = [r for r in c if math.isfinite(r["train_error"])]
        P.band(ax, [r["epoch"] for r in tr], [r["train_error"] for r in tr], [r["train_error_se"] for r in tr],
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
        P.pyplot().close(fig)
        return
    ax.set_xscale("log")
    P.finish(fig, ax, rep, figs, EPOCHS_FIGURE, "epoch", "error",
             "Epoch-wise: error against epoch at the interpolation threshold\n(mean ± SE over seeds)", grid="both")


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


def fig_learning_curves(rep: Report, jobs: list[Job], colors: dict, figs: P.Figures) -> None:
    fig, ax = P.subplots(9.0, 4.5)
    labelled = set()
    for j in _curve_pick(jobs):
        c = [r for r in first_attempt(j.curve) if r.get("train_loss") is not None]
        if not c:
            continue
        label = ", ".join(x for x in (rep.groups[j.group]["label"], f"{j.params:.0f} params") if x != "EMC")
        ax.plot([r["step"] for r in c], [r["train_loss"] for r in c], color=colors[j.group], lw=1.2,
                label=None if label in labelled else label)
        labelled.add(label)
    P.finish(fig, ax, rep, figs, "learning_curves.png", "optimizer steps", "training loss",
             "Learning curves (cf. Zhang et al. 2017, Fig. 1a)")


def fig_corruption(rep: Report, jobs: list[Job], figs: P.Figures) -> None:
    """Fig. 1b (time to fit) and 1c (test error) against label-corruption level."""
    jobs = [j for j in jobs if corruption_level(j) is not None]
    if len({corruption_level(j) for j in jobs}) < 2:
        return
    other = [k for k in rep.by if not k.startswith("labeling.")]
    series: dict[str, list[Job]] = defaultdict(list)
    for j in jobs:
        series[", ".join(x for x in (short_label(j, other), f"{j.target:g} params") if x)].append(j)
    names = sorted(series, key=lambda s: (s.split(",")[:-1], min(j.target for j in series[s])))
    cols = P.palette(names)

    def per_level(js: list[Job], value) -> tuple[list, list, list]:
        lv: dict[float, list[float]] = defaultdict(list)
        for j in js:
            v = value(j)
            if v is not None:
                lv[corruption_level(j)].append(v)
        xs = sorted(lv)
        ms = [mean_se(lv[x]) for x in xs]
        return xs, [m for m, _ in ms], [P.error_bar(s, len(lv[x])) for x, (_, s) in zip(xs, ms)]

    fig, ax = P.subplots(8.5, 4.5)
    missing = 0
    for n in names:
        js = [j for j in series[n] if j.curve]
        missing += sum(1 for j in js if time_to_fit(first_attempt(j.curve), j.threshold) is None)
        xs, ms, ses = per_level(js, lambda j: time_to_fit(first_attempt(j.curve), j.threshold))
        if xs:
            ax.errorbar(xs, ms, yerr=ses, fmt="o-", color=cols[n], capsize=3, ms=4, label=n)
    P.finish(fig, ax, rep, figs, "time_to_fit.png", CORRUPTION_AXIS, "optimizer steps to fit (train acc ≥ threshold)",
             "Time to fit (cf. Zhang et al. 2017, Fig. 1b)"
             + (f"; {missing} run(s) never reached the threshold (left out)" if missing else ""))
    if missing:
        figs.notes.append(f"time_to_fit.png: {missing} run(s) never reached the fit threshold and are left out")

    fig, ax = P.subplots(8.5, 4.5)
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
    P.finish(fig, ax, rep, figs, "corruption_test_error.png", CORRUPTION_AXIS, "test error",
             "Test error against label corruption (cf. Zhang et al. 2017, Fig. 1c)")
