"""Verdicts of the reproduction: each finding of the papers (FINDINGS) and the rule that decides it.

Each rule reads a reported sweep (`reported.Sweep`) and returns (verdict, what was measured[, a short
summary for REPRODUCTION.md's one-screen table]). The rules are fixed before the runs and never tuned
to the numbers (RULES_TEXT states them; REPRODUCTION.md repeats it).

The EMC findings (P1-P6) are decided on the budget ladder (docs/convergence.md: every job reports
EMC(C) at each rung C of `train.caps`, emc.json `emc_by_cap`): `ladder_verdict` is the rule, a pure
function of per-unit values at each rung (a unit is a pair of jobs for a paired comparison, a job for
EMC-below-parameters); `correlation_ladder_verdict` is the same rule for a correlation per rung (P4).
A sweep whose jobs carry no ladder (the sweeps committed before it) gets NO_LADDER, never a verdict.
Unit-tested on synthetic ladders in tests/test_ladder_verdicts.py and on synthetic sweeps in
tests/test_verdicts.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .reported import (Sweep, as_float, budget_bound, budget_stable, column, job_labeling, job_result, ladder,
                       matches, resolution, steps_to_fit)
from .stats import TUNED_KEYS, mean_se
from .hparams import TUNE_RULE_TEXT
from .tables import ROW_FIELDS

HOLDS, FAILS, INCONCL = "holds", "does not hold", "inconclusive at this scale"
BUDGET_DEP = "budget-dependent"   # significant at some rungs of the ladder and not others, or shrinking to zero
BUDGET = BUDGET_DEP               # the name the rest of the analysis imports
NO_LADDER = "no ladder: re-run"   # an EMC finding on jobs that ran one cap: measured, never decided
WINDOW = 3        # the rule decides on the three largest rungs of the ladder
Z = 2.0           # "significant": more than 2 SE from zero
ALPHA = 0.05      # correlations: p below this
PEAK_NEAR = 2.0  # D1: the peak must lie within this factor (in parameters) of the interpolation threshold

RULES_TEXT = """\
* **The budget ladder** (every EMC finding, P1-P6): each job measures EMC(C) at every rung C of a
  ladder of doubling step caps (emc.json `emc_by_cap`, docs/convergence.md). A finding is decided on
  the **three largest rungs**. Per rung, the finding's quantity (below) has a mean and a standard
  error (SE) over its units; it is *significant* at a rung when the mean is more than 2 SE from zero
  (with 2 units or more). The **trend** is the slope per doubling of the cap: each unit's values
  regressed on log2(cap) over the three rungs, mean and SE of the slopes over the units.
  **holds** when the quantity is significant in the claimed direction at each of the three rungs and
  its slope is not toward zero by more than 2 SE; **does not hold** when it is significant against
  the claim at each of them; **budget-dependent** when it is significant at some of them and not at
  others, or significant at all of them with a slope toward zero by more than 2 SE (the verdict
  names the rung where it changes and the trend); otherwise **inconclusive**. A ladder of fewer
  than three rungs is **inconclusive**; jobs without a ladder (one cap: the sweeps committed before
  the ladder) give **no ladder: re-run**, with their single-cap numbers shown, never a verdict.
  The share of jobs whose EMC is *budget-stable* (emc.json `budget_stable`: it grew by no more than
  the search's resolution over the last rung) is reported beside every verdict; it does not decide.
  The rule "90% of the EMCs converged" of earlier versions is retired: a verified minimum cannot be
  had at this scale (docs/convergence.md).
* **A fits more than B** (paired comparison): pair every EMC job of A with the job of B that agrees
  on every other swept key (parameter count, seed, other axes; the tuned lr aside); the unit is a
  pair, its value at a rung d = log10(EMC_A(C) / EMC_B(C)). A rung whose |mean d| is not larger
  than the searches' own resolution there (mean log10(failed size / EMC) of the rung's brackets) is
  not significant, however small its SE. Lower-bound EMCs (the whole pool fitted) are counted.
* **EMC below the parameter count** (P1): the unit is a job, its value r = log10(EMC(C) / actual
  parameters); claimed direction: below zero.
