"""Verdicts of the reproduction: each finding of the papers (FINDINGS) and the rule that decides it.

Each rule reads a reported sweep (`reported.Sweep`) and returns (verdict, what was measured). The
rules are fixed before the runs and never tuned to the numbers (RULES_TEXT states them;
REPRODUCTION.md repeats it). Unit-tested on synthetic sweeps in tests/test_verdicts.py.
"""
from __future__ import annotations

import math

from .reported import (Sweep, as_float, budget_bound, column, converged, job_labeling, job_result, matches,
                       resolution, steps_to_fit)
from .stats import TUNED_KEYS, mean_se
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
