"""flexnet.analysis.verdicts and .findings: every rule of the reproduction on small synthetic sweeps (no training).

Rows are what `flexnet.report` writes to emc.csv (all values strings); each job's ladder is its
`emc_by_cap` column, the same EMC at three rungs unless a test says otherwise (the ladder rule itself:
tests/test_ladder_verdicts.py)."""
from __future__ import annotations

import json

import pytest

from flexnet.analysis import findings as F
from flexnet.analysis import verdicts as V
from flexnet.analysis.reported import Sweep, converged


def _sweep(tmp_path, rows, report=None):
    return Sweep("x", tmp_path, rows, report or {})


CAPS = (2500, 5000, 10000)


def _row(opt, params, seed, emc, converged=True, failed=None, stable=True, **kw):
    r = {"job": f"{opt}-{params}-{seed}", "group": "", "optimizer.name": opt, "scaling.params": str(params),
         "seed": str(seed), "emc": str(emc), "params_actual": str(params), "params_target": str(params),
         "lower_bound": "False", "search": "bisect", "converged": str(converged),
         "emc_cap_steps": "10000", "emc_by_cap": " ".join(f"{c}:{emc}" for c in CAPS), "budget_stable": str(stable),
         "bracket_fitted": str(emc), "bracket_failed": str(failed if failed is not None else round(emc * 1.05) + 1)}
    r.update(kw)
    return r


def _write_ladders(tmp_path, rows):
    """Each row's ladder into its job's emc.json, with the row's bracket at every rung."""
    for r in rows:
        d = tmp_path / r["job"]
        d.mkdir(parents=True, exist_ok=True)
        e, f = int(r["emc"]), int(r["bracket_failed"])
        (d / "emc.json").write_text(json.dumps({"emc": e, "budget_stable": True, "emc_by_cap": [
            {"cap_steps": c, "emc": e, "bracket": {"fitted": e, "failed": f}, "lower_bound": False} for c in CAPS]}))