* **Generalisation** (P4, within one architecture family): per rung, per model size, the mean over
  seeds of the percent increase of EMC(C) from random to semantic labels and of the generalisation
  gap (train minus test accuracy of the same size and seed trained on semantic labels at one fixed n,
  measured on the whole test split; it does not depend on C); Pearson r over the sizes. At a rung a
  family is significant for the claim if r < 0 with p < 0.05, against it if r > 0 with p < 0.05.
  **holds** if every family is significant for the claim at each of the three largest rungs,
  **does not hold** if a family is significant against it at each of them, **budget-dependent** if
  a family is significant at some rungs and not others, otherwise **inconclusive** (no slope: a
  correlation has no paired trend). The r over all (size, seed) points and the r pooled over
  families are reported, never decide.
* **Several parts** (P1: MLP and CNN; P2: CNN against MLP and ViT on both labelings; P5: ReLU against
  sigmoid and tanh): the finding **holds** if every part holds, **does not hold** if any part does
  not hold, **budget-dependent** if any part is, **no ladder: re-run** if any part has no ladder,
  otherwise **inconclusive**. Comparisons listed as *reported* (semantic labels in P1, random labels
  and Shampoo in P3, identity in P5) are measured and shown beside the paper's statement but do not
  decide.
* **Fits randomised data** (search=fixed at n): the fraction of jobs whose final training accuracy
  reached the fit threshold (1.0); **holds** if all did, **does not hold** if none did, otherwise
  **inconclusive**.
* **Corruption** (Z3): Spearman correlation with the corruption level p of (i) optimizer steps to fit
  (jobs that never fitted rank last) over every level, (ii) the same over the levels p > 0 only
  (Zhang et al. state a gradual growth, which a jump from p = 0 to p = 0.1 alone does not show), and
  (iii) test error; **holds** if all three rho > 0 with p < 0.05, **does not hold** if any rho < 0
  with p < 0.05, otherwise **inconclusive** (the text says which failed).
* **Double descent** (search=fixed jobs trained a fixed length past the fit): per size, mean test
  error and its SE over seeds, from the report; the interpolation threshold is the smallest size
  whose mean final train error is <= 1%. A size is a *peak* if its mean test error exceeds both the
  lowest mean error at smaller sizes and the lowest at larger sizes by more than 2 SE of the
  difference (sqrt(SE_a^2 + SE_b^2)). **holds** if the peak with the highest error lies within 2x
  (in parameters) of the threshold; **does not hold** if there is no peak, or it lies further away;
  **inconclusive** if the jobs stopped at the first fit, fewer than 3 sizes or 3 seeds per size,
  no size interpolates, or the threshold is the smallest or largest size swept.
