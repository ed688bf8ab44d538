"""Best setting of a tuning sweep: `python -m flexnet.analysis.hparams <sweep dir> [key ...]`.

Reads every job's emc.json under the sweep directory, ranks jobs by EMC (ties: lower cost in
sample-epochs), prints a table of the swept keys and writes the winner to
`<sweep dir>/best_hparams.yaml` (the keys, its EMC, and the job directory). Optuna sweeps also
write `optimization_results.yaml` themselves; this works for those too.

`choose_lr` is the reproduction's tuning rule (TUNE_RULE_TEXT, fixed before the runs): per arm, the
learning rate of a small grid whose search found the largest EMC, ties resolved toward the grid's
middle. scripts/reproduce.py runs the grid and passes the chosen lr to the arm's verdict sweep.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import yaml

DEFAULT_KEYS = ("optimizer.name", "optimizer.lr", "optimizer.batch_size", "scaling.params")


def _get(cfg: dict, dotted: str) -> Any:
    cur: Any = cfg
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def collect(sweep_dir: Path) -> list[dict]:
    rows = []
    for f in sorted(Path(sweep_dir).rglob("emc.json")):
        r = json.loads(f.read_text())
        rows.append({"dir": str(f.parent), "emc": r["emc"], "cost": r.get("cost_sample_epochs", 0.0),
                     "config": r.get("config", {})})
    return rows


def best(sweep_dir: Path, keys=DEFAULT_KEYS) -> dict:
    rows = collect(sweep_dir)
    if not rows:
        raise FileNotFoundError(f"no emc.json under {sweep_dir}")
    top = max(rows, key=lambda r: (r["emc"], -r["cost"]))
    out = {"best": {k: _get(top["config"], k) for k in keys}, "emc": top["emc"], "job_dir": top["dir"],
           "jobs": len(rows)}
    (Path(sweep_dir) / "best_hparams.yaml").write_text(yaml.safe_dump(out, sort_keys=False))
    return out


TUNE_FACTORS = (1 / 3, 1.0, 3.0)   # the grid: the arm's default lr times these
TUNE_RULE_TEXT = """\
* **Learning rate per arm** (tuning, part of each preset): every arm (architecture, optimizer or
  activation, and labeling) runs one EMC search per learning rate of a 3-point grid, the arm's
  default lr x 1/3, 1 and 3, at one size and a tuning seed (100) that no verdict job uses. The arm's
  lr is the one whose search found the largest EMC; EMCs within the searches' resolution of the
  largest (EMC x (1 + resolution) >= the largest) are ties, resolved toward the grid's middle (the
  default lr), then toward the smaller lr. If the chosen lr is at an edge of the grid, that is
  stated (the optimum may lie beyond it). The verdict sweep runs the arm at that lr."""


def choose_lr(rows: list[dict], middle: float, resolution: float) -> dict:
    """The tuning rule (TUNE_RULE_TEXT) over one arm's tuning searches. rows: {"lr", "emc"} per
    search; middle: the grid's middle (the arm's default lr); resolution: the searches' relative
    resolution. Returns {"lr", "emc", "edge", "grid": [(lr, emc), ...]}."""
    if not rows:
        raise ValueError("no tuning searches for this arm")
    top = max(r["emc"] for r in rows)
    ties = [r for r in rows if r["emc"] * (1.0 + resolution) >= top]
    best = min(ties, key=lambda r: (round(abs(math.log(r["lr"] / middle)), 3), r["lr"]))
    lrs = sorted(r["lr"] for r in rows)
    return {"lr": best["lr"], "emc": best["emc"], "edge": len(lrs) >= 3 and best["lr"] in (lrs[0], lrs[-1]),
            "grid": sorted((r["lr"], r["emc"]) for r in rows)}


def choose_arm_lrs(tdir: Path, arms: list) -> dict:
    """Per (arm, labeling), keyed `<arm>-<labeling>`, the lr that choose_lr picks from the arm's tuning
    searches under tdir/<arm>; arms: (name, default lr (the grid's middle), labelings)."""
    out = {}
    for name, middle, labelings in arms:
        rows: dict = {}
        res = 0.0
        for r in collect(tdir / name) if (tdir / name).exists() else []:
            cfg = r["config"]
            lab = (cfg.get("labeling") or {}).get("name")
            rows.setdefault(lab, []).append({"lr": float(cfg["optimizer"]["lr"]), "emc": int(r["emc"] or 0)})
            res = float((cfg.get("search") or {}).get("resolution") or res)
        for lab in labelings:
            if rows.get(lab):
                out[f"{name}-{lab}"] = {"arm": name, "labeling": lab, "middle": middle,
                                        **choose_lr(rows[lab], middle, res)}
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    sweep, keys = Path(argv[0]), tuple(argv[1:]) or DEFAULT_KEYS
    try:
        out = best(sweep, keys)
    except FileNotFoundError as e:
        print(f"flexnet.analysis.hparams: error: {e}", file=sys.stderr)
        return 2
    rows = sorted(collect(sweep), key=lambda r: (-r["emc"], r["cost"]))
    print(" | ".join([*keys, "emc"]))
    for r in rows:
        print(" | ".join([*(str(_get(r["config"], k)) for k in keys), str(r["emc"])]))
    print(f"best: {out['best']} (EMC {out['emc']}) -> {sweep / 'best_hparams.yaml'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
