"""EMC(C) on a ladder of caps (`train.caps`): one search per rung, each continuing above the rung below.

Nakkiran et al. define EMC(T) with T the training procedure including its length; flexnet measures it
at every cap of a ladder (e.g. 5k, 10k, 20k optimizer steps) in one job. Under the converge policy an
attempt's trajectory does not depend on its cap (fit/resume.py), so an attempt trained to any cap
decides its outcome within every smaller cap (`read_off`), and one capped below a rung is resumed
from its checkpoint rather than retrained. The rungs are searched in ascending order
(`ladder_search`): the lowest with the configured search from `search.start`; each higher one starts
from the EMC below it (a fit within a smaller cap is a fit within this one) and probes the failed
size below first (bisect's `below`), so the ladder costs little more than its top rung, and adding a
rung on top changes none of the rungs under it. Each rung's bracket is the search's own: the failed
size had every attempt fail within that rung's cap, at the search's resolution.

Pure: no training, no files; the oracle (oracle.py) trains, resumes and replays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from .base import SearchResult


def rung_end(rec: dict, cap: int) -> int:
    """The step at which an attempt given `cap` stops at the latest: the end of the first epoch that
    reaches the cap (whole epochs; steps per epoch from the record)."""
    epochs, steps = int(rec.get("epochs") or 0), int(rec.get("steps") or 0)
    spe = max(1, steps // epochs) if epochs else 1
    return -(-int(cap) // spe) * spe


def reach(rec: dict) -> int:
    """How far a record saw its attempt: the step it stopped at (a final outcome), or the cap it was
    stopped by."""
    if rec.get("stop_reason") == "cap":
        return int(rec.get("cap_steps") or rec.get("steps") or 0)
    return int(rec.get("steps") or 0)


def read_off(rec: dict, cap: Optional[int]) -> Optional[dict]:
    """The attempt's record within `cap`, read off a record of it trained to any cap; None when the
    record does not decide it (it was stopped by a smaller cap: resume it).

    A final outcome (fitted, a verdict, diverged) at step s holds within every cap whose rung end is
    at or past s; within a smaller cap the attempt was stopped by that cap, with the accuracy and loss
    of its evaluation at that rung (`rungs`), its other evidence unknown."""
    if cap is None or rec.get("policy", "converge") != "converge":
        return rec  # no ladder, or a schedule whose length is the job's one cap (extensions run past it)
    cap = int(cap)
    steps, capped = int(rec.get("steps") or 0), rec.get("stop_reason") == "cap"
    if not int(rec.get("epochs") or 0):  # solved in closed form: no steps, no cap
        return rec
    if capped and int(rec.get("cap_steps") or steps) == cap:
        return rec
    end = rung_end(rec, cap)
    if not capped and steps <= end:
        return rec if rec.get("cap_steps") == cap else {**rec, "cap_steps": cap, "read_off": reach(rec)}
    if capped and reach(rec) < cap:
        return None
    # stopped by this cap: the state at its rung end
    spe = max(1, steps // int(rec["epochs"]))
    at = next((r for r in rec.get("rungs") or [] if r.get("cap") == cap), {})
    keep = {k: rec[k] for k in ("trial", "n", "attempt", "seed", "config_hash", "code_hash", "policy") if k in rec}
    return {**keep, "status": "unverified", "stop_reason": "cap", "fitted": False,
            "train_acc": at.get("train_acc"), "train_loss": at.get("train_loss"),
            "epochs": end // spe, "steps": end, "cap_steps": cap, "cost": float(int(rec["n"]) * (end // spe)),
            "seconds": None, "fitted_epoch": None, "fitted_step": None, "test_acc": None,
            "rungs": [r for r in rec.get("rungs") or [] if int(r.get("cap", 0)) <= cap],
            "read_off": reach(rec)}


class AtCap:
    """What a rung's search sees: `oracle(n, attempt)` (and `batch`, where the oracle trains several
    attempts together) answered within this rung's cap by `at(n, attempt, cap)`."""

    def __init__(self, oracle: Any, cap: Optional[int]):
        self.oracle, self.cap = oracle, cap
        if hasattr(oracle, "batch_at"):
            self.batch = lambda n, attempts: oracle.batch_at(n, attempts, cap)

    def __call__(self, n: int, attempt: int):
        return self.oracle.at(n, attempt, self.cap)


@dataclass
class Rung:
    cap: Optional[int]      # steps; None: the cap of train.epochs / train.min_steps (no ladder)
    result: SearchResult


def ladder_search(strategy: Callable[..., SearchResult], oracle: Any, caps: Sequence[Optional[int]],
                  **kw: Any) -> list[Rung]:
    """The configured search at every rung, ascending; each rung after the first is handed the result
    below it (`below`: bisect continues above its bracket; other searches start over, with the
    attempts they share replayed)."""
    rungs: list[Rung] = []
    below: Optional[SearchResult] = None
    for cap in caps:
        res = strategy(AtCap(oracle, cap), below=below, **kw)
        rungs.append(Rung(cap, res))
        below = res
    return rungs