* A preset that did not run, or whose report is missing, gives **inconclusive** with the reason.
""" + TUNE_RULE_TEXT + "\n"


# ------------------------------------------------------------------ the ladder rule (pure functions)

def cap_label(cap) -> str:
    """5000 -> '5k', 2500 -> '2.5k', 15783 -> '15.8k', 800 -> '800'."""
    c = float(cap)
    return f"{c / 1000:.3g}k" if c >= 1000 else f"{c:.3g}"


def significance(m: float, se: float, n: int, res: float = 0.0) -> int:
    """+1 if m is more than Z SE above zero (and |m| above the resolution res), -1 if more than Z SE
    below, 0 otherwise (fewer than 2 units, SE undefined)."""
    if n < 2 or not math.isfinite(m) or not math.isfinite(se) or abs(m) <= res:
        return 0
    return 1 if m > Z * se else -1 if m < -Z * se else 0


def rung_stats(units: list, resolution: Optional[dict] = None) -> list:
    """units: per unit (a pair, a job) {cap: value}. Per cap, ascending: mean and SE over the units
    that have it, their count, the resolution (0 unless given) and the significance (+1, -1, 0)."""
    caps = sorted({c for u in units for c in u})
    out = []
    for c in caps:
        vals = [u[c] for u in units if c in u and u[c] is not None and math.isfinite(u[c])]
        m, se = mean_se(vals)
        res = float((resolution or {}).get(c) or 0.0)
        out.append({"cap": c, "mean": m, "se": se, "n": len(vals), "resolution": res,
                    "sig": significance(m, se, len(vals), res)})
    return out


def ladder_slope(units: list, caps: list) -> tuple:
    """The trend per doubling of the cap, paired: each unit's values at `caps` (2 or more of them)
    regressed on log2(cap); mean and SE of the slopes over the units, and their count."""
    slopes = []
    for u in units:
        pts = [(math.log2(c), u[c]) for c in caps if c in u and u[c] is not None and math.isfinite(u[c])]
        if len(pts) >= 2 and len({x for x, _ in pts}) >= 2:
            x, y = np.array(pts).T
            slopes.append(float(np.polyfit(x, y, 1)[0]))
    m, se = mean_se(slopes)
    return m, se, len(slopes)


_CLASS = {1: "above 2 SE", -1: "below -2 SE", 0: "within 2 SE of zero"}


def _changes(window: list, key: str = "sig") -> str:
    """Where the significance changes along the window: 'below -2 SE at 2.5k; within 2 SE of zero at
    5k; above 2 SE at 10k (changes at 5k, 10k)'."""
    runs, at = [], []
    for i, r in enumerate(window):
        if i and r[key] != window[i - 1][key]:
            at.append(cap_label(r["cap"]))
        if runs and runs[-1][0] == r[key]:
            runs[-1][1].append(r["cap"])
        else:
            runs.append((r[key], [r["cap"]]))
    parts = [f"{_CLASS[k]} at {'-'.join(cap_label(c) for c in (cs if len(cs) < 3 else [cs[0], cs[-1]]))}"
             for k, cs in runs]
    return "; ".join(parts) + (f" (changes at {', '.join(at)})" if at else "")


@dataclass
class LadderVerdict:
    """The ladder rule's outcome: the verdict, every rung's statistics (rungs), the rungs it decided on
    (window), the trend per doubling over the window, its words, and where the verdict changes."""
    verdict: str
    rungs: list
    window: list
    slope: float = float("nan")
    slope_se: float = float("nan")
    slope_units: int = 0
    trend: str = ""
    change: str = ""
    reason: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def top(self) -> Optional[dict]:
        return self.rungs[-1] if self.rungs else None

    def effect(self) -> str:
        """The measured value at the top rung, 'm ± se (at 10k)'."""
        t = self.top
        return f"{_ci(t['mean'], t['se'])} at {cap_label(t['cap'])}" if t else "n/a"

    def trend_text(self) -> str:
        if not math.isfinite(self.slope):
            return self.trend or "n/a"
        return f"{self.slope:+.3f} ± {self.slope_se:.3f} per doubling ({self.trend})" \
            if math.isfinite(self.slope_se) else f"{self.slope:+.3f} per doubling (SE n/a)"

    def text(self) -> str:
        per = ", ".join(f"{cap_label(r['cap'])}: {_ci(r['mean'], r['se'])} (n={r['n']})" for r in self.rungs)
        out = f"per rung {per}; trend {self.trend_text()}"
        if self.change:
            out += f"; {self.change}"
        if self.reason:
            out += f" ({self.reason})"
        return out


def _trend_words(slope: float, se: float, top_mean: float) -> str:
    """'flat' within 2 SE; else 'growing' (away from zero: the slope has the sign of the window's mean
    value) or 'toward zero'."""
    if not math.isfinite(slope) or not math.isfinite(se) or abs(slope) <= Z * se:
        return "flat (within 2 SE)"
    if not math.isfinite(top_mean) or top_mean == 0:
        return "rising" if slope > 0 else "falling"
    return "growing" if slope * top_mean > 0 else "toward zero"


