"""The budget-ladder verdict rule (flexnet.analysis.verdicts.ladder_verdict and friends), Z3's rule over
p > 0, and REPRODUCTION.md's one-screen table, on synthetic ladders and sweeps (no training).

Units are {cap: value}: a pair's log10 EMC ratio or a job's log10(EMC / params) at each rung."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from flexnet.analysis import findings as F
from flexnet.analysis import verdicts as V
from flexnet.analysis.reported import Sweep

CAPS = (2500, 5000, 10000)


def _units(means: dict, n: int = 8, noise: float = 0.02) -> list:
    """n units whose value at each cap is means[cap] plus independent N(0, noise) noise (fixed seed), so
    that the rung means have an SE of about noise/sqrt(n) and the units' slopes one of their own."""
    rng = np.random.default_rng(0)
    return [{c: m + noise * float(rng.standard_normal()) for c, m in means.items()} for _ in range(n)]


def test_holds_when_significant_at_every_rung_and_not_shrinking():
    lv = V.ladder_verdict(_units({2500: 0.33, 5000: 0.34, 10000: 0.32}))
    assert lv.verdict == V.HOLDS, lv.text()
    assert "flat" in lv.trend and lv.top["cap"] == 10000 and len(lv.window) == 3
    assert lv.effect().startswith("+0.3") and lv.effect().endswith("at 10k")


def test_does_not_hold_when_below_minus_2se_at_every_rung():
    lv = V.ladder_verdict(_units({2500: -0.2, 5000: -0.25, 10000: -0.3}))
    assert lv.verdict == V.FAILS, lv.text()
    # only the three largest rungs decide: a positive first rung of a longer ladder changes nothing
    lv = V.ladder_verdict(_units({1250: 0.5, 2500: -0.2, 5000: -0.25, 10000: -0.3}))
    assert lv.verdict == V.FAILS and [r["cap"] for r in lv.window] == list(CAPS)


def test_budget_dependent_by_sign_flip_names_the_rungs_and_the_trend():
    # P2 on random labels in the issue: -0.21, +0.17, +0.31 at 2.5k, 5k, 10k
    lv = V.ladder_verdict(_units({2500: -0.206, 5000: +0.168, 10000: +0.310}))
    assert lv.verdict == V.BUDGET_DEP, lv.text()
    assert "below -2 SE at 2.5k" in lv.change and "above 2 SE at 5k-10k" in lv.change
    assert "changes at 5k" in lv.change and "sign flips" in lv.change
    assert lv.slope == pytest.approx((0.310 - (-0.206)) / 2, abs=0.02) and lv.trend == "growing"


def test_budget_dependent_by_a_gap_shrinking_to_zero():
    # P3 in the issue: +0.053, +0.006, +0.001: significant at the first rung only
    lv = V.ladder_verdict(_units({2500: 0.053, 5000: 0.006, 10000: 0.001}, noise=0.03))
    assert lv.verdict == V.BUDGET_DEP, lv.text()
    assert "above 2 SE at 2.5k" in lv.change and "within 2 SE of zero at 5k-10k" in lv.change
    assert lv.trend == "toward zero"
    # significant at every rung, but shrinking toward zero by far more than 2 SE a doubling: not "holds"
    lv = V.ladder_verdict(_units({2500: 0.40, 5000: 0.25, 10000: 0.10}, noise=0.01))
    assert lv.verdict == V.BUDGET_DEP, lv.text()
    assert "shrinking toward zero" in lv.change and "extrapolated to zero near 15.8k" in lv.change
    # the same gap, growing: holds
    assert V.ladder_verdict(_units({2500: 0.10, 5000: 0.25, 10000: 0.40}, noise=0.01)).verdict == V.HOLDS


def test_inconclusive_when_within_2se_everywhere_or_the_ladder_is_short():
    lv = V.ladder_verdict(_units({2500: 0.01, 5000: -0.01, 10000: 0.005}, noise=0.1))
    assert lv.verdict == V.INCONCL and "within 2 SE" in lv.reason
    lv = V.ladder_verdict(_units({5000: 0.3, 10000: 0.3}))
    assert lv.verdict == V.INCONCL and "need 3" in lv.reason
    # one unit: no SE, never significant
    assert V.ladder_verdict([{2500: 0.3, 5000: 0.3, 10000: 0.3}]).verdict == V.INCONCL


