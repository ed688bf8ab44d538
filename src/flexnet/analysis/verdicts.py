"""Verdicts of the reproduction: each finding of the papers (FINDINGS) and the rule that decides it.

Each rule reads a reported sweep (`reported.Sweep`) and returns (verdict, what was measured). The
rules are fixed before the runs and never tuned to the numbers (RULES_TEXT states them;
REPRODUCTION.md repeats it). Unit-tested on synthetic sweeps in tests/test_verdicts.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .reported import (Sweep, as_float, budget_bound, column, converged, generalization_points, job_labeling,
                       job_result, matches, resolution, steps_to_fit)
from .stats import TUNED_KEYS, mean_se, pearson
from .hparams import TUNE_RULE_TEXT
from .tables import ROW_FIELDS

HOLDS, FAILS, INCONCL = "holds", "does not hold", "inconclusive at this scale"
BUDGET = "inconclusive (budget)"
CONVERGED_SHARE = 0.9  # the share of converged EMCs a finding needs before it can hold or fail
PEAK_NEAR = 2.0  # D1: the peak must lie within this factor (in parameters) of the interpolation threshold

RULES_TEXT = """\
* **A fits more than B** (paired comparison): pair every EMC job of A with the job of B that agrees
  on every other swept key (parameter count, seed, other axes); d = log10(EMC_A / EMC_B) per pair;
  mean d and its standard error (SE) over the pairs. **holds** if mean d > 2 SE, **does not hold**
  if mean d < -2 SE, otherwise (or with fewer than 2 pairs) **inconclusive**. Pairs in which a job
  fitted the whole pool (EMC only a lower bound) are counted and listed, and so are *budget-bound*
  EMCs: jobs where an attempt at the bracket's failed size ran out of budget before reaching a
  verified minimum (the size was not shown unfittable; a longer budget might fit it). Neither
  changes the verdict; both say how far it rests on the CPU budget.
* **EMC below the parameter count**: r = log10(EMC / actual parameters) per job; **holds** if
  mean r + 2 SE < 0, **does not hold** if mean r - 2 SE > 0, otherwise **inconclusive**.
* **Generalisation** (within one architecture family): per model size, the mean over seeds of the
  percent increase of EMC from random to semantic labels and of the generalisation gap (train minus
  test accuracy of the same size and seed trained on semantic labels at one fixed n, measured on the
  whole test split); Pearson r over the sizes. **holds** if r < 0 with p < 0.05 in every family,
  **does not hold** if r > 0 with p < 0.05 in any, otherwise **inconclusive**. The r over all
  (size, seed) points and the r pooled over families are reported, never decide.
* **Several parts** (P1: MLP and CNN; P2: CNN against MLP and ViT on both labelings; P5: ReLU against
  sigmoid and tanh): the finding **holds** if every part holds, **does not hold** if any part does
  not hold, **inconclusive (budget)** if any part is, otherwise **inconclusive**. Comparisons
  listed as *reported* (semantic labels in P1, random labels and Shampoo in P3, identity in P5) are
  measured and shown beside the paper's statement but do not decide.
* **Fits randomised data** (search=fixed at n): the fraction of jobs whose final training accuracy
  reached the fit threshold (1.0); **holds** if all did, **does not hold** if none did, otherwise
  **inconclusive**.
* **Corruption**: Spearman correlation with the corruption level p of (i) optimizer steps to fit
  (jobs that never fitted rank last) and (ii) test error; **holds** if both rho > 0 with p < 0.05,
  **does not hold** if either rho < 0 with p < 0.05, otherwise **inconclusive**.
* **Double descent** (search=fixed jobs trained a fixed length past the fit): per size, mean test
  error and its SE over seeds, from the report; the interpolation threshold is the smallest size
  whose mean final train error is <= 1%. A size is a *peak* if its mean test error exceeds both the
  lowest mean error at smaller sizes and the lowest at larger sizes by more than 2 SE of the
  difference (sqrt(SE_a^2 + SE_b^2)). **holds** if the peak with the highest error lies within 2x
  (in parameters) of the threshold; **does not hold** if there is no peak, or it lies further away;
  **inconclusive** if the jobs stopped at the first fit, fewer than 3 sizes or 3 seeds per size,
  no size interpolates, or the threshold is the smallest or largest size swept.
