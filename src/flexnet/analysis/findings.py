"""The findings of the reproduction (FINDINGS): each paper's claim, the preset behind it, the paper's own
statement, and its rule. Findings of several parts (P1, P2, P3, P5) and P4's within-family correlation
are composed here from the single-comparison rules of flexnet.analysis.verdicts (`combine`: holds only
if every part holds). Unit-tested on synthetic sweeps in tests/test_verdicts.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .reported import Sweep, generalization_points, ladder, matches
from .stats import pearson
from .verdicts import (BUDGET_DEP, FAILS, HOLDS, INCONCL, NO_LADDER, _stable_txt, _summary, cap_label,
                       correlation_ladder_verdict, rule_below_params, rule_corruption, rule_double_descent,
                       rule_fits, rule_more, stable_of)


def unpack(res: tuple) -> tuple:
    """A rule's outcome as (verdict, text, summary): rules of one cap return no summary."""
    return (res[0], res[1], res[2] if len(res) > 2 else {})


def combine(parts: list, reported: list = ()) -> tuple:
    """A finding of several parts [(label, (verdict, text[, summary]))]: holds if every part holds,
    does not hold if any does not, budget-dependent if any part is, no ladder if any part has none,
    else inconclusive. `reported` parts are measured and listed but never decide. The summary (the
    one-screen table's cells) is that of the first part whose verdict is the finding's, labelled with
    it, and the budget-stable share over every deciding part's jobs."""
    ps = [(lbl, *unpack(res)) for lbl, res in parts]
    vs = [v for _, v, _, _ in ps]
    if vs and all(v == HOLDS for v in vs):
        verdict = HOLDS
    elif FAILS in vs:
        verdict = FAILS
    elif BUDGET_DEP in vs:
        verdict = BUDGET_DEP
    elif NO_LADDER in vs:
        verdict = NO_LADDER
    else:
        verdict = INCONCL
    txt = "; ".join(f"**{lbl}**: {t} [{v}]" for lbl, v, t, _ in ps)
    if reported:
        txt += "; reported (does not decide): " + "; ".join(
            f"**{lbl}**: {t} [{v}]" for lbl, v, t, _ in (( lbl, *unpack(res)) for lbl, res in reported))
    summary: dict = {}
    head = next((p for p in ps if p[1] == verdict), ps[0] if ps else None)
    if head is not None and head[3]:
        summary = dict(head[3])
        if len(ps) > 1:
            summary["effect"] = f"{head[0]}: {summary.get('effect', '')}"
            summary["part"] = head[0]
        stable: dict = {}
        for _, _, _, sm in ps:
            stable.update(sm.get("stable") or {})
        summary["stable"] = stable
        summary["parts"] = [(lbl, v, sm) for lbl, v, _, sm in ps]
    return verdict, txt, summary


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


def _job_path(sw: Sweep, path: str) -> Optional[str]:
    """A job directory named in generalization.csv (an absolute path of the machine that reported it):
    as written when it exists, else its last components under the sweep dir."""
    if not path:
        return None
    p = Path(path)
    if (p / "emc.json").exists():
        return str(p)
    for k in range(1, min(4, len(p.parts)) + 1):
        tail = Path(*p.parts[-k:])
        if (sw.dir / tail / "emc.json").exists():
            return str(tail)
    return None


def generalization_ladder(sw: Sweep, points: list) -> dict:
    """Per cap, the (semantic, random labels) points with the EMC increase at that rung (the gap does
    not depend on the cap): {cap: [point, ...]}; empty when the jobs ran no ladder."""
    out: dict = {}
    for q in points:
        js, jr = _job_path(sw, q.get("semantic_job")), _job_path(sw, q.get("random_job"))
        ls = ladder(sw, {"job": js}) if js else None
        lr = ladder(sw, {"job": jr}) if jr else None
        if not ls or not lr:
            continue
        for c in sorted(set(ls) & set(lr)):
            es, er = float(ls[c]["emc"]), float(lr[c]["emc"])
            if er > 0:
                out.setdefault(c, []).append({**q, "emc_increase_pct": 100.0 * (es - er) / er})
    return out