def ladder_verdict(units: list, claim: int = 1, resolution: Optional[dict] = None,
                   window: int = WINDOW) -> LadderVerdict:
    """The ladder rule (RULES_TEXT) on per-unit values at each rung ({cap: value} per pair or job).
    claim: +1 when the finding claims the quantity is above zero (A fits more than B), -1 when below
    (EMC below the parameter count). Decided on the `window` largest rungs."""
    rungs = rung_stats(units, resolution)
    rungs = [r for r in rungs if r["n"] >= 1]
    if len(rungs) < window:
        return LadderVerdict(INCONCL, rungs, rungs, reason=f"a ladder of {len(rungs)} rung(s): need {window}")
    win = rungs[-window:]
    slope, sse, k = ladder_slope(units, [r["cap"] for r in win])
    top = win[-1]["mean"]
    trend = _trend_words(slope, sse, float(np.mean([r["mean"] for r in win])))
    lv = LadderVerdict(INCONCL, rungs, win, slope, sse, k, trend)
    signs = [claim * r["sig"] for r in win]
    # toward zero: against the sign of the claim's side the quantity is on, by more than 2 SE
    toward = (math.isfinite(slope) and math.isfinite(sse) and all(s == signs[0] for s in signs) and signs[0] != 0
              and slope * claim * signs[0] < 0 and abs(slope) > Z * sse)
    if all(s == 1 for s in signs) and not toward:
        lv.verdict = HOLDS
    elif all(s == -1 for s in signs):
        lv.verdict = FAILS
    elif any(s != 0 for s in signs):
        lv.verdict = BUDGET_DEP
        if toward:
            step = abs(slope)
            lv.change = (f"significant at every rung but shrinking toward zero by {step:.3f} per doubling"
                         + (f" (extrapolated to zero near {cap_label(win[-1]['cap'] * 2 ** (abs(top) / step))})"
                            if step > 0 and math.isfinite(top) and abs(top) / step <= 10 else ""))
        else:
            lv.change = _changes(win)
            if any(r["sig"] == 1 for r in win) and any(r["sig"] == -1 for r in win):
                lv.change += "; the sign flips with the budget"
    else:
        lv.reason = "within 2 SE of zero (or of the resolution) at each of the three largest rungs"
    return lv


def correlation_ladder_verdict(per_rung: dict, window: int = WINDOW, alpha: float = ALPHA) -> LadderVerdict:
    """P4's rule at every rung for one family: per_rung {cap: (r, p, sizes)}; the claim is r < 0.
    At a rung: +1 (for the claim) if r < 0 and p < alpha, -1 if r > 0 and p < alpha, else 0
    (fewer than 3 sizes, r undefined). Same verdicts as ladder_verdict, without a slope."""
    rungs = []
    for c in sorted(per_rung):
        r, p, n = per_rung[c]
        ok = n >= 3 and r is not None and p is not None and math.isfinite(r) and math.isfinite(p)
        sig = (-1 if r < 0 else 1) if ok and p < alpha and r != 0 else 0
        rungs.append({"cap": c, "mean": r if r is not None else float("nan"), "se": float("nan"), "p": p, "n": n,
                      "sig": sig})
    if len(rungs) < window:
        return LadderVerdict(INCONCL, rungs, rungs, reason=f"a ladder of {len(rungs)} rung(s): need {window}")
    win = rungs[-window:]
    first, last = win[0]["mean"], win[-1]["mean"]
    lv = LadderVerdict(INCONCL, rungs, win, trend=f"r from {first:+.2f} at {cap_label(win[0]['cap'])} to "
                                                   f"{last:+.2f} at {cap_label(win[-1]['cap'])}")
    signs = [-r["sig"] for r in win]   # the claim is a negative r
    if all(s == 1 for s in signs):
        lv.verdict = HOLDS
    elif all(s == -1 for s in signs):
        lv.verdict = FAILS
    elif any(s != 0 for s in signs):
        lv.verdict = BUDGET_DEP
        lv.change = _changes(win).replace("above 2 SE", "r > 0, p < 0.05").replace(
            "below -2 SE", "r < 0, p < 0.05").replace("within 2 SE of zero", "p >= 0.05")
    else:
        lv.reason = "p >= 0.05 at each of the three largest rungs"
    return lv


# ------------------------------------------------------------------ reading the ladder off a sweep

