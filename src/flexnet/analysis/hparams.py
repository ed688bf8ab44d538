"""Best setting of a tuning sweep: `python -m flexnet.analysis.hparams <sweep dir> [key ...]`.

Reads every job's emc.json under the sweep directory, ranks jobs by EMC (ties: lower cost in
sample-epochs), prints a table of the swept keys and writes the winner to
`<sweep dir>/best_hparams.yaml` (the keys, its EMC, and the job directory). Optuna sweeps also
write `optimization_results.yaml` themselves; this works for those too.
"""
from __future__ import annotations

import json
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
