"""Matplotlib helpers shared by the report's figures: a headless pyplot, colours per series, a figure
with constrained layout, the title naming the settings every job shares, the legend outside the axes,
error bars and SE bands only from enough seeds, and `Figures`: the paths drawn, what each figure
says (title, legend, ticks) and the notes the figures have for the report.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

import numpy as np

from .labels import fixed_settings
from .stats import MIN_INTERVAL_POINTS

if TYPE_CHECKING:
    from .build import Report


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def palette(names: Iterable[str]) -> dict:
    plt = pyplot()
    cyc = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cyc[i % len(cyc)] for i, n in enumerate(names)}


def subplots(width: float = 7.0, height: float = 4.5):
    """A figure with constrained layout: room for the titles, tick labels and the legend outside the
    axes is made by matplotlib, without tight_layout's warnings."""
    return pyplot().subplots(figsize=(width, height), layout="constrained")


def set_title(ax, rep: Report, what: str) -> None:
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


def legend(fig, ax) -> None:
    """The legend outside the axes, to the right (never over the data); none for an empty one."""
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside right upper", fontsize=7)


def error_bar(se: float, n: int) -> float:
    """An error bar only from MIN_INTERVAL_POINTS seeds or more."""
    return se if n >= MIN_INTERVAL_POINTS and math.isfinite(se) else 0.0


class Figures(list):
    """The figures drawn (paths), what each one says: title and legend entries (Report.figure_text), and
    the notes the figures have for the report (the caller adds them to Report.notes)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, dict] = {}
        self.notes: list[str] = []


def save(fig, path: Path, figures: list[Path]) -> None:
    if isinstance(figures, Figures):
        figures.text[path.name] = {"title": fig.axes[0].get_title(),
                                   "legend": [t.get_text() for leg in fig.legends for t in leg.get_texts()],
                                   "ticks": [t.get_text() for t in fig.axes[0].get_xticklabels()],
                                   "yticks": [t.get_text() for t in fig.axes[0].get_yticklabels()]}
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    figures.append(path)


def finish(fig, ax, rep: Report, figs: Figures, name: str, xlabel: str, ylabel: str, title: str,
           grid: str = "major", with_legend: bool = True) -> None:
    """Axis labels, the title naming the fixed settings, the legend outside, a grid; saved as `name`."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    set_title(ax, rep, title)
    if with_legend:
        legend(fig, ax)
    ax.grid(True, which=grid, alpha=0.2)
    save(fig, rep.out / name, figs)


def finish_loglog(fig, ax, rep: Report, figs: Figures, name: str, xlabel: str, ylabel: str, title: str,
                  xbase: int = 10) -> None:
    """Log-log axes, then finish(): labels, title, legend, grid, saved as `name`."""
    ax.set_xscale("log", base=xbase)
    ax.set_yscale("log")
    finish(fig, ax, rep, figs, name, xlabel, ylabel, title, grid="both")


def converged_markers(ax, x: np.ndarray, y: np.ndarray, converged: list, color) -> None:
    """Filled markers for converged EMCs (emc.json "converged": true), hollow ones for the rest."""
    conv = np.array([c is True for c in converged], dtype=bool)
    ax.plot(x[conv], y[conv], "o", color=color, ms=5)
    ax.plot(x[~conv], y[~conv], "o", mfc="white", mec=color, ms=5)


def band(ax, x, m, se, jobs, color, fmt: str, label: Optional[str], ms: float = 4) -> None:
    """A mean line with a +-SE band (the band only from MIN_INTERVAL_POINTS seeds)."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    e = np.array([error_bar(s, k) for s, k in zip(se, jobs)], dtype=float)
    ax.plot(x, m, fmt, color=color, ms=ms, label=label)
    if np.any(e > 0):
        ax.fill_between(x, m - e, m + e, color=color, alpha=0.18, lw=0)


def prefix(label: str) -> str:
    return "" if label in ("", "EMC") else f"{label}: "
