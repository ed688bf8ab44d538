"""The findings of the reproduction (FINDINGS): each paper's claim, the preset behind it, the paper's own
statement, and its rule. Findings of several parts (P1, P2, P3, P5) and P4's within-family correlation
are composed here from the single-comparison rules of flexnet.analysis.verdicts (`combine`: holds only
if every part holds). Unit-tested on synthetic sweeps in tests/test_verdicts.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .reported import Sweep, generalization_points, matches
from .stats import pearson
from .verdicts import (BUDGET, FAILS, HOLDS, INCONCL, _gate, rule_below_params, rule_corruption, rule_double_descent,
                       rule_fits, rule_more)


def combine(parts: list, reported: list = ()) -> tuple:
    """A finding of several parts [(label, (verdict, text))]: holds if every part holds, does not hold
    if any does not, inconclusive (budget) if any part is, else inconclusive. `reported` parts are
    measured and listed but never decide."""
    vs = [v for _, (v, _) in parts]
    if vs and all(v == HOLDS for v in vs):
        verdict = HOLDS
    elif FAILS in vs:
        verdict = FAILS
    elif BUDGET in vs:
        verdict = BUDGET
    else:
        verdict = INCONCL
    txt = "; ".join(f"**{lbl}**: {t} [{v}]" for lbl, (v, t) in parts)
    if reported:
        txt += "; reported (does not decide): " + "; ".join(f"**{lbl}**: {t} [{v}]" for lbl, (v, t) in reported)
    return verdict, txt


def _arch_sel(arch: str, labeling: str) -> dict:
    return {"arch": arch, "labeling": labeling}


def rule_p1(sw: Sweep) -> tuple:
    """P1 as the paper states it: EMC below the parameter count on random labels, for MLP and CNN;
    semantic labels reported beside (the paper: CNNs fit more samples than parameters there)."""
    parts = [(f"{a}, random labels", rule_below_params(sw, _arch_sel(a, "random_labels"))) for a in ("mlp", "cnn")]
    rep = [(f"{a}, semantic labels", rule_below_params(sw, _arch_sel(a, "semantic"))) for a in ("mlp", "cnn")]
    return combine(parts, rep)


def rule_p2(sw: Sweep) -> tuple:
    """P2: CNN above MLP and above ViT, on random and on semantic labels (paired by size and seed)."""
    parts = []
    for other in ("mlp", "vit"):
        for lab in ("random_labels", "semantic"):
            if any(matches(r, _arch_sel(other, lab)) for r in sw.rows):
                parts.append((f"cnn vs {other}, {lab}", rule_more(sw, _arch_sel("cnn", lab), _arch_sel(other, lab))))
    rep = [(f"mlp vs vit, {lab}", rule_more(sw, _arch_sel("mlp", lab), _arch_sel("vit", lab)))
           for lab in ("random_labels", "semantic") if any(matches(r, _arch_sel("vit", lab)) for r in sw.rows)]
    return combine(parts, rep)


def _opt_sel(opt: str, labeling: str) -> dict:
    return {"optimizer": opt, "labeling": labeling}


def rule_p3(sw: Sweep) -> tuple:
    """P3: SGD above full-batch GD on semantic labels (the paper's claim); on random labels, and SGD
    against Shampoo, reported beside the paper's statements."""
    parts = [("sgd vs gd, semantic", rule_more(sw, _opt_sel("sgd", "semantic"), _opt_sel("gd", "semantic")))]
    rep = [("sgd vs gd, random labels", rule_more(sw, _opt_sel("sgd", "random_labels"), _opt_sel("gd", "random_labels")))]
    rep += [(f"sgd vs shampoo, {lab}", rule_more(sw, _opt_sel("sgd", lab), _opt_sel("shampoo", lab)))
            for lab in ("semantic", "random_labels")]
    return combine(parts, rep)


def rule_p5(sw: Sweep) -> tuple:
    """P5: ReLU above the sigmoidal activations (sigmoid, tanh); identity reported."""
    act = "arch.activation"
    parts = [(f"relu vs {a}", rule_more(sw, {act: "relu"}, {act: a})) for a in ("sigmoid", "tanh")]
    rep = [("relu vs identity", rule_more(sw, {act: "relu"}, {act: "identity"}))]
    return combine(parts, rep)


def within_family(points: list, family: str) -> dict:
    """P4 in one family: per size, the mean over seeds of the EMC increase and of the gap; Pearson r
    over sizes, and over every (size, seed) point."""
    pts = [p for p in points if p.get("arch") == family]
    sizes: dict = {}
    for p in pts:
        sizes.setdefault(p["params"], []).append(p)
    xs = [sum(q["generalization_gap"] for q in v) / len(v) for _, v in sorted(sizes.items())]
    ys = [sum(q["emc_increase_pct"] for q in v) / len(v) for _, v in sorted(sizes.items())]
    r, pv = pearson(xs, ys)
    r_all, p_all = pearson([q["generalization_gap"] for q in pts], [q["emc_increase_pct"] for q in pts])
    return {"r": r, "p": pv, "sizes": len(sizes), "points": len(pts), "r_all": r_all, "p_all": p_all,
            "gap": xs, "increase": ys, "gap_n": sorted({str(q.get("gap_n")) for q in pts})}


def _r(r: float, p: float) -> str:
    return f"r = {r:.3f} (p = {p:.3g})" if math.isfinite(r) else "r n/a"


def rule_generalization(sw: Sweep) -> tuple:
    """P4 within each family present (mlp, cnn), r over per-size means; pooled r reported."""
    g = sw.report.get("generalization") or {}
    points = generalization_points(sw)
    fams = [f for f in ("mlp", "cnn") if any(p.get("arch") == f for p in points)]
    if not fams:
        pooled = g.get("r")
        if pooled is None or not points:
            return INCONCL, f"{len(points)} (semantic, random labels) pair(s): too few or constant for a correlation"
        fams = [None]
    parts = []
    for f in fams:
        d = within_family(points, f) if f else {"r": g["r"], "p": g["p"], "sizes": len(points), "points": len(points),
                                                 "r_all": g["r"], "p_all": g["p"], "gap_n": []}
        txt = (f"{_r(d['r'], d['p'])} over {d['sizes']} size(s) (means over seeds); over all {d['points']} "
               f"(size, seed) points {_r(d['r_all'], d['p_all'])}"
               + (f"; gap at n = {', '.join(d['gap_n'])}" if d["gap_n"] and d["gap_n"] != ["None"] else
                  "; gap of the semantic EMC search at its EMC"))
        jobs = [r for r in sw.rows if r.get("search") != "fixed" and (f is None or matches(r, {"arch": f}))]
        if d["sizes"] < 3 or not math.isfinite(d["r"]):
            v = INCONCL
            txt += " (fewer than 3 sizes, or constant)"
        elif d["r"] < 0 and d["p"] < 0.05:
            v = HOLDS
        elif d["r"] > 0 and d["p"] < 0.05:
            v = FAILS
        else:
            v = INCONCL
        parts.append((f or "all pairs", _gate(v, txt, jobs, sw)))
    r_all, p_all = pearson([q["generalization_gap"] for q in points], [q["emc_increase_pct"] for q in points])
    pooled = [("pooled over families", (INCONCL, f"{_r(r_all, p_all)} over {len(points)} (size, seed) points"))
              ] if len(fams) > 1 else []
    return combine(parts, pooled)


@dataclass
class Finding:
    id: str
    source: str
    claim: str
    preset: str
    rule: Callable
    figure: str
    settle: str     # what would settle it when the verdict depends on scale
    paper: str = ""  # what the paper itself reports, beside which ours is shown


FINDINGS = [
    Finding("P1", "Shwartz-Ziv et al. 2024 (headline 1)",
            "Standard training finds minima that fit far fewer samples than the model has parameters (EMC < "
            "#params), on random labels, for MLPs and CNNs.",
            "emc_archs", rule_p1, "emc_vs_params",
            "converged EMCs; then the paper-scale sweep (CIFAR-10/ImageNet, 1e4-1e6 parameters)",
            paper="finding (1): on randomly labelled data the EMC is well below the parameter count; with "
                  "semantic labels CNNs fit more samples than they have parameters (the exception)"),
    Finding("P2", "Shwartz-Ziv et al. 2024 (headline 2)",
            "CNNs are more parameter-efficient than MLPs and ViTs, even on randomly labelled data.",
            "emc_archs", rule_p2, "emc_vs_params",
            "converged EMCs; CNN and ViT sizes that overlap more (the ViT's smallest sensible shape is ~1k "
            "parameters here)",
            paper="finding (2): CNN EMC above MLP and ViT EMC at equal parameter count, on semantic and on "
                  "random labels"),
    Finding("P3", "Shwartz-Ziv et al. 2024 (headline 3)",
            "SGD finds minima that fit more training data than full-batch gradient descent.",
            "emc_optimizers", rule_p3, "log_emc",
            "converged EMCs at the tuned lrs",
            paper="finding (3): SGD's EMC above full-batch GD's; on random labels SGD's advantage evaporates; "
                  "Shampoo about as good as SGD"),
    Finding("P4", "Shwartz-Ziv et al. 2024 (headline 4)",
            "The difference between fitting correctly and randomly labelled samples predicts generalisation "
            "(larger EMC increase from random to semantic labels <-> smaller generalisation gap).",
            "emc_archs", rule_generalization, "generalization",
            "converged EMCs; more sizes per family",
            paper="finding (4): within a family, Pearson r = -0.93 (CNNs) and -0.87 (MLPs) between the EMC "
                  "increase and the generalisation gap"),
    Finding("P5", "Shwartz-Ziv et al. 2024 (headline 5)",
            "ReLU activations find minima that fit more data than sigmoidal ones (sigmoid, tanh).",
            "emc_activations", rule_p5, "log_emc", "converged EMCs; CNNs at the paper's sizes",
            paper="finding (5): ReLU networks fit more samples than sigmoidal ones"),
    Finding("P6", "Shwartz-Ziv et al. 2024 (data)",
            "Networks fit more samples with semantic labels than with random labels.",
            "emc_archs", lambda s: rule_more(s, {"labeling": "semantic"}, {"labeling": "random_labels"}),
            "emc_vs_params", "converged EMCs; larger pools",
            paper="semantic labels give a larger EMC than random labels for every architecture"),
    Finding("Z1", "Zhang et al. 2017 (random labels)",
            "Networks fit random labels perfectly (zero training error); test accuracy is at chance.",
            "zhang_randomization", lambda s: rule_fits(s, ["random_labels"]), "learning_curves",
            "CIFAR-10 with the small Inception at n = 50,000"),
    Finding("Z2", "Zhang et al. 2017 (random inputs)",
            "Networks fit randomised inputs (shuffled pixels, random pixels, Gaussian inputs) perfectly.",
            "zhang_randomization",
            lambda s: rule_fits(s, ["permuted_inputs", "shuffled_pixels", "random_inputs"]), "learning_curves",
            "CIFAR-10 with the small Inception at n = 50,000"),
    Finding("Z3", "Zhang et al. 2017 (corruption)",
            "As label corruption grows from 0 to 1, time to fit grows and test error grows.",
            "zhang_corruption", rule_corruption, "time_to_fit",
            "CIFAR-10 at n = 50,000 with 3 seeds per level"),
    Finding("D1", "Nakkiran et al. / Shwartz-Ziv et al. (double descent)",
            "With label noise at fixed n, test error against width peaks near the interpolation threshold.",
            "double_descent", rule_double_descent, "double_descent",
            "training well past interpolation (the fit verdict stops at 100%), CIFAR-10 4-class, ResNet widths"),
]