def test_a_difference_below_the_searches_resolution_is_not_significant():
    u = _units({2500: 0.03, 5000: 0.03, 10000: 0.03}, noise=0.001)
    assert V.ladder_verdict(u).verdict == V.HOLDS
    assert V.ladder_verdict(u, resolution={c: 0.04 for c in CAPS}).verdict == V.INCONCL


def test_p1_below_params_at_every_rung():
    # claim -1: the value (log10 EMC/params) is below zero at every rung and not rising toward it
    assert V.ladder_verdict(_units({2500: -0.75, 5000: -0.76, 10000: -0.75}), claim=-1).verdict == V.HOLDS
    assert V.ladder_verdict(_units({2500: 0.3, 5000: 0.4, 10000: 0.5}), claim=-1).verdict == V.FAILS
    # below at the small caps, reaching the parameter count at the top: budget-dependent
    lv = V.ladder_verdict(_units({2500: -0.5, 5000: -0.2, 10000: 0.0}), claim=-1)
    assert lv.verdict == V.BUDGET_DEP and "changes at 5k" not in lv.change and "changes at 10k" in lv.change
    # below at every rung but rising fast toward zero
    lv = V.ladder_verdict(_units({2500: -0.9, 5000: -0.6, 10000: -0.3}, noise=0.01), claim=-1)
    assert lv.verdict == V.BUDGET_DEP and "shrinking toward zero" in lv.change


def test_p4_correlation_at_every_rung():
    neg = {c: (-0.9, 0.01, 6) for c in CAPS}
    assert V.correlation_ladder_verdict(neg).verdict == V.HOLDS
    assert V.correlation_ladder_verdict({c: (0.9, 0.01, 6) for c in CAPS}).verdict == V.FAILS
    lv = V.correlation_ladder_verdict({2500: (-0.9, 0.01, 6), 5000: (-0.5, 0.3, 6), 10000: (-0.2, 0.7, 6)})
    assert lv.verdict == V.BUDGET_DEP and "changes at 5k" in lv.change and "r from -0.90" in lv.trend
    assert V.correlation_ladder_verdict({c: (-0.3, 0.5, 6) for c in CAPS}).verdict == V.INCONCL
    # fewer than 3 sizes at a rung: not significant there
    assert V.correlation_ladder_verdict({**neg, 10000: (-0.99, 0.001, 2)}).verdict == V.BUDGET_DEP


def test_ladder_slope_is_per_doubling_and_paired():
    units = [{2500: 0.0 + k, 5000: 0.1 + k, 10000: 0.2 + k} for k in (0.0, 5.0, -3.0)]
    m, se, n = V.ladder_slope(units, list(CAPS))
    assert m == pytest.approx(0.1) and se == pytest.approx(0.0, abs=1e-12) and n == 3


# ------------------------------------------------------------------ the rule on synthetic sweeps

def _job(tmp_path, name, ladder, stable=True, **cfg):
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    by = [{"cap_steps": c, "emc": e, "bracket": {"fitted": e, "failed": round(e * 1.02) + 1}, "lower_bound": False}
          for c, e in ladder.items()]
    (d / "emc.json").write_text(json.dumps({"emc": by[-1]["emc"] if by else 100, "emc_by_cap": by or None,
                                            "budget_stable": stable if by else None, "config": cfg}))
    return d


def _row(name, opt, p, s, emc, lab="semantic"):
    return {"job": name, "group": "", "optimizer.name": opt, "labeling.name": lab, "scaling.params": str(p),
            "seed": str(s), "emc": str(emc), "params_actual": str(p), "params_target": str(p),
            "lower_bound": "False", "search": "bisect", "converged": "False",
            "bracket_fitted": str(emc), "bracket_failed": str(round(emc * 1.02) + 1)}


