"""flexnet.analysis.verdicts: every rule of the reproduction on small synthetic sweeps (no training).

Rows are what `flexnet.report` writes to emc.csv (all values strings)."""
from __future__ import annotations

import json

from flexnet.analysis import verdicts as V
from flexnet.analysis.reported import Sweep, converged


def _sweep(tmp_path, rows, report=None):
    return Sweep("x", tmp_path, rows, report or {})


def _row(opt, params, seed, emc, converged=True, failed=None, **kw):
    r = {"job": f"{opt}-{params}-{seed}", "group": "", "optimizer.name": opt, "scaling.params": str(params),
         "seed": str(seed), "emc": str(emc), "params_actual": str(params), "params_target": str(params),
         "lower_bound": "False", "search": "bisect", "converged": str(converged),
         "bracket_fitted": str(emc), "bracket_failed": str(failed if failed is not None else round(emc * 1.05) + 1)}
    r.update(kw)
    return r


def test_rule_more_holds_fails_inconclusive(tmp_path):
    rows = [_row("sgd", p, s, 2 * p + s) for p in (100, 200) for s in (0, 1)] + \
           [_row("gd", p, s, p + 3 * s) for p in (100, 200) for s in (0, 1)]
    sw = _sweep(tmp_path, rows)
    v, txt = V.rule_more(sw, {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.HOLDS and "4 pair(s)" in txt and "converged EMCs 8/8" in txt
    v, _ = V.rule_more(sw, {"optimizer": "gd"}, {"optimizer": "sgd"})
    assert v == V.FAILS
    noisy = [_row("sgd", 100, s, e) for s, e in [(0, 100), (1, 50)]] + [_row("gd", 100, s, 70) for s in (0, 1)]
    v, _ = V.rule_more(_sweep(tmp_path, noisy), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.INCONCL
    one = [_row("sgd", 100, 0, 200), _row("gd", 100, 0, 100)]
    v, txt = V.rule_more(_sweep(tmp_path, one), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.INCONCL and "fewer than 2" in txt


def test_a_finding_on_budget_bound_emcs_is_inconclusive_whatever_its_sign(tmp_path):
    # SGD fits twice as much in every pair, with a tiny SE: it would hold, but 2 of 8 EMCs (25%) are not
    # converged, so fewer than 90% are: inconclusive (budget), and the text says what it would have been
    rows = [_row("sgd", p, s, 2 * p + s, converged=(s == 0 or p == 100)) for p in (100, 200) for s in (0, 1)] + \
           [_row("gd", p, s, p + s) for p in (100, 200) for s in (0, 1)]
    v, txt = V.rule_more(_sweep(tmp_path, rows), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.BUDGET and "converged EMCs 7/8" in txt and "would have been 'holds'" in txt
    # the same for "does not hold"
    v, txt = V.rule_more(_sweep(tmp_path, rows), {"optimizer": "gd"}, {"optimizer": "sgd"})
    assert v == V.BUDGET and "would have been 'does not hold'" in txt
    # 9 of 10 converged is enough (90%)
    rows = [_row("sgd", p, 0, 2 * p, converged=(p != 500)) for p in (100, 200, 300, 400, 500)] + \
           [_row("gd", p, 0, p + p % 7) for p in (100, 200, 300, 400, 500)]
    v, txt = V.rule_more(_sweep(tmp_path, rows), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.HOLDS and "converged EMCs 9/10" in txt


def test_a_difference_below_the_search_resolution_is_never_significant(tmp_path):
    # EMCs differ by 3% in every pair (SE ~0), but the searches' brackets are 10% wide
    rows = [_row("sgd", p, s, round(1.03 * (p + s)), failed=round(1.1 * 1.03 * (p + s)))
            for p in (1000, 2000) for s in (0, 1)] + \
           [_row("gd", p, s, p + s, failed=round(1.1 * (p + s))) for p in (1000, 2000) for s in (0, 1)]
    v, txt = V.rule_more(_sweep(tmp_path, rows), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.INCONCL and "resolution" in txt
    # the same 3% with 1% brackets is a difference
    rows = [_row("sgd", p, s, round(1.03 * (p + s)), failed=round(1.01 * 1.03 * (p + s)) + 1)
            for p in (1000, 2000) for s in (0, 1)] + \
           [_row("gd", p, s, p + s, failed=round(1.01 * (p + s)) + 1) for p in (1000, 2000) for s in (0, 1)]
    v, _ = V.rule_more(_sweep(tmp_path, rows), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.HOLDS


def test_rule_below_params(tmp_path):
    rows = [_row("sgd", p, s, p // 3 + s, **{"labeling.name": "semantic"}) for p in (300, 600) for s in (0, 1)]
    v, _ = V.rule_below_params(_sweep(tmp_path, rows), {"labeling": "semantic"})
    assert v == V.HOLDS
    rows = [_row("sgd", p, s, 3 * p + s, **{"labeling.name": "semantic"}) for p in (300, 600) for s in (0, 1)]
    v, _ = V.rule_below_params(_sweep(tmp_path, rows), {"labeling": "semantic"})
    assert v == V.FAILS
    rows = [_row("sgd", p, s, p // 3 + s, converged=False, **{"labeling.name": "semantic"})
            for p in (300, 600) for s in (0, 1)]
    v, txt = V.rule_below_params(_sweep(tmp_path, rows), {"labeling": "semantic"})
    assert v == V.BUDGET and "converged EMCs 0/4" in txt


def test_rule_generalization_is_gated_by_convergence(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "generalization.csv").write_text("a,b\n" + "1,2\n" * 6)
    rows = [_row("sgd", p, 0, p // 2) for p in (100, 200, 300)]
    rep = {"generalization": {"r": -0.95, "p": 0.004}}
    assert V.rule_generalization(_sweep(tmp_path, rows, rep))[0] == V.HOLDS
    rows[0]["converged"] = "False"
    v, txt = V.rule_generalization(_sweep(tmp_path, rows, rep))
    assert v == V.BUDGET and "converged EMCs 2/3" in txt


def test_converged_of_a_job_reported_before_the_column_reads_its_journal(tmp_path):
    job = tmp_path / "0"
    job.mkdir()
    lines = [{"n": 100, "status": "fitted"}, {"n": 120, "status": "failed"}, {"n": 120, "status": "unverified"}]
    (job / "fits.jsonl").write_text("".join(json.dumps(a) + "\n" for a in lines))
    row = {"job": "0", "emc": "100", "bracket_failed": "120"}
    assert converged(_sweep(tmp_path, [row]), row) is False   # an attempt at 120 ended at the budget
    (job / "fits.jsonl").write_text("".join(json.dumps(a) + "\n" for a in lines[:2]))
    assert converged(_sweep(tmp_path, [row]), row) is True
    assert converged(_sweep(tmp_path, [row]), {**row, "bracket_failed": ""}) is False  # a lower bound


def _dd(errs, thr, past_fit=True, se=0.01, jobs=5):
    sizes = [{"target": p, "params": float(p), "test_error": e, "test_error_se": se,
              "train_error": 0.0 if p >= (thr or 1e99) else 0.2, "jobs": jobs} for p, e in errs]
    return {"double_descent": {"all": {"past_fit": past_fit, "tol": 0.01, "interpolation_threshold": thr,
                                       "sizes": sizes}, "_emc_line": {}}}


def test_rule_double_descent(tmp_path):
    def verdict(*a, **kw):
        return V.rule_double_descent(_sweep(tmp_path, [], _dd(*a, **kw)))

    curve = [(100, 0.5), (200, 0.6), (400, 0.75), (800, 0.6), (1600, 0.55)]
    v, txt = verdict(curve, 400)
    assert v == V.HOLDS and "peak at 400" in txt and "threshold (mean train error <= 0.01): 400" in txt
    # the same peak, but the threshold is 8x away: the peak is not at the threshold
    v, txt = verdict(curve + [(3200, 0.56), (6400, 0.56)], 3200)
    assert v == V.FAILS and "away from the threshold" in txt
    # monotone: no peak
    assert verdict([(100, 0.7), (200, 0.6), (400, 0.55), (800, 0.5)], 400)[0] == V.FAILS
    # a rise of 0.03 with SEs of 0.02 each is within 2 SE of the difference (0.057): no peak
    v, txt = verdict([(100, 0.6), (200, 0.63), (400, 0.6)], 200, se=0.02)
    assert v == V.FAILS and "no size's test error" in txt
    # what makes it inconclusive
    assert "early stopping" in verdict(curve, 400, past_fit=False)[1]
    assert "no size interpolates" in verdict(curve, None)[1]
    assert "edge of the sweep" in verdict(curve, 1600)[1]
    assert "3 or more seeds" in verdict(curve, 400, jobs=2)[1]
    assert verdict(curve, None)[0] == V.INCONCL
    assert V.rule_double_descent(_sweep(tmp_path, [], {}))[0] == V.INCONCL
