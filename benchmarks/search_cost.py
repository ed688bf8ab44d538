"""Section 1 of `make bench` (benchmarks/run.py): what a search costs against the unavoidable work
(one fit at the EMC and every attempt at the failed size), bisect with both growth rules against
linear, and where the rest went."""
from __future__ import annotations

import json
import time
from pathlib import Path

from flexnet.config import compose


def run(overrides, outdir):
    from flexnet.pipeline import run_job

    t0 = time.perf_counter()
    res = run_job(compose(overrides), Path(outdir))
    res["wall"] = time.perf_counter() - t0
    fits = [json.loads(l) for l in (Path(outdir) / "fits.jsonl").read_text().splitlines()]
    return res, fits


def floor_ratio(r, fits) -> tuple[float, float]:
    """A search's cost over the unavoidable work (one fit at its EMC + every attempt at its failed
    size), and that work."""
    at_emc = [f["cost"] for f in fits if f["n"] == r["emc"] and f["status"] == "fitted"]
    at_failed = [f["cost"] for f in fits if f["n"] == r["bracket"]["failed"]]
    unavoidable = (at_emc[0] if at_emc else 0) + sum(at_failed)
    return r["cost_sample_epochs"] / max(unavoidable, 1), unavoidable


def waste(r, fits) -> dict[str, float]:
    """Where a search's cost beyond the unavoidable work went, in sample-epochs: fits below the EMC
    (the approach), failed attempts at the EMC's own size (the attempts before the one that fitted:
    a coin toss near the threshold, paid for that EMC by any search), failed attempts below the
    EMC's size, first-attempt failures above the failed size; and `cap`, the cost of one failed
    attempt at the failed size."""
    emc, failed = r["emc"], r["bracket"]["failed"]
    part = lambda keep: sum(f["cost"] for f in fits if keep(f))  # noqa: E731
    fit = lambda f: f["status"] == "fitted"  # noqa: E731
    return {"approach": part(lambda f: fit(f) and f["n"] < emc),
            "at_emc": part(lambda f: not fit(f) and f["n"] == emc),
            "below": part(lambda f: not fit(f) and f["n"] < emc),
            "above": part(lambda f: not fit(f) and failed is not None and f["n"] > failed),
            "cap": max([f["cost"] for f in fits if f["n"] == failed] or [1.0])}


