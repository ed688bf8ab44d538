"""flexnet benchmarks (`make bench`): writes BENCHMARKS.md from one run on this machine.

1. search cost: bisect with each growth rule (fit_time, the default, and double; 4 seeds on each
   config) against linear (the paper's protocol; step = bisect's resolution x EMC, an oracle
   step) on the same configs (2k- and 8k-parameter MLPs, random labels): fits, sample-epochs,
   wall time, bracket agreement, cost over the unavoidable work;
2. training throughput: flexnet's fit loop against a bare hand-written PyTorch loop, with
   torch.optim.SGD's defaults and with its fused kernel (flexnet's own choice);
3. the verified-minimum checks' share of job time on the default config;
4. batched attempts (4 and 16 stacked models) against one at a time;
5. a job with `search.trials=5`: one attempt at a time, stacked rounds, worker processes;
6. the default job (both labelings) trained to a verdict (train.policy=converge) against the old
   default (the fixed cosine schedule): EMC, certificate, cost and where the time goes.
7. the whole study: `make reproduce` (the verdict presets) read back from the committed sweeps'
   reproduce.log files and journals: wall time per preset and where it went (fits, failures at the
   cap, failures with a verdict, minimum checks). Nothing is trained for this section.
8. the ladder of caps (train.caps): the default ladder [C/4, C/2, C] against one search at C, a finished
   job extended by one doubling against a search at 2C from scratch, and the two growth aims
   (hyperbola, power law) on the ladder (benchmarks/ladder_cost.py).
`--only N [N ...]` reruns those sections alone and replaces them in the existing file.
Each figure names the device that produced it.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from search_cost import bench_search_section, run  # noqa: E402  (section 1, benchmarks/search_cost.py)
from study_cost import bench_reproduce  # noqa: E402  (section 7, benchmarks/study_cost.py)
import ladder_cost  # noqa: E402  (section 8, benchmarks/ladder_cost.py)


def device_name(dev: str) -> str:
    if dev.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def bench_trials(lines, dev, tmp, trials=5, epochs=200):
    """A whole job with search.trials: one attempt at a time (lockstep, this process) against each
    round's attempts stacked and against worker processes (search.trial_workers, no lockstep)."""
    over = ["labeling=random_labels", "threads=1", f"search.trials={trials}", "scaling.params=1000",
            "dataset.num_samples=1500", f"train.epochs={epochs}", f"train.min_steps={5 * epochs}"]
    workers = min(trials, len(os.sched_getaffinity(0)))
    lines += [f"## 5. A job with search.trials={trials}: one attempt at a time, stacked, worker processes", "",
              f"Config: `{' '.join(over)}`, device {device_name(str(dev))}. One at a time and stacked, the "
              f"{trials} searches run in lockstep in one process (stacked: each round's attempts at one size train "
              f"as one model; its outcomes can differ slightly, floating-point order). With "
              f"`search.trial_workers={workers}` each attempt goes to one of {workers} worker processes (one thread "
              "each) as soon as its trial asks: the same attempts and outcomes as one at a time.", "",
              "| attempts | wall s | fit attempts | sample-epochs | EMC per trial | EMC mean +- SE |",
              "|---|---|---|---|---|---|"]
    walls = {}
    for name, flags in (("one at a time", ["search.batch_attempts=false", "search.trial_workers=1"]),
                        ("stacked", ["search.batch_attempts=true", "search.trial_workers=1"]),
                        (f"{workers} worker processes", ["search.batch_attempts=false", f"search.trial_workers={workers}"])):
        r, _ = run(over + flags, tmp / f"trials-{len(walls)}")
        walls[name] = r["wall"]
        lines.append(f"| {name} | {r['wall']:.1f} | {r['total_fits']} | {r['total_cost_sample_epochs']:.3g} | "
                     f"{', '.join(str(t['emc']) for t in r['trials'])} | {r['emc_mean']:.0f} +- {r['emc_se']:.0f} |")
    seq = walls["one at a time"]
    lines += ["", f"- wall time, one at a time / stacked: **{seq / walls['stacked']:.2f}**",
              f"- wall time, one at a time / {workers} worker processes: "
              f"**{seq / walls[f'{workers} worker processes']:.2f}** (target >= 1.8 with 5 trials on 2 cores)", ""]