def rule_generalization(sw: Sweep) -> tuple:
    """P4 within each family present (mlp, cnn), r over per-size means, at every rung of the ladder;
    pooled r reported. Without a ladder: the one cap's r, and NO_LADDER."""
    g = sw.report.get("generalization") or {}
    points = generalization_points(sw)
    fams = [f for f in ("mlp", "cnn") if any(p.get("arch") == f for p in points)]
    if not fams:
        pooled = g.get("r")
        if pooled is None or not points:
            return INCONCL, f"{len(points)} (semantic, random labels) pair(s): too few or constant for a correlation"
        fams = [None]
    by_cap = generalization_ladder(sw, points)
    parts = []
    for f in fams:
        jobs = [r for r in sw.rows if r.get("search") != "fixed" and (f is None or matches(r, {"arch": f}))]
        st = stable_of(sw, jobs)
        d = within_family(points, f) if f else {"r": g["r"], "p": g["p"], "sizes": len(points), "points": len(points),
                                                 "r_all": g["r"], "p_all": g["p"], "gap_n": []}
        gap = (f"gap at n = {', '.join(d['gap_n'])}" if d["gap_n"] and d["gap_n"] != ["None"] else
               "gap of the semantic EMC search at its EMC")
        if not by_cap:
            txt = (f"at one cap {_r(d['r'], d['p'])} over {d['sizes']} size(s) (means over seeds); over all "
                   f"{d['points']} (size, seed) points {_r(d['r_all'], d['p_all'])}; {gap}; the jobs ran no "
                   "ladder of caps: no verdict")
            parts.append((f or "all pairs", (NO_LADDER, txt, _summary(None, st, f"r {d['r']:+.2f} (one cap)"
                                                                     if math.isfinite(d["r"]) else "n/a",
                                                                     "no ladder"))))
            continue
        per = {}
        for c, pts in by_cap.items():
            w = within_family(pts, f) if f else {"r": pearson([q["generalization_gap"] for q in pts],
                                                              [q["emc_increase_pct"] for q in pts])[0],
                                                  "p": pearson([q["generalization_gap"] for q in pts],
                                                               [q["emc_increase_pct"] for q in pts])[1],
                                                  "sizes": len(pts)}
            per[c] = (w["r"], w["p"], w["sizes"])
        lv = correlation_ladder_verdict(per)
        rungs = ", ".join(f"{cap_label(c)}: {_r(r, p)} over {n} size(s)" for c, (r, p, n) in sorted(per.items()))
        txt = (f"per rung {rungs}; {lv.trend}" + (f"; {lv.change}" if lv.change else "")
               + (f" ({lv.reason})" if lv.reason else "") + f"; {gap}; {_stable_txt(st)}")
        top = max(per)
        parts.append((f or "all pairs", (lv.verdict, txt, _summary(
            lv, st, f"r {per[top][0]:+.2f} (p = {per[top][1]:.2g}) at {cap_label(top)}", lv.trend))))
    r_all, p_all = pearson([q["generalization_gap"] for q in points], [q["emc_increase_pct"] for q in points])
    pooled = [("pooled over families", (INCONCL, f"{_r(r_all, p_all)} over {len(points)} (size, seed) points"
                                                  + (" at the top rung" if by_cap else "")))
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
    short: str = ""   # the claim in a few words (REPRODUCTION.md's one-screen table)
    number: str = ""  # the paper's number (or statement) in a few words


FINDINGS = [
    Finding("P1", "Shwartz-Ziv et al. 2024 (headline 1)",
            "Standard training finds minima that fit far fewer samples than the model has parameters (EMC < "
            "#params), on random labels, for MLPs and CNNs.",
            "emc_archs", rule_p1, "emc_vs_params",
            "a longer ladder (larger train.caps); then the paper-scale sweep (CIFAR-10/ImageNet, 1e4-1e6 parameters)",
            paper="finding (1): on randomly labelled data the EMC is well below the parameter count; with "
                  "semantic labels CNNs fit more samples than they have parameters (the exception)"),
    Finding("P2", "Shwartz-Ziv et al. 2024 (headline 2)",
            "CNNs are more parameter-efficient than MLPs and ViTs, even on randomly labelled data.",
            "emc_archs", rule_p2, "emc_vs_params",
            "a longer ladder; CNN and ViT sizes that overlap more (the ViT's smallest sensible shape is ~1k "
            "parameters here)",
            paper="finding (2): CNN EMC above MLP and ViT EMC at equal parameter count, on semantic and on "
                  "random labels"),
    Finding("P3", "Shwartz-Ziv et al. 2024 (headline 3)",
            "SGD finds minima that fit more training data than full-batch gradient descent.",
            "emc_optimizers", rule_p3, "log_emc",
            "a longer ladder at the tuned lrs",
            paper="finding (3): SGD's EMC above full-batch GD's; on random labels SGD's advantage evaporates; "
                  "Shampoo about as good as SGD"),
    Finding("P4", "Shwartz-Ziv et al. 2024 (headline 4)",
            "The difference between fitting correctly and randomly labelled samples predicts generalisation "
            "(larger EMC increase from random to semantic labels <-> smaller generalisation gap).",
            "emc_archs", rule_generalization, "generalization",
            "a longer ladder; more sizes per family",
            paper="finding (4): within a family, Pearson r = -0.93 (CNNs) and -0.87 (MLPs) between the EMC "
                  "increase and the generalisation gap"),
    Finding("P5", "Shwartz-Ziv et al. 2024 (headline 5)",
            "ReLU activations find minima that fit more data than sigmoidal ones (sigmoid, tanh).",
            "emc_activations", rule_p5, "log_emc", "a longer ladder; CNNs at the paper's sizes",
            paper="finding (5): ReLU networks fit more samples than sigmoidal ones"),
    Finding("P6", "Shwartz-Ziv et al. 2024 (data)",
            "Networks fit more samples with semantic labels than with random labels.",
            "emc_archs", lambda s: rule_more(s, {"labeling": "semantic"}, {"labeling": "random_labels"}),
            "emc_vs_params", "a longer ladder; larger pools",
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

# the one-screen table's cells: the claim in a few words, the paper's number in a few words
_SHORT = {
    "P1": ("EMC below #params, random labels (MLP, CNN)", "EMC well below #params"),
    "P2": ("CNN fits more than MLP and ViT", "CNN > MLP, ViT on both labelings"),
    "P3": ("SGD fits more than full-batch GD", "SGD > GD (semantic)"),
    "P4": ("EMC gain predicts generalisation", "r = -0.93 (CNN), -0.87 (MLP)"),
    "P5": ("ReLU fits more than sigmoid, tanh", "ReLU > sigmoidal"),
    "P6": ("semantic labels fit more than random", "semantic > random, every arch"),
    "Z1": ("random labels fitted; test at chance", "0% train error, ~90% test error"),
    "Z2": ("random inputs fitted", "0% train error"),
    "Z3": ("corruption slows fitting, raises test error", "time to fit grows with p (Fig. 1b)"),
    "D1": ("test-error peak at the interpolation threshold", "peak near the threshold"),
}
for _f in FINDINGS:
    _f.short, _f.number = _SHORT.get(_f.id, (_f.claim, _f.paper))