def _pairs(sw: Sweep, a: dict, b: dict) -> list:
    """Pairs of EMC rows (A, B) that agree on every other swept key (the tuned lr aside)."""
    emc_rows = [r for r in sw.rows if r.get("search") != "fixed"]
    swept = [k for k in (emc_rows[0].keys() if emc_rows else [])
             if k not in ("job", "group", *ROW_FIELDS, "emc_cap_steps", "emc_by_cap", "budget_stable")]
    sel_keys = {k for k in [*a, *b]}
    other = [k for k in swept if k not in TUNED_KEYS
             and not any(k == s or k == f"{s}.name" or k.startswith(f"{s}.") for s in sel_keys)]

    def key(r):
        return tuple(r.get(k) for k in other)

    A = {key(r): r for r in emc_rows if matches(r, a)}
    B = {key(r): r for r in emc_rows if matches(r, b)}
    return [(A[k], B[k]) for k in sorted(set(A) & set(B), key=str)]


def paired_log_ratio(sw: Sweep, a: dict, b: dict) -> dict:
    """Pairs of EMC jobs that agree on every other swept key: log10(EMC_a / EMC_b) per pair (the EMC
    of emc.csv: the top rung's, or the one cap's of a job without a ladder)."""
    diffs, lower, bound, jobs, res = [], 0, [0, 0], [], []
    for ra, rb in _pairs(sw, a, b):
        ea, eb = as_float(ra["emc"]), as_float(rb["emc"])
        if not ea or not eb:
            continue
        diffs.append(math.log10(ea / eb))
        jobs += [ra, rb]
        res += [x for x in (resolution(ra), resolution(rb)) if x is not None]
        lower += (ra.get("lower_bound") == "True") + (rb.get("lower_bound") == "True")
        bound[0] += budget_bound(sw, ra)
        bound[1] += budget_bound(sw, rb)
    (m, se), n = mean_se(diffs), len(diffs)
    return {"mean": m, "se": se, "pairs": n, "lower_bounds": lower, "diffs": diffs, "budget_bound": bound,
            "jobs": jobs, "resolution": sum(res) / len(res) if res else 0.0}


def _rung_resolution(rung: dict) -> Optional[float]:
    br = rung.get("bracket") or {}
    e, f = as_float(rung.get("emc")), as_float(br.get("failed"))
    if not e or not f or f <= e:
        return None
    return math.log10(f / e)


def paired_ladder(sw: Sweep, a: dict, b: dict) -> dict:
    """Per pair of jobs with a ladder each: {cap: log10(EMC_a(cap) / EMC_b(cap))} at the caps both
    have; the searches' resolution per cap (mean over the pair's brackets); lower bounds per cap; the
    pairs without a ladder; the jobs."""
    units, res, lower, jobs, missing = [], {}, {}, [], 0
    for ra, rb in _pairs(sw, a, b):
        la, lb = ladder(sw, ra), ladder(sw, rb)
        if not la or not lb:
            missing += 1
            continue
        u = {}
        for c in sorted(set(la) & set(lb)):
            ea, eb = as_float(la[c].get("emc")), as_float(lb[c].get("emc"))
            if not ea or not eb:
                continue
            u[c] = math.log10(ea / eb)
            res.setdefault(c, []).extend(x for x in (_rung_resolution(la[c]), _rung_resolution(lb[c])) if x is not None)
            lower[c] = lower.get(c, 0) + bool(la[c].get("lower_bound")) + bool(lb[c].get("lower_bound"))
        if u:
            units.append(u)
            jobs += [ra, rb]
    return {"units": units, "resolution": {c: sum(v) / len(v) for c, v in res.items() if v}, "lower": lower,
            "jobs": jobs, "missing": missing}


def stable_of(sw: Sweep, jobs: list) -> dict:
    """{job: budget_stable (True, False, None)} over the distinct jobs."""
    return {r.get("job", str(id(r))): budget_stable(sw, r) for r in jobs}


def share(stable: dict) -> tuple:
    """(budget-stable jobs, jobs with a known budget_stable, jobs) of a {job: budget_stable}."""
    vals = list(stable.values())
    return sum(v is True for v in vals), sum(v is not None for v in vals), len(vals)


def stable_share(sw: Sweep, jobs: list) -> tuple:
    """(budget-stable jobs, jobs with a known budget_stable, jobs) among the distinct jobs."""
    return share(stable_of(sw, jobs))


def _stable_txt(stable: dict) -> str:
    k = share(stable)
    return f"budget-stable EMCs {k[0]}/{k[2]}" + (f" ({k[2] - k[1]} unknown)" if k[1] < k[2] else "")