def test_rule_more_holds_fails_inconclusive(tmp_path):
    rows = [_row("sgd", p, s, 2 * p + s) for p in (100, 200) for s in (0, 1)] + \
           [_row("gd", p, s, p + 3 * s) for p in (100, 200) for s in (0, 1)]
    sw = _sweep(tmp_path, rows)
    v, txt, _ = V.rule_more(sw, {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.HOLDS and "4 pair(s)" in txt and "budget-stable EMCs 8/8" in txt
    v, *_ = V.rule_more(sw, {"optimizer": "gd"}, {"optimizer": "sgd"})
    assert v == V.FAILS
    noisy = [_row("sgd", 100, s, e) for s, e in [(0, 100), (1, 50)]] + [_row("gd", 100, s, 70) for s in (0, 1)]
    v, *_ = V.rule_more(_sweep(tmp_path, noisy), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.INCONCL
    one = [_row("sgd", 100, 0, 200), _row("gd", 100, 0, 100)]
    v, txt, _ = V.rule_more(_sweep(tmp_path, one), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.INCONCL and "n=1" in txt


def test_the_budget_stable_share_is_reported_and_never_decides(tmp_path):
    # the retired rule: 6 of 8 EMCs not budget-stable (and not converged) used to make this "inconclusive
    # (budget)"; on the ladder it holds, and the share is stated beside it
    rows = [_row("sgd", p, s, 2 * p + s, converged=False, stable=(s == 0 and p == 100)) for p in (100, 200)
            for s in (0, 1)] + [_row("gd", p, s, p + s, converged=False, stable=(s == 0 and p == 100))
                                for p in (100, 200) for s in (0, 1)]
    v, txt, sm = V.rule_more(_sweep(tmp_path, rows), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.HOLDS and "budget-stable EMCs 2/8" in txt and "converged" not in txt
    assert sorted(sm["stable"].values()) == [False] * 6 + [True] * 2
    assert not hasattr(V, "CONVERGED_SHARE") and not hasattr(V, "_gate")


def test_a_difference_below_the_search_resolution_is_never_significant(tmp_path):
    # EMCs differ by 3% in every pair (SE ~0), but the searches' brackets are 10% wide at every rung
    rows = [_row("sgd", p, s, round(1.03 * (p + s)), failed=round(1.1 * 1.03 * (p + s)))
            for p in (1000, 2000) for s in (0, 1)] + \
           [_row("gd", p, s, p + s, failed=round(1.1 * (p + s))) for p in (1000, 2000) for s in (0, 1)]
    _write_ladders(tmp_path, rows)
    v, txt, _ = V.rule_more(_sweep(tmp_path, rows), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.INCONCL and "resolution" in txt
    # the same 3% with 1% brackets is a difference
    rows = [_row("sgd", p, s, round(1.03 * (p + s)), failed=round(1.01 * 1.03 * (p + s)) + 1)
            for p in (1000, 2000) for s in (0, 1)] + \
           [_row("gd", p, s, p + s, failed=round(1.01 * (p + s)) + 1) for p in (1000, 2000) for s in (0, 1)]
    _write_ladders(tmp_path, rows)
    v, *_ = V.rule_more(_sweep(tmp_path, rows), {"optimizer": "sgd"}, {"optimizer": "gd"})
    assert v == V.HOLDS


def test_rule_below_params(tmp_path):
    rows = [_row("sgd", p, s, p // 3 + s, **{"labeling.name": "semantic"}) for p in (300, 600) for s in (0, 1)]
    v, *_ = V.rule_below_params(_sweep(tmp_path, rows), {"labeling": "semantic"})
    assert v == V.HOLDS
    rows = [_row("sgd", p, s, 3 * p + s, **{"labeling.name": "semantic"}) for p in (300, 600) for s in (0, 1)]
    v, *_ = V.rule_below_params(_sweep(tmp_path, rows), {"labeling": "semantic"})
    assert v == V.FAILS
    # no ladder (one cap): measured, no verdict
    rows = [_row("sgd", p, s, p // 3 + s, emc_by_cap="", **{"labeling.name": "semantic"})
            for p in (300, 600) for s in (0, 1)]
    v, txt, _ = V.rule_below_params(_sweep(tmp_path, rows), {"labeling": "semantic"})
    assert v == V.NO_LADDER and "at one cap" in txt


def _gen_csv(tmp_path, points):
    """generalization.csv, and per point a semantic and a random-label job whose ladders give its EMC
    increase at every rung (EMC 100 on random labels)."""
    import csv

    (tmp_path / "report").mkdir(exist_ok=True)
    rows = []
    for q in points:
        jobs = {}
        for lab, e in (("semantic", round(100 * (1 + q["emc_increase_pct"] / 100))), ("random", 100)):
            d = tmp_path / "jobs" / f"{q['arch']}-{lab}" / f"{q['params']}-{q['seed']}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "emc.json").write_text(json.dumps({"emc": e, "emc_by_cap": [{"cap_steps": c, "emc": e} for c in CAPS]}))
            jobs[lab] = f"/elsewhere/sweep/jobs/{q['arch']}-{lab}/{q['params']}-{q['seed']}"
        rows.append({**q, "semantic_job": jobs["semantic"], "random_job": jobs["random"]})
    with open(tmp_path / "report" / "generalization.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["semantic_job", "random_job", "arch", "params", "seed", "emc_increase_pct",
                                          "generalization_gap", "gap_n"])
        w.writeheader()
        w.writerows(rows)


def _gen_rows(families=("mlp", "cnn"), sizes=(100, 200, 300, 400, 500, 600), converged=True):
    return [_row("sgd", p, s, p // 2, converged=converged, stable=converged, **{"arch.name": a, "labeling.name": lab})
            for a in families for p in sizes for s in (0, 1) for lab in ("semantic", "random_labels")]


def test_rule_generalization_within_each_family(tmp_path):
    sizes = (100, 200, 300, 400, 500, 600)
    # in both families a larger gap goes with a smaller EMC increase: holds, per family, over sizes
    pts = [{"arch": a, "params": p, "seed": s, "emc_increase_pct": 300 - p / 3 + 7 * s + (5 if a == "cnn" else 0),
            "generalization_gap": 0.1 + p / 1000 + 0.01 * s, "gap_n": 1000}
           for a in ("mlp", "cnn") for p in sizes for s in (0, 1)]
    _gen_csv(tmp_path, pts)
    v, txt, _ = F.rule_generalization(_sweep(tmp_path, _gen_rows()))
    assert v == V.HOLDS, txt
    assert txt.count("10k: r = ") == 2 and txt.count("over 6 size(s)") == 6 and "gap at n = 1000" in txt and "pooled over families" in txt
    # in the CNN the relation is reversed: the finding does not hold (one family is enough)
    for q in pts:
        if q["arch"] == "cnn":
            q["emc_increase_pct"] = 100 + q["params"] / 3
    _gen_csv(tmp_path, pts)
    assert F.rule_generalization(_sweep(tmp_path, _gen_rows()))[0] == V.FAILS
    # pooled, the two families would correlate strongly (MLP: big gaps and small increases), but within each
    # family there is no relation: inconclusive, not "holds"
    pts = [{"arch": a, "params": p, "seed": 0, "emc_increase_pct": (50 if a == "mlp" else 300) + (p % 200) / 10,
            "generalization_gap": (0.6 if a == "mlp" else 0.1) + ((p * 7) % 300) / 3000, "gap_n": 1000}
           for a in ("mlp", "cnn") for p in sizes]
    _gen_csv(tmp_path, pts)
    v, txt, _ = F.rule_generalization(_sweep(tmp_path, _gen_rows()))
    assert v == V.INCONCL and "pooled over families**: r = -0.9" in txt
    # holds in both families; not converged, not budget-stable: still holds, the share stated
    pts = [{"arch": a, "params": p, "seed": 0, "emc_increase_pct": 300 - p / 3, "generalization_gap": p / 1000,
            "gap_n": 1000} for a in ("mlp", "cnn") for p in sizes]
    _gen_csv(tmp_path, pts)
    v, txt, _ = F.rule_generalization(_sweep(tmp_path, _gen_rows(converged=False)))
    assert v == V.HOLDS and "budget-stable EMCs 0/12" in txt and "per rung 2.5k: r = -" in txt
    # fewer than 3 sizes in a family: inconclusive
    _gen_csv(tmp_path, [q for q in pts if q["params"] <= 200])
    assert F.rule_generalization(_sweep(tmp_path, _gen_rows()))[0] == V.INCONCL


def test_combine_parts_and_reported():
    h, f, b, i = ((x, "t") for x in (V.HOLDS, V.FAILS, V.BUDGET, V.INCONCL))
    assert F.combine([("a", h), ("b", h)])[0] == V.HOLDS
    assert F.combine([("a", h), ("b", f)])[0] == V.FAILS
    assert F.combine([("a", h), ("b", b)])[0] == V.BUDGET
    assert F.combine([("a", h), ("b", i)])[0] == V.INCONCL
    v, txt, _ = F.combine([("a", h)], [("c", f)])   # a reported part never decides
    assert v == V.HOLDS and "reported (does not decide): **c**" in txt


def _arch_rows(emc_of, labelings=("random_labels", "semantic"), archs=("mlp", "cnn", "vit")):
    return [_row("sgd", p, s, emc_of(a, lab, p, s), **{"arch.name": a, "labeling.name": lab,
                                                        "optimizer.lr": {"mlp": "0.1", "cnn": "0.3", "vit": "0.03"}[a]})
            for a in archs for lab in labelings for p in (200, 400) for s in range(5)]


def test_rule_p1_on_random_labels_per_family_with_semantic_reported(tmp_path):
    # random labels: both families below their parameter count; semantic CNN above it (the paper's exception)
    rows = _arch_rows(lambda a, lab, p, s: p // 2 + s if lab == "random_labels" or a == "mlp" else 3 * p + s,
                      archs=("mlp", "cnn"))
    v, txt, _ = F.rule_p1(_sweep(tmp_path, rows))
    assert v == V.HOLDS and "reported (does not decide): **mlp, semantic labels**" in txt
    assert "**cnn, semantic labels**" in txt and "[does not hold]" in txt
    # the CNN on random labels above its parameter count: P1 does not hold
    rows = _arch_rows(lambda a, lab, p, s: 3 * p + s if a == "cnn" else p // 2 + s, archs=("mlp", "cnn"))
    assert F.rule_p1(_sweep(tmp_path, rows))[0] == V.FAILS


def test_rule_p2_pairs_across_arms_tuned_at_different_lrs(tmp_path):
    # each arch runs at its own tuned lr (optimizer.lr differs): the pairs still form, by size and seed
    rows = _arch_rows(lambda a, lab, p, s: {"cnn": 2 * p, "mlp": p, "vit": p // 2}[a] + s)
    v, txt, _ = F.rule_p2(_sweep(tmp_path, rows))
    assert v == V.HOLDS and txt.count("over 10 pair(s)") == 6 and "mlp vs vit" in txt
    # CNN above MLP on semantic labels only: the random-label part does not hold
    rows = _arch_rows(lambda a, lab, p, s: (2 * p if lab == "semantic" else p // 2) + s if a == "cnn" else p + s)
    assert F.rule_p2(_sweep(tmp_path, rows))[0] == V.FAILS


def test_rule_p3_decides_on_semantic_labels_only(tmp_path):
    rows = [_row(o, p, s, {"sgd": 2 * p, "gd": p if lab == "semantic" else 2 * p, "shampoo": 2 * p}[o] + s,
                 **{"labeling.name": lab}) for o in ("sgd", "gd", "shampoo") for lab in ("semantic", "random_labels")
            for p in (200, 400) for s in range(3)]
    v, txt, _ = F.rule_p3(_sweep(tmp_path, rows))
    assert v == V.HOLDS
    assert "**sgd vs gd, random labels**" in txt and "**sgd vs shampoo, semantic**" in txt


def test_rule_p5_needs_both_sigmoidal_activations(tmp_path):
    def rows(emc):
        return [_row("sgd", p, s, emc[a] * p // 100 + s, **{"arch.activation": a})
                for a in ("relu", "tanh", "sigmoid", "identity") for p in (200, 400) for s in range(3)]
    v, txt, _ = F.rule_p5(_sweep(tmp_path, rows({"relu": 200, "tanh": 100, "sigmoid": 50, "identity": 20})))
    assert v == V.HOLDS and "relu vs identity" in txt
    assert F.rule_p5(_sweep(tmp_path, rows({"relu": 200, "tanh": 300, "sigmoid": 50, "identity": 20})))[0] == V.FAILS


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
        return V.rule_double_descent(_sweep(tmp_path, [], _dd(*a, **kw)))[:2]

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


def test_time_breakdown_sums_the_journals_by_outcome(tmp_path):
    from flexnet.analysis.reproduction import time_breakdown

    job = tmp_path / "sw" / "arm" / "0"
    job.mkdir(parents=True)
    lines = [{"status": "fitted", "stop_reason": "fitted", "seconds": 10.0, "check_seconds": 0.5},
             {"status": "unverified", "stop_reason": "cap", "seconds": 30.0, "check_seconds": 1.0},
             {"status": "failed", "stop_reason": "verified_minimum", "seconds": 5.0, "check_seconds": 2.0}]
    (job / "fits.jsonl").write_text("".join(json.dumps(a) + "\n" for a in lines))
    tune = tmp_path / "tuning" / "arm" / "0"
    tune.mkdir(parents=True)
    (tune / "fits.jsonl").write_text(json.dumps({"status": "fitted", "seconds": 4.0}) + "\n")
    tb = time_breakdown([tmp_path / "sw", tmp_path / "tuning", tmp_path / "missing"])
    assert tb == {"fits": 14.0, "failures_cap": 30.0, "failures_verdict": 5.0, "checks": 3.5, "attempts": 4}


def test_generalization_pairs_take_the_gap_from_one_definition(tmp_path):
    """With search=fixed gap jobs in the sweep, a (semantic, random) pair without its own gap job is left
    out, not given the gap of its EMC search at another n (the ViT, one size, has no gap sweep)."""
    from flexnet.analysis.collect import Job
    from flexnet.analysis.stats import generalization_pairs

    def job(arch, p, lab, emc, search="bisect", test=0.5, train=1.0):
        cfg = {"arch.name": arch, "scaling.params": p, "labeling.name": lab, "search.name": search, "seed": 0}
        return Job(tmp_path / f"{arch}-{p}-{lab}-{search}", {"emc": emc, "test_accuracy": test, "train_accuracy": train,
                                                             "search": search, "params": {"actual": p}}, cfg)

    jobs = [job(a, p, lab, e) for a, p in (("mlp", 100), ("mlp", 200), ("mlp", 300), ("vit", 900))
            for lab, e in (("semantic", 2 * p), ("random_labels", p))]
    gaps = [job(a, p, "semantic", 0, "fixed", test=0.9 - p / 1000) for a, p in (("mlp", 100), ("mlp", 200), ("mlp", 300))]
    out = generalization_pairs(jobs, ["scaling.params", "arch.name"], gaps)
    assert sorted((q["arch"], q["params"]) for q in out["points"]) == [("mlp", 100), ("mlp", 200), ("mlp", 300)]
    assert all(q["gap_job"] and q["generalization_gap"] == pytest.approx(0.1 + q["params"] / 1000) for q in out["points"])
    # without gap jobs every pair uses its semantic EMC search's own gap
    assert len(generalization_pairs(jobs, ["scaling.params", "arch.name"])["points"]) == 4