def _opt_sweep(tmp_path, gap, ladder=True, n=5):
    """sgd and gd at 2 sizes x n seeds; sgd's EMC is gd's x 10^gap[cap] (+ a seed-dependent wobble)."""
    rows = []
    for p in (300, 1000):
        for s in range(n):
            base = {c: p * (1 + 0.1 * s) * (1 + 0.2 * k) for k, c in enumerate(CAPS)}
            for opt, mult in (("gd", {c: 1.0 for c in CAPS}), ("sgd", {c: 10 ** (g + 0.005 * (s - 2)) for c, g in gap.items()})):
                lad = {c: int(round(base[c] * mult[c])) for c in CAPS} if ladder else {}
                name = f"{opt}-{p}-{s}"
                _job(tmp_path, name, lad, stable=(s % 2 == 0), optimizer={"name": opt})
                rows.append(_row(name, opt, p, s, int(round(base[10000] * mult[10000]))))
    return Sweep("x", tmp_path, rows, {})


@pytest.mark.parametrize("gap,verdict", [({2500: 0.3, 5000: 0.3, 10000: 0.3}, V.HOLDS),
                                         ({2500: -0.3, 5000: -0.3, 10000: -0.3}, V.FAILS),
                                         ({2500: -0.2, 5000: 0.15, 10000: 0.3}, V.BUDGET_DEP),
                                         ({2500: 0.1, 5000: 0.0, 10000: 0.0}, V.BUDGET_DEP),
                                         ({2500: 0.0, 5000: 0.0, 10000: 0.0}, V.INCONCL)])