def _summary(lv: Optional[LadderVerdict], stable: dict, effect: str = "", trend: str = "") -> dict:
    """What REPRODUCTION.md's one-screen table shows of a rule's outcome: the effect at the top rung,
    the trend, {job: budget_stable} of the jobs it rests on, the rungs (for the figure)."""
    if lv is None:
        return {"effect": effect, "trend": trend, "stable": stable, "rungs": [], "ladder": None}
    return {"effect": effect or lv.effect(), "trend": trend or lv.trend_text(), "stable": stable,
            "rungs": lv.rungs, "ladder": lv}


def _ci(m, se) -> str:
    if m is None or not math.isfinite(m):
        return "n/a"
    return f"{m:+.3f} ± {se:.3f}" if se is not None and math.isfinite(se) else f"{m:+.3f} (SE n/a)"


def _lbl(sel: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sel.items())


def rule_more(sw: Sweep, a: dict, b: dict) -> tuple:
    """A fits more than B, on the ladder (RULES_TEXT); without a ladder, the one cap's paired mean is
    shown and the verdict is NO_LADDER."""
    pl = paired_ladder(sw, a, b)
    what = f"log10(EMC {_lbl(a)} / EMC {_lbl(b)})"
    if not pl["units"]:
        r = paired_log_ratio(sw, a, b)
        st = stable_of(sw, r["jobs"])
        txt = (f"mean {what} = {_ci(r['mean'], r['se'])} over {r['pairs']} pair(s) at one cap"
               + (f"; {r['lower_bounds']} lower-bound job(s)" if r["lower_bounds"] else "")
               + "; the jobs ran no ladder of caps (emc.json has no emc_by_cap): no verdict")
        return NO_LADDER, txt, _summary(None, st, f"{_ci(r['mean'], r['se'])} (one cap)", "no ladder")
    lv = ladder_verdict(pl["units"], claim=1, resolution=pl["resolution"])
    st = stable_of(sw, pl["jobs"])
    lows = sum(pl["lower"].values())
    txt = (f"{what} over {len(pl['units'])} pair(s): {lv.text()}; {_stable_txt(st)}"
           + (f"; {lows} lower-bound EMC(s) over the rungs" if lows else "")
           + (f"; {pl['missing']} pair(s) without a ladder left out" if pl["missing"] else ""))
    return lv.verdict, txt, _summary(lv, st)


def rule_below_params(sw: Sweep, sel: dict) -> tuple:
    """EMC below the parameter count at every rung (claim: log10(EMC(C) / params) < 0)."""
    units, jobs, single, missing = [], [], [], 0
    for r in sw.rows:
        if r.get("search") == "fixed" or not matches(r, sel):
            continue
        p = as_float(r.get("params_actual"))
        if not p:
            continue
        lad = ladder(sw, r)
        if lad:
            u = {c: math.log10(float(x["emc"]) / p) for c, x in lad.items() if as_float(x.get("emc"))}
            if u:
                units.append(u)
                jobs.append(r)
        else:
            missing += 1
            e = as_float(r.get("emc"))
            if e:
                single.append(math.log10(e / p))
                jobs.append(r)
    what = f"log10(EMC / params) ({_lbl(sel)})"
    st = stable_of(sw, jobs)
    if not units:
        if not single:
            return NO_LADDER if missing else INCONCL, f"no jobs ({_lbl(sel)})", _summary(None, st, "n/a", "")
        m, se = mean_se(single)
        txt = (f"mean {what} = {_ci(m, se)} over {len(single)} job(s) at one cap; EMC/params from "
               f"{min(10 ** x for x in single):.2f} to {max(10 ** x for x in single):.2f}; the jobs ran no "
               "ladder of caps (emc.json has no emc_by_cap): no verdict")
        return NO_LADDER, txt, _summary(None, st, f"{_ci(m, se)} (one cap)", "no ladder")
    lv = ladder_verdict(units, claim=-1)
    top = [u[max(u)] for u in units]
    txt = (f"{what} over {len(units)} job(s): {lv.text()}; EMC/params at the top rung from "
           f"{min(10 ** x for x in top):.2f} to {max(10 ** x for x in top):.2f}; {_stable_txt(st)}"
           + (f"; {missing} job(s) without a ladder left out" if missing else ""))
    return lv.verdict, txt, _summary(lv, st)


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
    sm = {"effect": f"{len(fit)}/{len(rows)} fitted; test acc {_ci(m, se).lstrip('+')}", "trend": "", "stable": None}
    if len(fit) == len(rows):
        return HOLDS, txt, sm
    if not fit:
        return FAILS, txt, sm
    return INCONCL, txt, sm


