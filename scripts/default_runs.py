"""The default runs the README cites, and the README blocks that cite them.

    python scripts/default_runs.py --run      # run both default commands into multirun/default/<name> (from scratch)
    python scripts/default_runs.py --readme   # rewrite README.md's marked blocks from the committed files

`--run` runs `python -m flexnet` (semantic labels) and `python -m flexnet labeling=random_labels` as a
user would, one after the other, each into multirun/default/<name> with `+fresh=true`, and keeps what
it printed in `stdout.txt` beside `emc.json`. Run it from a clean checkout (emc.json records the git
commit and whether the tree was dirty) on an idle machine (the README cites the wall times).
`--readme` fills the blocks between `<!-- default-run:... -->` and `<!-- /default-run -->` from those
files; tests/test_readme.py checks that README and files agree and that the runs were made by the
current code (their recorded code hash).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"semantic": [], "random_labels": ["labeling=random_labels"]}
DIR = ROOT / "multirun" / "default"


def command(name: str) -> str:
    return " ".join(["python -m flexnet", *RUNS[name]])


def run() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for name, over in RUNS.items():
        out = DIR / name
        p = subprocess.run([sys.executable, "-m", "flexnet", *over, f"hydra.run.dir={out}", "+fresh=true",
                            "progress=false"], cwd=ROOT, env=env, capture_output=True, text=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "stdout.txt").write_text(p.stdout.replace(str(ROOT) + "/", ""))  # paths relative to the checkout
        print(p.stdout, p.stderr[-2000:] if p.returncode else "", sep="", flush=True)
        if p.returncode:
            raise SystemExit(p.returncode)


def result(name: str) -> dict:
    return json.loads((DIR / name / "emc.json").read_text())


def table() -> str:
    caps = [b["cap_steps"] for b in result("semantic")["emc_by_cap"]]
    head = " / ".join(f"{c // 1000}k" if c % 1000 == 0 else str(c) for c in caps)
    lines = [f"| command (committed run under `multirun/default/`) | EMC at {head} steps | budget-stable | attempts "
             f"| wall time |", "|---|---|---|---|---|"]
    for name in RUNS:
        r = result(name)
        by = " / ".join(str(b["emc"]) for b in r["emc_by_cap"])
        lines.append(f"| `{command(name)}` (`{name}`) | {by} | {'yes' if r['budget_stable'] else 'no'} | {r['fits']} "
                     f"| {r['seconds']:.0f} s |")
    prov = result("semantic")["provenance"]
    lines += ["", f"(Run from commit {prov['git_commit'][:8]}{' (dirty tree)' if prov['git_dirty'] else ''}, code hash "
              f"{prov['code_hash']}, torch {prov['torch']}, {prov['threads']} thread, {prov['device']}; "
              "`python scripts/default_runs.py --run` re-runs both.)"]
    return "\n".join(lines)


def output(name: str) -> str:
    """What the run printed: its summary (the lines from `EMC(`), as a user sees it."""
    text = (DIR / name / "stdout.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("EMC("))
    return "\n".join(["```", f"$ {command(name)}", *text[start:], "```"])


def readme() -> None:
    path = ROOT / "README.md"
    s = path.read_text()

    def fill(m: re.Match) -> str:
        kind, _, arg = m.group(1).partition(" ")
        body = table() if kind == "table" else output(arg)
        return f"<!-- default-run:{m.group(1)} -->\n{body}\n<!-- /default-run -->"

    path.write_text(re.sub(r"<!-- default-run:([^>]*?) -->\n.*?<!-- /default-run -->", fill, s, flags=re.S))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="store_true")
    ap.add_argument("--readme", action="store_true")
    a = ap.parse_args()
    if a.run:
        run()
    if a.readme or a.run:
        readme()


if __name__ == "__main__":
    main()