def bench_throughput(lines, dev, steps=3000, reps=5):
    from flexnet.fit.loop import Budget, Checks, Recipe, train_to_minimum
    from flexnet.optim import build_procedure

    g = torch.Generator().manual_seed(0)
    n, d, k, w, bs = 2048, 40, 10, 39, 128
    x = torch.randn(n, d, generator=g).to(dev)
    y = torch.randint(0, k, (n,), generator=g).to(dev)

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(d, w), nn.ReLU(), nn.Linear(w, k)).to(dev)

    def bare(fused=None):
        m = model()
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, fused=fused)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        gen = torch.Generator(device=dev).manual_seed(1)
        done = 0
        while done < steps:
            perm = torch.randperm(n, generator=gen, device=dev)
            for b in range(0, n, bs):
                idx = perm[b:b + bs]
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(m(x[idx]), y[idx])
                loss.backward()
                opt.step()
                sched.step()
                done += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def ours():
        rec = Recipe(build_procedure({"name": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": bs}, {"name": "none"}),
                     Budget(policy="fixed", epochs=math.ceil(steps / math.ceil(n / bs)), min_steps=0,
                            max_extensions=0),
                     Checks(early_verdict=False, hessian=False, check_fitted=False), fit_threshold=2.0)
        r = train_to_minimum(model(), x, y, rec, g=torch.Generator(device=dev).manual_seed(1))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return r

    ours(); bare()  # warm-up (imports, allocator)
    # interleaved, so that a slow spell of a shared machine hits both loops alike; best of `reps` each
    loops = (("bare loop", bare), ("bare loop, fused SGD", lambda: bare(True)), ("flexnet train_to_minimum", ours))
    times: dict = {name: [] for name, _ in loops}
    for _ in range(reps):
        for name, fn in loops:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    res = {name: steps * bs / min(ts) for name, ts in times.items()}
    lines += ["## 2. Training throughput: flexnet's loop vs a bare PyTorch loop", "",
              f"MLP 40-{w}-10 (about 2k parameters), {n} samples, batch {bs}, {steps} steps, best of {reps} "
              "(the loops interleaved), "
              f"device {device_name(str(dev))}. flexnet's loop includes its per-epoch accounting, "
              "plateau tracking and full-subset evaluations (every 50 epochs, and whenever the running accuracy is near the threshold); "
              "flexnet's SGD is torch's with `fused=True` (one kernel for the update; src/flexnet/optim/optimizers.py), "
              "the first bare loop keeps torch.optim.SGD's defaults (per-tensor update), the second sets `fused=True` "
              "too, so that the last ratio below is the loop's own overhead; "
              "all loops run a fixed length (`train.policy=fixed`: the cosine schedule, no verdict stops it); the minimum checks are off here "
              "(section 3 measures them).", "",
              "| loop | samples/s |", "|---|---|"]
    for k_, v in res.items():
        lines.append(f"| {k_} | {v:,.0f} |")
    ratio = res["flexnet train_to_minimum"] / res["bare loop"]
    own = res["flexnet train_to_minimum"] / res["bare loop, fused SGD"]
    lines += ["", f"- flexnet / bare: **{ratio:.2f}** (target >= 0.95)",
              f"- flexnet / bare with the same fused SGD (the loop's own overhead): {own:.2f}", ""]


def bench_batched(lines, dev, epochs=40):
    from flexnet.fit.loop import Budget, Checks, Recipe, train_to_minimum
    from flexnet.fit.stacked import train_batched
    from flexnet.optim import build_procedure

    n, d, k, w = 1024, 40, 10, 39
    rec = Recipe(build_procedure({"name": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 128}, {"name": "none"}),
                 Budget(policy="fixed", epochs=epochs, min_steps=0, max_extensions=0),
                 Checks(early_verdict=False, hessian=False, check_fitted=False), fit_threshold=2.0)

    def data(K):
        gs = [torch.Generator().manual_seed(i) for i in range(K)]
        return ([torch.randn(n, d, generator=g).to(dev) for g in gs],
                [torch.randint(0, k, (n,), generator=g).to(dev) for g in gs])

    def model(i):
        torch.manual_seed(i)
        return nn.Sequential(nn.Flatten(), nn.Linear(d, w), nn.ReLU(), nn.Linear(w, k)).to(dev)

    lines += ["## 4. Batched attempts vs one at a time", "",
              f"K attempts (MLP 40-{w}-10, {n} random-label samples each, batch 128, {epochs} epochs, no early stop), "
              f"device {device_name(str(dev))}.", "",
              "| K | sequential model-epochs/s | batched model-epochs/s | ratio |", "|---|---|---|---|"]
    for K in (4, 16):
        xs, ys = data(K)
        gens = lambda: [torch.Generator(device=dev).manual_seed(100 + i) for i in range(K)]
        train_batched([model(i) for i in range(2)], xs[:2], ys[:2], rec, gens()[:2], [0, 1])  # warm-up
        t0 = time.perf_counter()
        for i, g in enumerate(gens()):
            train_to_minimum(model(i), xs[i], ys[i], rec, g=g, seed=i)
        seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_batched([model(i) for i in range(K)], xs, ys, rec, gens(), list(range(K)))
        bat = time.perf_counter() - t0
        lines.append(f"| {K} | {K * epochs / seq:.1f} | {K * epochs / bat:.1f} | **{seq / bat:.2f}** |")
    lines += ["", "Target: >= 2.5x for 16 small MLPs on a 2-core CPU.", ""]


def bench_checks(fits, res, lines, label):
    train_s = sum(f["seconds"] for f in fits)
    check_s = sum(f.get("check_seconds") or 0 for f in fits)
    lines += [f"## 3. Verified-minimum checks' share ({label})", "",
              f"- checks (gradient norm, plateau, Lanczos Hessian): {check_s:.1f}s of {train_s:.1f}s attempt time "
              f"= **{check_s / max(train_s, 1e-9):.1%}** of training, {check_s / max(res['wall'], 1e-9):.1%} of the "
              f"job's wall time {res['wall']:.1f}s (target <= 10% of a converged job; "
              f"this job converged: {res.get('converged')})",
              f"- Lanczos Hessian-vector products per attempt that ran it: median "
              f"{_median([f['lanczos_iters'] for f in fits if f.get('lanczos_iters')])}", ""]


# the default before train.policy=converge: cosine over 500 epochs / 3000 steps, 2 extensions at 0.1x lr,
# an absolute gradient tolerance of 0.05 on the iterate itself, the Hessian of every fitted attempt
OLD_DEFAULT = ["train.policy=fixed", "train.epochs=500", "train.min_steps=3000", "train.max_extensions=2",
               "convergence.grad_tol=0.05", "convergence.polish_steps=0", "convergence.check_fitted=true"]


def bench_policies(tmp, lines, dev):
    lines += ["## 6. Converged search vs the old fixed schedule (the default job)", "",
              f"Run on {time.strftime('%Y-%m-%d %H:%M')}, device {device_name(str(dev))}. converge: the default "
              "(constant lr, x0.5 at each unverified plateau, cap 2000 epochs / 20,000 steps); fixed: the old default "
              f"`{' '.join(OLD_DEFAULT)}`. Time split: seconds in attempts that fitted / that did not; the checks "
              "(gradient, polish, Hessian) are part of both.", "",
              "| labeling | policy | EMC | bracket | converged | attempts | unverified | sample-epochs | wall s "
              "| in fits | in failures | in checks |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for labeling in ("semantic", "random_labels"):
        for policy, extra in (("converge", []), ("fixed (old)", OLD_DEFAULT)):
            res, fits = run([f"labeling={labeling}", "threads=1", *extra], tmp / f"{labeling}-{policy[:5]}")
            fit_s = sum(f["seconds"] for f in fits if f["status"] == "fitted")
            fail_s = sum(f["seconds"] for f in fits if f["status"] != "fitted")
            chk_s = sum(f.get("check_seconds") or 0 for f in fits)
            tot = max(fit_s + fail_s, 1e-9)
            br = res["bracket"]
            lines.append(f"| {labeling} | {policy} | {res['emc']} | [{br['fitted']}, {br['failed']}] | "
                         f"{res['converged']} | {res['fits']} | {res['unverified']} | {res['cost_sample_epochs']:.3g} | "
                         f"{res['wall']:.0f} | {fit_s / tot:.0%} | {fail_s / tot:.0%} | {chk_s / tot:.0%} |")
    lines += ["", "Target (issue: EMC at a verified minimum): the default job under 3 minutes for both labelings.", ""]


def replace_section(path: Path, number: int, new: list[str]) -> str:
    """The file's text with section `## <number>.` replaced by `new` (appended if absent)."""
    old = path.read_text().splitlines() if path.exists() else ["# flexnet benchmarks", ""]
    start = next((i for i, l in enumerate(old) if l.startswith(f"## {number}.")), None)
    if start is None:
        return "\n".join(old + new) + "\n"
    end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
    return "\n".join(old[:start] + new + old[end:]) + "\n"


def rerun_sections(args, dev) -> None:
    """`--only N [N ...]`: run those sections and replace each in --out, keeping the others; each
    section notes when and with which --only it ran. Section 3 reads section 1's 2k job when both
    run, else runs that job itself."""
    base, out = ["labeling=random_labels", "threads=1"], Path(args.out)
    note = f"`--only {' '.join(map(str, args.only))}` on {time.strftime('%Y-%m-%d %H:%M')}"
    job = None
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for number in sorted(set(args.only)):
            sec: list[str] = []
            if number == 1:
                job = bench_search_section(base, tmp, sec)
            elif number == 2:
                bench_throughput(sec, dev)
            elif number == 3:
                res, fits = job or run(base + ["search=bisect"], tmp / "checks")
                bench_checks(fits, res, sec, "default config, random labels, bisect job of section 1")
            elif number == 4:
                bench_batched(sec, dev)
            elif number == 5:
                bench_trials(sec, dev, tmp)
            elif number == 6:
                bench_policies(tmp, sec, dev)
            elif number == 7:
                bench_reproduce(sec)
            else:
                sec += bench_ladder(tmp)
            # the section's own heading first, then the note of when it ran
            head = next(i for i, l in enumerate(sec) if l.startswith(f"## {number}."))
            sec = [sec[head], "", f"(Section {number} rerun alone with {note}.)", ""] + sec[:head] + \
                sec[head + 1 + (sec[head + 1:head + 2] == [""]):]
            out.write_text(replace_section(out, number, sec))
            print("\n".join(sec))


def bench_ladder(tmp: Path, seeds=(0, 1)) -> list[str]:
    """Section 8: the ladder's cost against one search at its top cap, extending a finished job
    against a search at twice the cap, and the two growth aims (benchmarks/ladder_cost.py)."""
    paths = []
    for labeling in ("semantic", "random_labels"):
        p = tmp / f"ladder-{labeling}.json"
        ladder_cost.measure(labeling, list(seeds), tmp / "ladder", p)
        paths.append(str(p))
    return ladder_cost.section(paths, f"run on {time.strftime('%Y-%m-%d %H:%M')}")


def _median(v):
    v = sorted(v)
    return v[len(v) // 2] if v else "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--quick", action="store_true", help="shorter budgets (smoke test of the benchmark itself)")
    ap.add_argument("--only", type=int, nargs="+", choices=range(1, 9), default=None,
                    help="run these sections and replace them in --out, keeping the others")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.only:
        rerun_sections(args, dev)
        return
    base = ["labeling=random_labels", "threads=1"]
    if args.quick:
        base += ["train.epochs=60", "train.min_steps=200", "dataset.num_samples=4000"]
    lines = ["# flexnet benchmarks", "",
             f"Generated by `make bench` ({' '.join(sys.argv[1:]) or 'full'}) on {time.strftime('%Y-%m-%d %H:%M')}; "
             f"device: {device_name(str(dev))}; torch {torch.__version__}. One run, side by side; "
             "CPU numbers are noisy, compare ratios rather than absolute values.", ""]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rb, fb = bench_search_section(base, tmp, lines, quick=args.quick)
        bench_throughput(lines, dev, steps=600 if args.quick else 3000)
        bench_checks(fb, rb, lines, "default config, random labels, bisect job of section 1")
        bench_batched(lines, dev, epochs=10 if args.quick else 40)
        bench_trials(lines, dev, tmp, epochs=40 if args.quick else 200)
        if not args.quick:
            bench_policies(tmp, lines, dev)
        bench_reproduce(lines)
        if not args.quick:
            lines += bench_ladder(tmp)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