def test_rule_more_reads_each_jobs_ladder_from_emc_json(tmp_path, gap, verdict):
    v, txt, sm = V.rule_more(_opt_sweep(tmp_path, gap), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == verdict, txt
    assert "over 10 pair(s)" in txt and "budget-stable EMCs 12/20" in txt
    assert "at 10k" in sm["effect"] and "per doubling" in sm["trend"]


def test_a_sweep_without_a_ladder_says_so_and_decides_nothing(tmp_path):
    sw = _opt_sweep(tmp_path, {c: 0.3 for c in CAPS}, ladder=False)
    v, txt, sm = V.rule_more(sw, {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.NO_LADDER and "no ladder" in txt and "+0.300" in txt and sm["trend"] == "no ladder"
    v, txt = F.combine([("a", (V.HOLDS, "t", {})), ("b", (v, txt, sm))])[:2]
    assert v == V.NO_LADDER
    # a rule of one part failing decides over a part without a ladder
    assert F.combine([("a", (V.FAILS, "t")), ("b", (V.NO_LADDER, "t"))])[0] == V.FAILS


def test_rule_below_params_on_the_ladder(tmp_path):
    rows = []
    for p in (300, 1000):
        for s in range(4):
            lad = {c: int(p * f * (1 + 0.05 * s)) for c, f in zip(CAPS, (0.22, 0.23, 0.22))}
            name = f"j-{p}-{s}"
            _job(tmp_path, name, lad)
            rows.append(_row(name, "sgd", p, s, lad[10000], lab="random_labels"))
    v, txt, _ = V.rule_below_params(Sweep("x", tmp_path, rows, {}), {"labeling": "random_labels"})
    assert v == V.HOLDS and "budget-stable EMCs 8/8" in txt, txt


def test_combine_with_budget_dependent_parts_and_its_summary():
    h = (V.HOLDS, "t", {"effect": "+0.3 ± 0.01 at 10k", "trend": "flat", "stable": {"a": True}})
    b = (V.BUDGET_DEP, "t", {"effect": "+0.1 ± 0.01 at 10k", "trend": "toward zero", "stable": {"b": False}})
    v, _, sm = F.combine([("x", h), ("y", b)])
    assert v == V.BUDGET_DEP and sm["effect"].startswith("y: ") and sm["stable"] == {"a": True, "b": False}
    assert F.combine([("x", h), ("y", h)])[0] == V.HOLDS
    assert F.combine([("x", h), ("y", (V.INCONCL, "t"))])[0] == V.INCONCL


# ------------------------------------------------------------------ Z3 over p > 0

def _corruption(steps_of, seeds=5):
    return [(p / 10, steps_of(p / 10, s), 0.02 + 0.87 * p / 10 + 0.001 * s) for p in range(11) for s in range(seeds)]


def test_z3_needs_growth_over_p_above_zero_too():
    # the committed sweep's shape: 449 steps at p = 0, flat ~1,450-1,520 above it (a jump, no growth)
    rng = np.random.default_rng(0)
    flat = _corruption(lambda p, s: 449 + rng.normal(0, 20) if p == 0 else 1480 + rng.normal(0, 60))
    v, t, why = V.corruption_test(flat)
    assert t["steps"][0] > 0 and t["steps"][1] < 0.05          # over every level: significant
    assert t["steps_p>0"][1] > 0.05 and v == V.INCONCL and "steps_p>0" in why
    # gradual growth over p > 0 as in Zhang et al.'s Figure 1b: holds
    grow = _corruption(lambda p, s: 400 + 1500 * p + 20 * s)
    v, t, _ = V.corruption_test(grow)
    assert v == V.HOLDS and t["steps_p>0"][0] > 0.9 and t["steps_p>0"][2] == 50
    # steps fall with corruption over p > 0: does not hold
    fall = _corruption(lambda p, s: 449 if p == 0 else 3000 - 1500 * p + 20 * s)
    assert V.corruption_test(fall)[0] == V.FAILS
    # never fitted ranks last
    never = _corruption(lambda p, s: math.inf if p >= 0.9 else 400 + 1500 * p + 20 * s)
    assert V.corruption_test(never)[0] == V.HOLDS


# ------------------------------------------------------------------ the one-screen table and figures

def test_reproduction_leads_with_one_screen_table_and_draws_ladder_figures(tmp_path):
    from flexnet.analysis.reproduction import write_reproduction

    sw = _opt_sweep(tmp_path / "mr" / "emc_optimizers", {2500: -0.2, 5000: 0.15, 10000: 0.3})
    out = tmp_path / "R.md"
    verdicts = write_reproduction(out, tmp_path / "mr", {"emc_optimizers": {"rc": 0, "seconds": 1.0}},
                                  {"emc_optimizers": sw}, ["emc_optimizers"], False, 1.0, tmp_path)
    text = out.read_text()
    lines = text.splitlines()
    head = lines.index("| id | claim | the paper | measured (top rung, ± SE) | trend over the ladder | verdict | figure |")
    p3 = lines[head + 2]
    assert p3.startswith("| P3 | SGD fits more than full-batch GD | SGD > GD (semantic) |")
    assert "at 10k" in p3 and "per doubling" in p3 and f"**{V.BUDGET_DEP}** (" in p3 and "budget-stable" in p3
    assert "[figure](mr/figures/P3_ladder.png)" in p3 and (tmp_path / "mr" / "figures" / "P3_ladder.png").exists()
    # everything else below the table: the detail, the rules
    assert lines.index("## Findings in detail") > head and text.index("## Rules") > text.index("## Findings in detail")
    assert "changes at 5k" in text
    assert verdicts[0]["verdict"] == V.BUDGET_DEP and "per doubling" in verdicts[0]["trend"]


def test_reproduction_of_a_sweep_without_a_ladder_renders_no_ladder(tmp_path):
    from flexnet.analysis.reproduction import write_reproduction

    sw = _opt_sweep(tmp_path / "mr" / "emc_optimizers", {c: 0.3 for c in CAPS}, ladder=False)
    out = tmp_path / "R.md"
    write_reproduction(out, tmp_path / "mr", {"emc_optimizers": {"rc": 0, "seconds": 1.0}},
                       {"emc_optimizers": sw}, ["emc_optimizers"], False, 1.0, tmp_path)
    text = out.read_text()
    row = [l for l in text.splitlines() if l.startswith("| P3 |")][0]
    assert f"**{V.NO_LADDER}**" in row and "(one cap)" in row and "no ladder" in row
    assert "re-run the preset on the budget ladder" in text and not (tmp_path / "mr" / "figures").exists()
