"""`make mutate`: mutation testing of the modules whose logic decides results (mutmut 3; not in CI: slow).

Each group (GROUPS: the modules it mutates, the fast test files that exercise them) runs in its own
copy of the tree under build/mutate/<group>/ (src/, tests/, conf/, pyproject.toml and a setup.cfg
that configures mutmut for that group), so the test command a module's mutants run is scoped to the
tests of that module (and, within them, mutmut runs only the tests that call the mutated function),
and the working tree is never touched. Groups run one after the other; each one's output goes to
build/mutate/<group>.log, its per-mutant results to build/mutate/<group>.results, and the scores to
build/mutate/scores.md (killed / all mutants but those
not run; a mutant that times out, or that no selected test reaches, counts as not killed). docs/testing.md reports a measured pass and its surviving mutants.

    python scripts/mutate.py [GROUP ...]      # default: every group
    python scripts/mutate.py --retest GROUP   # the last pass's survivors again, against the tests as they are
    MUTATE_DIR=... MUTATE_CHILDREN=2          # where, and how many mutants at once
    MUTATE_ONLY="*x_bisect_search*"           # only the mutants whose names match
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# group -> (modules mutated, relative to src/flexnet; fast test files run against their mutants)
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "search": (["search/base.py", "search/bisect.py", "search/ladder.py", "search/linear.py", "search/fixed.py"],
               ["tests/test_search.py", "tests/test_properties.py", "tests/test_search_aim.py"]),
    # the strategies themselves (bisect_search, linear_search, fixed_search): see undecorate()
    "search_core": (["search/bisect.py", "search/linear.py", "search/fixed.py"],
                    ["tests/test_search.py", "tests/test_properties.py", "tests/test_search_aim.py"]),
    "records": (["records.py"],
                ["tests/test_properties.py", "tests/test_gaps.py", "tests/test_resume.py",
                 "tests/test_reliability_results.py", "tests/test_reliability.py"]),
    "verdicts": (["analysis/verdicts.py"], ["tests/test_verdicts.py", "tests/test_ladder_verdicts.py"]),
    "fit": (["fit/loop.py", "fit/checks.py", "fit/policies.py"],
            ["tests/test_train.py", "tests/test_gaps.py", "tests/test_ladder.py"]),
}

STATUSES = ("killed", "survived", "timeout", "suspicious", "no tests", "skipped", "segfault", "not checked",
            "check was interrupted by user", "caught by type check")


def setup_cfg(modules: list[str], tests: list[str]) -> str:
    lines = ["[mutmut]", "source_paths = src", "also_copy =", "    conf", "only_mutate ="]
    lines += [f"    src/flexnet/{m}" for m in modules]
    # the fast suite's selection; -x: a mutant is killed at its first failing test; no per-test timeout
    # plugin inside mutmut's own (it times a mutant out at 15x its tests' clean duration)
    lines += ["pytest_add_cli_args =", "    -m", "    not slow and not slurm", "    -p", "    no:cacheprovider",
              "    -x", "pytest_add_cli_args_test_selection ="]
    lines += [f"    {t}" for t in tests]
    lines += ["process_isolation = forkserver", ""]
    return "\n".join(lines)


REGISTERED = re.compile(r'^@(\w+)\.register\("(\w+)"\)\n(def (\w+)\()', re.M)


def undecorate(path: Path) -> None:
    """mutmut 3 does not mutate decorated functions, so `@SEARCHES.register("bisect") def bisect_search`
    would never be mutated. In the copy only, the function is registered by a call after the module's
    code instead (the same registry entry, the same function)."""
    text = path.read_text()
    calls = [f'{m.group(1)}.register("{m.group(2)}")({m.group(4)})' for m in REGISTERED.finditer(text)]
    if calls:
        path.write_text(REGISTERED.sub(r"\3", text).rstrip("\n") + "\n\n\n" + "\n".join(calls) + "\n")


def copy_tree(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    for name in ("src", "tests", "conf"):
        if (dst / name).exists():
            shutil.rmtree(dst / name)
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dst / "pyproject.toml")


def counts(results: str) -> dict[str, int]:
    c: dict[str, int] = {}
    for line in results.splitlines():
        m = re.match(r"\s*(\S+): (.+)$", line)
        if m and m.group(2).strip() in STATUSES:
            c[m.group(2).strip()] = c.get(m.group(2).strip(), 0) + 1
    return c


def run_group(name: str, base: Path, children: str, retest: bool = False) -> dict[str, int]:
    """One group's pass; `retest`: only the mutants not killed by the last pass, against the tests as they
    are now (the tests copied afresh, the test-to-function map collected again)."""
    modules, tests = GROUPS[name]
    work = base / name
    work.mkdir(parents=True, exist_ok=True)
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    env = {**os.environ, "FLEXNET_HYPOTHESIS_PROFILE": "mutate", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    names: list[str] = []
    if retest:
        last = subprocess.run([mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True)
        names = [l.split(":")[0].strip() for l in last.stdout.splitlines()
                 if l.strip().endswith(("survived", "no tests", "timeout", "suspicious"))]
        if not names:
            print(f"mutate: group {name}: nothing to retest", flush=True)
        for d in (work / "tests", work / "mutants" / "tests"):
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(ROOT / "tests", d, ignore=shutil.ignore_patterns("__pycache__"))
        (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    else:
        copy_tree(work)
        for m in modules:
            undecorate(work / "src" / "flexnet" / m)
    (work / "setup.cfg").write_text(setup_cfg(modules, tests))
    log = base / f"{name}{'.retest' if retest else ''}.log"
    with open(log, "w") as f:
        f.write(f"# mutmut run, group {name}, {dt.datetime.now().isoformat(timespec='seconds')}"
                f"{f', retest of {len(names)} mutants' if retest else ''}\n")
        f.flush()
        only = os.environ.get("MUTATE_ONLY", "").split()  # mutant name globs, e.g. "*x_bisect_search*"
        if not retest or names:
            subprocess.run([mutmut, "run", "--max-children", children, *(names or only)], cwd=work, env=env, stdout=f,
                           stderr=subprocess.STDOUT, check=False)
    res = subprocess.run([mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True)
    (base / f"{name}.results").write_text(res.stdout + res.stderr)
    return counts(res.stdout)


def main(argv: list[str]) -> int:
    retest = "--retest" in argv
    argv = [a for a in argv if a != "--retest"]
    names = argv or list(GROUPS)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        print(f"mutate: unknown group(s) {unknown}; groups: {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    base = Path(os.environ.get("MUTATE_DIR", ROOT / "build" / "mutate")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    children = os.environ.get("MUTATE_CHILDREN", "1")
    rows = []
    for name in names:
        c = run_group(name, base, children, retest)
        killed = c.get("killed", 0) + c.get("caught by type check", 0)
        # every mutant that ran or could not run counts: one no test reaches ("no tests") is not killed
        judged = killed + sum(c.get(k, 0) for k in ("survived", "timeout", "suspicious", "segfault", "no tests"))
        score = f"{100 * killed / judged:.1f}%" if judged else "n/a"
        rows.append(f"| {name}{' (retest)' if retest else ''} | {', '.join(GROUPS[name][0])} | {killed} | {judged} | {score} | "
                    + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) + " |")
        print(rows[-1], flush=True)
    stamp = dt.datetime.now().isoformat(timespec="minutes")
    with open(base / "scores.md", "a") as f:
        f.write(f"\n## {stamp}\n\n| group | modules | killed | judged | score | all outcomes |\n|---|---|---|---|---|---|\n")
        f.write("\n".join(rows) + "\n")
    print(f"mutate: scores in {base / 'scores.md'}; survivors: mutmut results / mutmut show NAME in {base}/<group>")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
