"""The report's figures: `draw_figures` draws every figure a computed report calls for and returns
them (`Figures`: paths, their text, their notes); here the EMC figures (EMC against parameters, against
the step cap, mean log EMC per group, the generalisation scatter); the search=fixed figures are in
figures_fixed.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from . import plotting as P
from .collect import relu_mlp
from .figures_fixed import fig_corruption, fig_double_descent, fig_double_descent_epochs, fig_learning_curves
from .stats import by_size

if TYPE_CHECKING:
    from .build import Report

CAP_FIGURE = "emc_vs_cap.png"  # drawn when the cap (train.min_steps) is swept (the pre-ladder emc_budget preset)
LADDER_FIGURE = "emc_by_cap.png"  # drawn when jobs ran a ladder of caps (train.caps): one panel per series
TRAINING_FIGURE = "training.png"  # drawn from logger=csv's per-epoch rows (log/epochs.csv)
FIGURES = ("emc_vs_params.png", "log_emc.png", "generalization.png", "double_descent.png",
           "learning_curves.png", "time_to_fit.png", "corruption_test_error.png")


def draw_figures(rep: Report) -> P.Figures:
    figs = P.Figures()
    colors = P.palette(rep.groups)
    emc_groups = {n: g for n, g in rep.groups.items() if g["emc_jobs"]}
    if emc_groups:
        _fig_emc_vs_params(rep, emc_groups, colors, figs)
        if rep.cap is not None:
            _fig_emc_vs_cap(rep, figs)
        _fig_log_emc(rep, emc_groups, colors, figs)
    if rep.ladder:
        _fig_emc_by_cap(rep, figs)
    if rep.generalization.get("points"):
        _fig_generalization(rep, figs)
    logged = [j for j in rep.collection.jobs if j.train_log]
    if logged:
        _fig_training(rep, logged, figs)
    fixed = {n: g for n, g in rep.groups.items() if any(j.search == "fixed" for j in g["jobs"])}
    if fixed:
        fig_double_descent(rep, fixed, colors, figs)
        fig_double_descent_epochs(rep, fixed, colors, figs)
        curve_jobs = [j for g in fixed.values() for j in g["jobs"] if j.search == "fixed" and j.curve]
        if curve_jobs:
            fig_learning_curves(rep, curve_jobs, colors, figs)
            fig_corruption(rep, [j for g in fixed.values() for j in g["jobs"] if j.search == "fixed"], figs)
    return figs


def _fig_emc_vs_params(rep: Report, groups: dict, colors: dict, figs: P.Figures) -> None:
    fig, ax = P.subplots(9.0, 5.0)
    xs_all, ys_all = [], []
    for name, g in groups.items():
        sizes = by_size(g["emc_jobs"])
        pts = [s for s in sizes if s["emc"] > 0]
        if not pts:
            continue
        x = np.array([s["params"] for s in pts])
        y = np.array([s["emc"] for s in pts])
        err = np.array([P.error_bar(s["emc_se"], s["jobs"]) for s in pts])
        pl = g["power_law"]
        ci = f" [{pl.b_lo:.2f}, {pl.b_hi:.2f}]" if pl and math.isfinite(pl.b_lo) else ""
        label = g["label"] + (f"  (b={pl.b:.2f}{ci})" if pl else "")
        ax.errorbar(x, y, yerr=err, fmt="-", color=colors[name], capsize=3, label=label)
        P.converged_markers(ax, x, y, [s["budget_stable"] for s in pts], colors[name])
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
    P.finish_loglog(fig, ax, rep, figs, "emc_vs_params.png", "parameters", "EMC (largest n fitted)",
                    "EMC against parameter count (mean ± SE over seeds; hollow: not budget-stable)")


def _fig_emc_vs_cap(rep: Report, figs: P.Figures) -> None:
    series = rep.cap
    colors = P.palette(series)
    fig, ax = P.subplots(9.0, 5.0)
    for name, pts in series.items():
        x = np.array([p["cap"] for p in pts], dtype=float)
        y = np.array([p["emc"] for p in pts])
        ax.plot(x, y, "--" if "fixed" in name else "-", color=colors[name], label=name)
        P.converged_markers(ax, x, y, [p["converged"] for p in pts], colors[name])
    P.finish_loglog(fig, ax, rep, figs, CAP_FIGURE, "cap (train.min_steps): converge = safety cap, fixed = "
                    "schedule length", "EMC", "EMC against the step budget (filled: converged EMC, hollow: not)",
                    xbase=2)


def _fig_emc_by_cap(rep: Report, figs: P.Figures) -> None:
    """A small EMC(C) panel per series: EMC at each rung of the ladder (mean ± SE over jobs), filled
    where every job was budget-stable at that rung, hollow where EMC still grew with the cap."""
    series = rep.ladder
    k = len(series)
    cols = min(3, k)
    rows = -(-k // cols)
    plt = P.pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 0.5, 3.0 * rows + 0.9), layout="constrained",
                             squeeze=False)
    colors = P.palette(series)
    for ax, (name, pts) in zip(axes.flat, series.items()):
        x = np.array([p["cap"] for p in pts], dtype=float)
        y = np.array([p["emc"] for p in pts])
        err = np.array([P.error_bar(p["emc_se"], p["jobs"]) for p in pts])
        ax.errorbar(x, y, yerr=err, fmt="-", color=colors[name], capsize=3)
        # the first rung has nothing below it to be stable against: drawn filled
        P.converged_markers(ax, x, y, [p["budget_stable"] is not False for p in pts], colors[name])
        ax.set_xscale("log", base=2)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{c / 1000:g}k" if c >= 1000 else f"{c:g}" for c in x], fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.grid(True, which="both", alpha=0.2)
    for ax in list(axes.flat)[k:]:
        ax.set_visible(False)
    fig.supxlabel("cap (optimizer steps)", fontsize=9)
    fig.supylabel("EMC", fontsize=9)
    fixed = P.fixed_settings(rep.collection.jobs)
    fig.suptitle("EMC(C) on the ladder of caps (mean ± SE; hollow: grew by more than the resolution over the rung "
                 "below)" + (f"\n{fixed}" if fixed else ""), fontsize=9)
    P.save(fig, rep.out / LADDER_FIGURE, figs)


def _arm_note(jobs: list) -> str:
    """An arm's lr and cap for its legend entry: `lr 0.1, cap 20k steps` (ranges where its jobs differ)."""
    def span(vals: list, fmt) -> str:
        vals = sorted({v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return "" if not vals else fmt(vals[0]) if len(vals) == 1 else f"{fmt(vals[0])}-{fmt(vals[-1])}"

    def steps(c: float) -> str:
        return f"{c / 1000:g}k" if c >= 1000 else f"{c:g}"

    lr = span([j.config.get("optimizer.lr") for j in jobs], lambda v: f"{v:g}")
    cap = span([j.result.get("emc_cap_steps") for j in jobs], steps)
    return ", ".join(p for p in (f"lr {lr}" if lr else "", f"cap {cap} steps" if cap else "") if p)


def log_emc_points(groups: dict) -> list[dict]:
    """Per group (arm) the point of log_emc.png: the EMC (10^mean log10 EMC over its model sizes, per
    trial, then over trials), its interval (+-SE over trials from MIN_INTERVAL_POINTS trials; with fewer,
    the search's own bracket [fitted, failed) on the same mean), whether it is budget-stable (no job with
    emc.json budget_stable false) and its legend note (lr, cap)."""
    from .stats import MIN_INTERVAL_POINTS

    out = []
    for name, g in groups.items():
        m, se, n = g["log_emc"]
        if not math.isfinite(m):
            continue
        jobs = [j for j in g["emc_jobs"] if j.emc > 0]
        if n >= MIN_INTERVAL_POINTS and math.isfinite(se):
            lo, hi, kind = 10 ** (m - se), 10 ** (m + se), "SE"
        else:
            fitted = [j.result.get("bracket", {}).get("fitted") or j.emc for j in jobs]
            failed = [(j.result.get("bracket") or {}).get("failed") for j in jobs]
            if all(isinstance(f, (int, float)) and f > 0 for f in failed):
                lo = 10 ** float(np.mean(np.log10(fitted)))
                hi = 10 ** float(np.mean(np.log10(failed)))
                kind = "bracket"
            else:
                lo = hi = 10 ** m
                kind = "none"
        out.append({"group": name, "label": g["label"], "emc": 10 ** m, "lo": lo, "hi": hi, "interval": kind,
                    "trials": n, "budget_stable": not any(j.result.get("budget_stable") is False for j in jobs),
                    "note": _arm_note(jobs), "emcs": [j.emc for j in jobs]})
    return out


def _fig_log_emc(rep: Report, groups: dict, colors: dict, figs: P.Figures) -> None:
    """One row per arm: its EMC as a point on a log axis with its interval (never a bar from 0: 2.91 and
    2.94 in log10 are 813 and 871), the jobs' own EMCs as small dots; hollow: budget-unstable (the EMC
    grew over the ladder's last rung); each arm's lr and cap in its label."""
    pts = log_emc_points(groups)
    if not pts:
        return
    fig, ax = P.subplots(9.0, max(3.2, 0.55 * len(pts) + 2.4))
    ys = np.arange(len(pts))[::-1]
    for y, p in zip(ys, pts):
        c = colors[p["group"]]
        if p["interval"] != "none":
            ax.plot([p["lo"], p["hi"]], [y, y], "-", color=c, lw=2, alpha=0.8, solid_capstyle="butt")
            ax.plot([p["lo"], p["hi"]], [y, y], "|", color=c, ms=10)
        ax.plot(p["emcs"], [y] * len(p["emcs"]), ".", color=c, alpha=0.35, ms=5)
        face = c if p["budget_stable"] else "white"
        ax.plot([p["emc"]], [y], "o", mfc=face, mec=c, mew=1.6, ms=8)
        ax.annotate(f"{p['emc']:.0f}", (p["emc"], y), textcoords="offset points", xytext=(0, 7), ha="center",
                    fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{p['label']}\n({p['note']})" if p["note"] else p["label"] for p in pts], fontsize=8)
    ax.set_xscale("log")
    lo = min(min(p["lo"], *p["emcs"]) for p in pts)
    hi = max(max(p["hi"], *p["emcs"]) for p in pts)
    ax.set_xlim(lo / 1.15, hi * 1.15)
    ax.set_ylim(-0.7, len(pts) - 0.3)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)  # 800, not 8x10^2
    ax.xaxis.set_minor_formatter(plain if hi / lo < 20 else NullFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    kinds = {p["interval"] for p in pts}
    what = "\n".join(x for x in (
        "line: ±SE over trials" if "SE" in kinds else "",
        "line: the search's bracket [fitted, failed) of one trial" if "bracket" in kinds else "",
        "hollow: budget-unstable (grew over the ladder's last rung)" if any(not p["budget_stable"] for p in pts) else "",
    ) if x)
    ax.set_xlabel("EMC (samples; geometric mean over model sizes; dots: each job)")
    ax.grid(True, which="both", axis="x", alpha=0.2)
    P.set_title(ax, rep, "EMC per arm" + (f"\n{what}" if what else ""))
    P.save(fig, rep.out / "log_emc.png", figs)


def _fig_training(rep: Report, jobs: list, figs: P.Figures) -> None:
    """logger=csv: each job's training loss against its optimizer steps, its attempts one after another
    (the rows logger.every_steps kept), on a log axis; one line per job (at most 12)."""
    fig, ax = P.subplots(9.0, 4.5)
    cols = P.palette([str(j.path) for j in jobs[:12]])
    for j in jobs[:12]:
        x, y, base, last, key = [], [], 0, 0, None
        for r in j.train_log:
            k = (r.get("trial"), r.get("n"), r.get("attempt"))
            if k != key:
                base, key = base + last, k
                if x:  # a gap between attempts
                    x.append(float("nan"))
                    y.append(float("nan"))
            last = int(r.get("step") or 0)
            x.append(base + last)
            y.append(float(r["train_loss"]) if r.get("train_loss") is not None else float("nan"))
        ax.plot(x, y, "-", lw=0.9, color=cols[str(j.path)], label=f"{j.path.name}: {j.group}")
    ax.set_yscale("log")
    more = f" (first 12 of {len(jobs)} jobs)" if len(jobs) > 12 else ""
    P.finish(fig, ax, rep, figs, TRAINING_FIGURE, "optimizer steps (the job's attempts one after another)",
             "training loss (epoch mean)", f"Training loss per job, logger=csv{more}")


def _fig_generalization(rep: Report, figs: P.Figures) -> None:
    gen = rep.generalization
    pts = gen["points"]
    fig, ax = P.subplots(8.0, 4.5)
    names = list(dict.fromkeys(p["group"] for p in pts))
    cols = P.palette(names)
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
    P.finish(fig, ax, rep, figs, "generalization.png", "generalization gap (train − test accuracy, semantic labels)",
             "EMC increase from random to semantic labels (%)", title, with_legend=len(names) > 1)
