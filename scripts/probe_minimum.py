#!/usr/bin/env python
"""Is an attempt that ended at the cap near a minimum? Continue it by full-batch L-BFGS and watch.

    python scripts/probe_minimum.py --n 1280 --out probes.jsonl labeling=random_labels
    python scripts/probe_minimum.py --n 612 --attempt 1 +experiment=emc_budget arch=mlp ...

Trains attempt `--attempt` at size `--n` exactly as a search would (same subset, init and
procedure, from the Hydra overrides given), then, on a copy of the weights, runs full-batch L-BFGS
with a strong-Wolfe line search on the same loss for up to `--evals` loss evaluations, and records
the trajectory: accuracy, loss, full-batch gradient norm and weight norm after every `--every`
evaluations, and the extreme Hessian eigenvalues at the end. L-BFGS only descends the loss, so:

  * if it reaches 100% accuracy, the subset is fitted by descending from where the procedure
    stopped: the attempt was not at a minimum (it was in a basin that fits);
  * if it stops with a gradient far above zero while the weight norm grows, the loss has no finite
    minimum there (cross-entropy decreasing towards an asymptote as the weights grow);
  * only a gradient that falls to ~0 at finite weights is a minimum in the paper's sense.

This is evidence for docs/convergence.md, not a verdict the search uses. One JSON line per probe
is appended to `--out`.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path


def probe(overrides: list[str], n: int, attempt: int, evals: int, every: int) -> dict:
    import torch

    from flexnet import pipeline as J
    from flexnet.config import compose
    from flexnet.fit import minimum as conv
    from flexnet.fit.loop import train_to_minimum
    from flexnet.oracle import Oracle
    from flexnet.utils import generator

    cfg = compose(overrides)
    s = J.setup(cfg)
    torch.set_num_threads(J.set_threads(cfg.get("threads", "auto"), s.plan.actual))
    oracle = Oracle(s, journal=None, logger=None)
    seed, x, y, model = oracle._prepare(n, attempt)
    res = train_to_minimum(model, x, y, s.recipe, g=generator(seed + 1, s.device), seed=seed)
    out = {"overrides": overrides, "n": n, "attempt": attempt, "params": s.plan.actual,
           "sgd": {k: getattr(res, k) for k in ("status", "stop_reason", "train_acc", "train_loss", "steps",
                                                  "seconds", "grad_norm", "grad_norm_polished", "grad_tol",
                                                  "lr_final", "init_loss", "init_grad_norm")},
           "lbfgs": []}
    if res.fitted or res.status == "diverged":
        return out
    loss_fn = s.recipe.procedure.loss_fn
    m = copy.deepcopy(model).eval()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1, max_iter=every, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)
    count = [0]

    def closure():
        opt.zero_grad()
        loss = loss_fn(m(x), y)
        loss.backward()
        count[0] += 1
        return loss

    def weight_norm() -> float:
        return math.sqrt(sum(float((p.detach().double() ** 2).sum()) for p in params))

    t0 = time.perf_counter()
    acc, loss = conv.evaluate(m, x, y, loss_fn)
    out["lbfgs"].append({"evals": 0, "acc": acc, "loss": loss, "grad": conv.grad_norm(m, x, y, loss_fn),
                         "weight_norm": weight_norm(), "seconds": 0.0})
    while count[0] < evals:
        before = count[0]
        opt.step(closure)
        acc, loss = conv.evaluate(m, x, y, loss_fn)
        out["lbfgs"].append({"evals": count[0], "acc": acc, "loss": loss, "grad": conv.grad_norm(m, x, y, loss_fn),
                             "weight_norm": weight_norm(), "seconds": time.perf_counter() - t0})
        if acc >= s.recipe.fit_threshold or count[0] - before < 2:  # fitted, or the line search stalled
            break
    rep = conv.extreme_eigenvalues(m, x, y, loss_fn, seed=seed)
    out["end"] = {"fitted": acc >= s.recipe.fit_threshold, "stalled": count[0] < evals and acc < s.recipe.fit_threshold,
                  "min_eig": rep.min_eig, "max_eig": rep.max_eig, "init_weight_norm": None}
    with torch.no_grad():
        _, _, _, fresh = oracle._prepare(n, attempt)
        out["end"]["init_weight_norm"] = math.sqrt(sum(float((p.double() ** 2).sum()) for p in fresh.parameters()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, required=True, help="subset size")
    ap.add_argument("--attempt", type=int, default=0)
    ap.add_argument("--evals", type=int, default=4000, help="L-BFGS loss evaluations at most")
    ap.add_argument("--every", type=int, default=200, help="evaluations between trajectory records")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines file to append to")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m flexnet")
    a = ap.parse_args(argv)
    rec = probe(a.overrides, a.n, a.attempt, a.evals, a.every)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    last = rec["lbfgs"][-1] if rec["lbfgs"] else {}
    print(f"n={a.n} attempt {a.attempt}: procedure {rec['sgd']['stop_reason']} at acc {rec['sgd']['train_acc']:.4f}; "
          f"L-BFGS {last.get('evals', 0)} evals -> acc {last.get('acc', float('nan')):.4f}, "
          f"grad {last.get('grad', float('nan')):.3g}, weights {last.get('weight_norm', float('nan')):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