def corruption_test(pts: list) -> tuple:
    """Z3's rule (RULES_TEXT) on points (corruption level p, steps to fit or inf when never fitted, test
    error): Spearman rho of steps with p over every level and over p > 0 only, and of test error with p.
    Returns (verdict, {name: (rho, p-value, points)}, why)."""
    from scipy.stats import spearmanr

    def rho(sub, col):
        if len(sub) < 3 or len({q[0] for q in sub}) < 2:
            return float("nan"), float("nan"), len(sub)
        big = max([q[1] for q in sub if math.isfinite(q[1])] or [0.0]) + 1.0
        ys = [(q[1] if math.isfinite(q[1]) else big) if col == 1 else q[2] for q in sub]
        if len(set(ys)) < 2:
            return float("nan"), float("nan"), len(sub)
        s = spearmanr([q[0] for q in sub], ys)
        return float(s[0]), float(s[1]), len(sub)

    above0 = [q for q in pts if q[0] > 0]
    tests = {"steps": rho(pts, 1), "steps_p>0": rho(above0, 1), "test_error": rho(pts, 2)}
    sig_pos = {k: r > 0 and p < ALPHA for k, (r, p, _) in tests.items()}
    sig_neg = {k: r < 0 and p < ALPHA for k, (r, p, _) in tests.items()}
    if any(sig_neg.values()):
        return FAILS, tests, "a rho below zero with p < 0.05: " + ", ".join(k for k, v in sig_neg.items() if v)
    if all(sig_pos.values()):
        return HOLDS, tests, ""
    return INCONCL, tests, "not shown (rho > 0 with p < 0.05) for: " + ", ".join(k for k, v in sig_pos.items() if not v)


def rule_corruption(sw: Sweep) -> tuple:
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
    verdict, t, why = corruption_test(pts)
    never = sum(1 for p in pts if not math.isfinite(p[1]))
    per = []
    for L in levels:
        st = [p[1] for p in pts if p[0] == L and math.isfinite(p[1])]
        err = mean_se([p[2] for p in pts if p[0] == L])
        per.append(f"p={L:g}: steps {('%.0f' % (sum(st) / len(st))) if st else 'never'}, test error {err[0]:.3f}")
    s1, s0, s2 = t["steps"], t["steps_p>0"], t["test_error"]
    txt = (f"steps-to-fit rho = {s1[0]:.3f} (p = {s1[1]:.3g}); over p > 0 only rho = {s0[0]:.3f} "
           f"(p = {s0[1]:.3g}, {s0[2]} jobs); test-error rho = {s2[0]:.3f} (p = {s2[1]:.3g}); "
           f"{len(pts)} jobs, {never} never fitted; " + "; ".join(per) + (f" ({why})" if why else ""))
    return verdict, txt, {"effect": f"steps rho {s1[0]:.2f}; p > 0: {s0[0]:.2f} (p = {s0[1]:.2g})",
                          "trend": f"test-error rho {s2[0]:.2f}", "stable": None, "rungs": [], "ladder": None}


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
        sm = {"effect": f"peak at {p:.0f} params (test error {sizes[top]['test_error']:.3f}); threshold {thr:.0f}",
              "trend": "", "stable": None}
        if thr / PEAK_NEAR <= p <= thr * PEAK_NEAR:
            return HOLDS, txt + where + f"within {PEAK_NEAR:g}x of the threshold", sm
        return FAILS, txt + where + f"more than {PEAK_NEAR:g}x away from the threshold", sm
    return FAILS, txt + "; no size's test error exceeds both the best smaller and the best larger size by 2 SE"