def bench_search(base, tmp, lines, title="Config", seeds=(0,)):
    """bisect with each growth rule (search.growth: fit_time, the default, and double) on `seeds`,
    and linear on seed 0 with an oracle step (5% of bisect's EMC)."""
    lines += [f"### {title}: `{' '.join(base)}`", ""]
    runs = {(g, s): run(base + ["search=bisect", f"search.growth={g}", f"seed={s}"], tmp / f"{g}{s}")
            for s in seeds for g in ("fit_time", "double")}
    rb, fb = runs[("fit_time", seeds[0])]
    step = max(1, int(round(0.05 * max(rb["emc"], 1))))
    rl, fl = run(base + ["search=linear", f"search.step={step}", f"search.start={compose(base)['search']['start']}",
                         f"seed={seeds[0]}"], tmp / "linear")
    lines += [f"Seed {seeds[0]}:", "",
              "| search | EMC | bracket | fits | sample-epochs | wall s | unverified | converged | cost / unavoidable |",
              "|---|---|---|---|---|---|---|---|---|"]
    rows = [("bisect, growth=fit_time (default)", runs[("fit_time", seeds[0])]),
            ("bisect, growth=double", runs[("double", seeds[0])]), (f"linear (step {step})", (rl, fl))]
    for name, (r, f) in rows:
        lines.append(f"| {name} | {r['emc']} | [{r['bracket']['fitted']}, {r['bracket']['failed']}] | {r['fits']} | "
                     f"{r['cost_sample_epochs']:.3g} | {r['wall']:.1f} | {r['unverified']} | {r.get('converged')} | "
                     f"{floor_ratio(r, f)[0]:.2f} |")
    lo, hi = rl["bracket"]["fitted"] or 0, rl["bracket"]["failed"]
    inside = lo <= rb["emc"] and (hi is None or rb["emc"] < hi)
    fail_cost = sum(f["cost"] for f in fb if f["status"] != "fitted")
    unavoidable = floor_ratio(rb, fb)[1]
    # per run, once: cost / unavoidable, the unavoidable work, where the rest went, and the cost over
    # the unavoidable work plus the failed attempts at the EMC's own size
    split = {}
    for key, (r, f) in runs.items():
        (ratio, floor), w = floor_ratio(r, f), waste(r, f)
        split[key] = ratio, w, r["cost_sample_epochs"] / (floor + w["at_emc"])
    mean = {g: sum(split[(g, s)][0] for s in seeds) / len(seeds) for g in ("fit_time", "double")}
    coin = {g: sum(split[(g, s)][2] for s in seeds) / len(seeds) for g in ("fit_time", "double")}
    cost = {g: sum(runs[(g, s)][0]["cost_sample_epochs"] for s in seeds) for g in ("fit_time", "double")}
    if len(seeds) > 1:
        lines += ["", f"Seeds {', '.join(map(str, seeds))} (each seed draws other subsets and inits). Beyond the "
                  "unavoidable work, in caps (one failed attempt at the failed size): fits below the EMC, failed "
                  "attempts at the EMC's own size before the one that fitted, failed attempts below it, first "
                  "attempts failed above the failed size; the last column counts the EMC size's failed attempts "
                  "as unavoidable too (any search that finds this EMC pays them).", "",
                  "| seed | growth | EMC | bracket | sample-epochs | cost / unavoidable | fits below | failed at EMC "
                  "| failed below | failed above | cost / (unavoidable + failed at EMC) |", "|" + "---|" * 11]
        for (g, s), (r, f) in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0] != "fit_time")):
            ratio, w, with_emc = split[(g, s)]
            caps = " | ".join(f"{w[k] / w['cap']:.2f}" for k in ("approach", "at_emc", "below", "above"))
            lines.append(f"| {s} | {g} | {r['emc']} | [{r['bracket']['fitted']}, {r['bracket']['failed']}] | "
                         f"{r['cost_sample_epochs']:.3g} | {ratio:.2f} | {caps} | {with_emc:.2f} |")
    lines += ["",
              f"- bisect cost / unavoidable work (one fit at the EMC + the failed size's attempts), mean over "
              f"{len(seeds)} seed(s): **{mean['fit_time']:.2f}** with growth=fit_time, {mean['double']:.2f} with "
              f"growth=double (target <= 1.3); sample-epochs fit_time / double: **{cost['fit_time'] / cost['double']:.2f}**",
              f"- counting the failed attempts at the EMC's own size as unavoidable too: {coin['fit_time']:.2f} with "
              f"growth=fit_time, {coin['double']:.2f} with growth=double",
              f"- bisect / linear sample-epochs (seed {seeds[0]}): "
              f"{rb['cost_sample_epochs'] / max(rl['cost_sample_epochs'], 1):.2f}; "
              f"bisect EMC inside linear's bracket: **{inside}**",
              f"- failed attempts' share of bisect's cost: {fail_cost / max(rb['cost_sample_epochs'], 1):.0%}",
              f"- unavoidable work / linear: {unavoidable / max(rl['cost_sample_epochs'], 1):.2f}: no search that "
              "must fit at the EMC and fail every attempt at the bracket's failed size can cost less than this "
              "fraction of linear's sample-epochs on this config", ""]
    return rb, fb


def bench_search_section(base, tmp, lines, quick=False):
    """Section 1: the 2k and 8k configs on 4 seeds each (quick: the 2k config, seed 0);
    returns the 2k job of seed 0 (section 3 reads its checks)."""
    lines += ["## 1. Search cost: bisect (both growth rules) vs linear", ""]
    job = bench_search(base, tmp / "2k", lines, "2k-parameter MLP (the default config)",
                       seeds=(0,) if quick else (0, 1, 2, 3))
    if not quick:
        bench_search(base + ["scaling.params=8000"], tmp / "8k", lines, "8k-parameter MLP", seeds=(0, 1, 2, 3))
    return job