* **Budget** (every finding that rests on EMCs: P1-P6): a finding **holds** or **does not hold**
  only if at least 90% of the EMCs it rests on are *converged* (emc.json: every attempt at the
  failed size ended at a verified minimum, diverged or degenerate; none at the cap). Otherwise it
  is **inconclusive (budget)**, whatever the sign; the measured text says what it would have been.
* **Resolution**: a paired difference whose size |mean d| is not larger than the searches' own
  resolution (mean log10(failed size / EMC) of the jobs compared) is never called a difference:
  **inconclusive**, however small its SE.
* A preset that did not run, or whose report is missing, gives **inconclusive** with the reason.
""" + TUNE_RULE_TEXT + "\n"


def _gate(verdict: str, txt: str, jobs: list, sw: Sweep) -> tuple:
    """The budget rule: a finding holds or does not hold only when at least CONVERGED_SHARE of the
    EMCs it rests on are converged; otherwise it is inconclusive (budget), whatever the sign."""
    k = sum(converged(sw, r) for r in jobs)
    txt += f"; converged EMCs {k}/{len(jobs)}"
    if verdict in (HOLDS, FAILS) and (not jobs or k < CONVERGED_SHARE * len(jobs)):
        return BUDGET, txt + f" (below {CONVERGED_SHARE:.0%}: would have been '{verdict}')"
    return verdict, txt


def paired_log_ratio(sw: Sweep, a: dict, b: dict) -> dict:
    """Pairs of EMC jobs that agree on every other swept key: log10(EMC_a / EMC_b) per pair."""
    emc_rows = [r for r in sw.rows if r.get("search") != "fixed"]
    swept = [k for k in (emc_rows[0].keys() if emc_rows else []) if k not in ("job", "group", *ROW_FIELDS)]
    sel_keys = {k for k in [*a, *b]}
    other = [k for k in swept if k not in TUNED_KEYS
             and not any(k == s or k == f"{s}.name" or k.startswith(f"{s}.") for s in sel_keys)]

    def key(r):
        return tuple(r.get(k) for k in other)

    A = {key(r): r for r in emc_rows if matches(r, a)}
    B = {key(r): r for r in emc_rows if matches(r, b)}
    diffs, lower, bound, jobs, res = [], 0, [0, 0], [], []
    for k in sorted(set(A) & set(B), key=str):
        ea, eb = as_float(A[k]["emc"]), as_float(B[k]["emc"])
        if not ea or not eb:
            continue
        diffs.append(math.log10(ea / eb))
        jobs += [A[k], B[k]]
        res += [x for x in (resolution(A[k]), resolution(B[k])) if x is not None]
        lower += (A[k].get("lower_bound") == "True") + (B[k].get("lower_bound") == "True")
        bound[0] += budget_bound(sw, A[k])
        bound[1] += budget_bound(sw, B[k])
    (m, se), n = mean_se(diffs), len(diffs)
    return {"mean": m, "se": se, "pairs": n, "lower_bounds": lower, "diffs": diffs, "budget_bound": bound,
            "jobs": jobs, "resolution": sum(res) / len(res) if res else 0.0}


def _ci(m, se) -> str:
    if not math.isfinite(m):
        return "n/a"
    return f"{m:+.3f} ± {se:.3f}" if math.isfinite(se) else f"{m:+.3f} (SE n/a)"


def rule_more(sw: Sweep, a: dict, b: dict) -> tuple:
    r = paired_log_ratio(sw, a, b)
    m, se, n = r["mean"], r["se"], r["pairs"]
    txt = (f"mean log10(EMC {_lbl(a)} / EMC {_lbl(b)}) = {_ci(m, se)} over {n} pair(s)"
           + (f"; {r['lower_bounds']} lower-bound job(s)" if r["lower_bounds"] else "")
           + (f"; budget-bound EMCs: {r['budget_bound'][0]}/{n} of {_lbl(a)}, {r['budget_bound'][1]}/{n} of {_lbl(b)}"
              if any(r["budget_bound"]) else ""))
    if n < 2 or not math.isfinite(se):
        return _gate(INCONCL, txt + " (fewer than 2 pairs)", r["jobs"], sw)
    if abs(m) <= r["resolution"]:
        return _gate(INCONCL, txt + f" (|mean| not above the searches' resolution, {r['resolution']:.3f})",
                     r["jobs"], sw)
    if m > 2 * se:
        return _gate(HOLDS, txt, r["jobs"], sw)
    if m < -2 * se:
        return _gate(FAILS, txt, r["jobs"], sw)
    return _gate(INCONCL, txt, r["jobs"], sw)


def _lbl(sel: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sel.items())


def rule_below_params(sw: Sweep, sel: dict) -> tuple:
    rs, lower, bound, jobs = [], 0, 0, []
    for r in sw.rows:
        if r.get("search") == "fixed" or not matches(r, sel):
            continue
        e, p = as_float(r["emc"]), as_float(r["params_actual"])
        if e and p:
            rs.append(math.log10(e / p))
            jobs.append(r)
            lower += r.get("lower_bound") == "True"
            bound += budget_bound(sw, r)
    (m, se), n = mean_se(rs), len(rs)
    txt = (f"mean log10(EMC / params) = {_ci(m, se)} over {n} job(s) ({_lbl(sel)}); EMC/params from "
           f"{min(10 ** x for x in rs):.2f} to {max(10 ** x for x in rs):.2f}" if rs else "no jobs")
    if lower:
        txt += f"; {lower} lower-bound job(s)"
    if bound:
        txt += f"; {bound} budget-bound EMC(s)"
    if n < 2 or not math.isfinite(se):
        return _gate(INCONCL, txt, jobs, sw)
    if m + 2 * se < 0:
        return _gate(HOLDS, txt, jobs, sw)
    if m - 2 * se > 0:
        return _gate(FAILS, txt, jobs, sw)
    return _gate(INCONCL, txt, jobs, sw)


def _fitted(r: dict) -> bool:
    acc = as_float(r.get("train_accuracy"))
    return acc is not None and acc >= 1.0 - 1e-9


def rule_fits(sw: Sweep, labelings: list) -> tuple:
    rows = [r for r in sw.rows if str(column(r, "labeling")) in labelings]
    if not rows and len({column(r, "labeling") for r in sw.rows}) <= 1:
        # labeling did not vary (a single-labeling sweep): read it from the job's config
        rows = [r for r in sw.rows if job_labeling(sw, r) in labelings]
    if not rows:
        return INCONCL, f"no jobs with labeling in {labelings}"
    fit = [r for r in rows if _fitted(r)]
    te = [as_float(r.get("test_accuracy")) for r in rows]
    (m, se), n = mean_se(te), sum(x is not None for x in te)
    txt = (f"{len(fit)}/{len(rows)} job(s) reached 100% training accuracy ({', '.join(labelings)}); "
           f"test accuracy {m:.3f} ± {se if math.isfinite(se) else float('nan'):.3f} over {n} job(s)")
    if len(fit) == len(rows):
        return HOLDS, txt
    if not fit:
        return FAILS, txt
    return INCONCL, txt


def rule_corruption(sw: Sweep) -> tuple:
    from scipy.stats import spearmanr

    pts = []
    for r in sw.rows:
        j = job_result(sw, r)
        lab = ((j.get("config") or {}).get("labeling") or {})
        level = {"semantic": 0.0, "random_labels": 1.0}.get(lab.get("name"), lab.get("p"))
        te = as_float(r.get("test_accuracy"))
        if level is None or te is None:
            continue
        pts.append((float(level), steps_to_fit(sw, r), 1.0 - te))
    levels = sorted({p[0] for p in pts})
    if len(levels) < 3:
        return INCONCL, f"{len(pts)} job(s) at {len(levels)} corruption level(s): need 3 or more"
    big = max([s for _, s, _ in pts if math.isfinite(s)] or [0.0]) + 1.0
    lv = [p[0] for p in pts]
    s1 = spearmanr(lv, [p[1] if math.isfinite(p[1]) else big for p in pts])
    s2 = spearmanr(lv, [p[2] for p in pts])
    never = sum(1 for p in pts if not math.isfinite(p[1]))
    per = []
    for L in levels:
        st = [p[1] for p in pts if p[0] == L and math.isfinite(p[1])]
        err = mean_se([p[2] for p in pts if p[0] == L])
        per.append(f"p={L:g}: steps {('%.0f' % (sum(st) / len(st))) if st else 'never'}, test error {err[0]:.3f}")
    txt = (f"steps-to-fit rho = {s1[0]:.3f} (p = {s1[1]:.3g}); test-error rho = {s2[0]:.3f} (p = {s2[1]:.3g}); "
           f"{len(pts)} jobs, {never} never fitted; " + "; ".join(per))
    r1, p1, r2, p2 = float(s1[0]), float(s1[1]), float(s2[0]), float(s2[1])
    if any(math.isnan(x) for x in (r1, r2)):
        return INCONCL, txt
    if r1 > 0 and p1 < 0.05 and r2 > 0 and p2 < 0.05:
        return HOLDS, txt
    if (r1 < 0 and p1 < 0.05) or (r2 < 0 and p2 < 0.05):
        return FAILS, txt
    return INCONCL, txt


def _dd_groups(sw: Sweep) -> dict:
    return {k: v for k, v in (sw.report.get("double_descent") or {}).items() if not k.startswith("_")}


def rule_double_descent(sw: Sweep) -> tuple:
    """D1 from the report's double_descent block (report.json: per size mean/SE test and train error
    over seeds, the interpolation threshold, whether the jobs trained past the fit)."""
    groups = _dd_groups(sw)
    if len(groups) != 1:
        return INCONCL, f"{len(groups)} double-descent series in the report: need exactly one"
    (name, d), = groups.items()
    sizes = [s for s in d.get("sizes") or [] if as_float(s.get("test_error")) is not None]
    txt = "test error (mean ± SE over seeds; train error): " + ", ".join(
        f"{s['params']:.0f}: {s['test_error']:.3f}±{s['test_error_se']:.3f} ({s['train_error']:.3f})"
        if as_float(s.get("test_error_se")) is not None else f"{s['params']:.0f}: {s['test_error']:.3f}"
        for s in sizes)
    thr = as_float(d.get("interpolation_threshold"))
    txt += f"; interpolation threshold (mean train error <= {d.get('tol', 0.01):g}): " + \
        (f"{thr:.0f} parameters" if thr else "none")
    if not d.get("past_fit"):
        return INCONCL, txt + " (trained only to the first fit: early stopping suppresses the peak)"
    if len(sizes) < 3 or min(int(s.get("jobs", 0)) for s in sizes) < 3:
        return INCONCL, txt + " (need 3 or more sizes with 3 or more seeds each)"
    if thr is None:
        return INCONCL, txt + " (no size interpolates: the budget did not reach the threshold)"
    if thr <= sizes[0]["params"] or thr >= sizes[-1]["params"]:
        return INCONCL, txt + " (the threshold is at the edge of the sweep: no size on one side of it)"

    def above(i: int, j: int) -> bool:  # size i's error above size j's by more than 2 SE of the difference
        a, b = sizes[i], sizes[j]
        se = math.hypot(as_float(a.get("test_error_se")) or 0.0, as_float(b.get("test_error_se")) or 0.0)
        return a["test_error"] - b["test_error"] > 2 * se

    peaks = []
    for i in range(1, len(sizes) - 1):
        lo = min(range(i), key=lambda j: sizes[j]["test_error"])
        hi = min(range(i + 1, len(sizes)), key=lambda j: sizes[j]["test_error"])
        if above(i, lo) and above(i, hi):
            peaks.append(i)
    if peaks:
        top = max(peaks, key=lambda i: sizes[i]["test_error"])
        p, where = sizes[top]["params"], f"; peak at {sizes[top]['params']:.0f} parameters " \
                                         f"(test error {sizes[top]['test_error']:.3f}), "
        if thr / PEAK_NEAR <= p <= thr * PEAK_NEAR:
            return HOLDS, txt + where + f"within {PEAK_NEAR:g}x of the threshold"
        return FAILS, txt + where + f"more than {PEAK_NEAR:g}x away from the threshold"
    return FAILS, txt + "; no size's test error exceeds both the best smaller and the best larger size by 2 SE"


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
