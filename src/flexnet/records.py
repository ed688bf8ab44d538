"""Every result file's format: the only module that reads or writes a job's result files.

* `Journal`: `fits.jsonl`, one JSON line per fit attempt, appended atomically
  (one write + fsync per line). It is also the search's journal: a job started
  again on the same output dir replays the finished attempts (matched by
  `result_hash`, a hash of the config keys that determine results) instead of
  retraining them; `check_record` says which lines can be replayed.
* `append_curve` / `drop_curve` / `read_curve`: `curve.jsonl`, per-epoch learning curves.
* `write_result`: `emc.json`, written to a temp file and renamed.
* the file names and `RESULT_NEUTRAL_KEYS` (config keys that cannot change a result).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("flexnet")

FITS_FILE = "fits.jsonl"
CURVE_FILE = "curve.jsonl"  # per-epoch learning curves (search=fixed, or curve=true)
# config keys that cannot change a result: left out of the journal's config hash, and never a
# grouping key of the report (which also ignores `device`: it can change the last bits, not the experiment)
RESULT_NEUTRAL_KEYS = ("logger", "threads", "hydra", "curve", "progress")
RESULT_FILE = "emc.json"


def json_safe(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy/torch scalars -> python."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(json_safe(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]


# search keys left out of the hash at these values (their defaults; added after journals were written
# without them, which then still replay)
_HASH_DEFAULTS = {"stop_at_fit": True, "curve_every": 1}


def result_hash(cfg: dict) -> str:
    """The journal's config hash: of the keys that can change a result. search.trials only says how
    many trials run (trial k's attempts do not depend on it: a rerun with more trials replays them);
    search.trial_workers only where they are trained; search.growth only which sizes are tried (an
    attempt at (n, attempt) is the same under either rule, so journals replay across it)."""
    result_cfg = {k: v for k, v in cfg.items() if k not in RESULT_NEUTRAL_KEYS}
    result_cfg["search"] = {k: v for k, v in cfg["search"].items()
                            if k not in ("trials", "trial_workers", "growth") and not (k in _HASH_DEFAULTS and v == _HASH_DEFAULTS[k])}
    return config_hash(result_cfg)


# attempt outcomes a journal record may carry (a record with another status is not replayed)
STATUSES = ("fitted", "failed", "diverged", "unverified", "degenerate")
REJECTED_FILE = "fits.rejected.jsonl"


def _int(v: Any, lo: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def check_record(rec: Any, fit_threshold: float = 1.0) -> Optional[str]:
    """Why a journal record cannot be replayed (None: it can). Shape, types, and the status
    against the record's own accuracy (an edited status that contradicts train_acc is not trusted)."""
    if not isinstance(rec, dict):
        return f"not a JSON object ({type(rec).__name__})"
    for key, lo in (("n", 1), ("attempt", 0)):
        if not _int(rec.get(key), lo):
            return f"{key}={rec.get(key)!r} is not an integer >= {lo}"
    if "trial" in rec and rec["trial"] is not None and not _int(rec["trial"], 0):
        return f"trial={rec['trial']!r} is not an integer >= 0"
    status = rec.get("status")
    if status not in STATUSES:
        return f"status={status!r} is not one of {', '.join(STATUSES)}"
    acc = rec.get("train_acc")
    if acc is not None and not (isinstance(acc, (int, float)) and not isinstance(acc, bool) and 0 <= acc <= 1):
        return f"train_acc={acc!r} is not an accuracy in [0, 1]"
    for key in ("cost", "seconds"):
        v = rec.get(key)
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
            return f"{key}={v!r} is not a number >= 0"
    fitted = rec.get("fitted")
    if fitted is not None and fitted is not (status == "fitted"):
        return f"status={status!r} contradicts fitted={fitted!r}"
    if isinstance(acc, (int, float)) and status in ("fitted", "failed", "unverified"):
        if (status == "fitted") != (acc >= fit_threshold - 1e-12):
            return f"status={status!r} contradicts train_acc={acc} (fit threshold {fit_threshold})"
    return None


class Journal:
    """Append-only `fits.jsonl`; replays lines whose `config_hash` matches.

    Loading checks every line (check_record): a line cut by a kill mid-write, valid JSON of the
    wrong shape or a record whose status contradicts its accuracy is not replayed; it is moved to
    `fits.rejected.jsonl` (with the reason), the journal is rewritten without it, and one log line
    says how many lines were set aside and why."""

    def __init__(self, path: Path, chash: str, fit_threshold: float = 1.0):
        self.path, self.chash = Path(path), chash
        self.fit_threshold = float(fit_threshold)
        self.replayed: dict[tuple[int, int, int], dict] = {}  # (trial, n, attempt)
        self.rejected: list[tuple[int, str]] = []  # (line number, reason)
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        good: list[str] = []
        bad: list[dict] = []
        with open(self.path, "rb") as f:
            raw = f.read()
        lines = raw.split(b"\n")
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            text = line.decode("utf-8", errors="replace")
            try:
                rec = json.loads(line)
                why = check_record(rec, self.fit_threshold)
            except ValueError:
                rec, why = None, ("cut short (a kill mid-write)" if i == len(lines) and not raw.endswith(b"\n")
                                  else "not valid JSON")
            if why is not None:
                self.rejected.append((i, why))
                bad.append({"line": i, "reason": why, "text": text})
                continue
            good.append(text)
            if rec.get("config_hash") == self.chash:
                key = (int(rec.get("trial") or 0), rec["n"], rec["attempt"])
                if key in self.replayed:
                    self.rejected.append((i, f"repeats n={rec['n']} attempt {rec['attempt']} (the first is kept)"))
                    bad.append({"line": i, "reason": self.rejected[-1][1], "text": text})
                    good.pop()
                    continue
                self.replayed[key] = rec
        if bad:
            with open(self.path.with_name(REJECTED_FILE), "a") as f:
                for b in bad:
                    f.write(json.dumps(b) + "\n")
            shown = "; ".join(f"line {i}: {why}" for i, why in self.rejected[:3])
            more = f"; and {len(self.rejected) - 3} more" if len(self.rejected) > 3 else ""
            msg = (f"journal {self.path}: {len(bad)} line(s) not replayed ({shown}{more}); "
                   f"moved to {self.path.with_name(REJECTED_FILE)}")
            print(f"flexnet: warning: {msg}", file=sys.stderr, flush=True)  # one line, also when logging is off
            log.debug(msg)
        if bad or (raw and not raw.endswith(b"\n")):
            # rewrite without them so later appends start on a clean line and readers see valid records
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(l + "\n" for l in good))
            os.replace(tmp, self.path)

    def get(self, n: int, attempt: int, trial: int = 0) -> Optional[dict]:
        return self.replayed.get((int(trial), int(n), int(attempt)))

    def append(self, rec: dict) -> None:
        rec = dict(json_safe(rec), config_hash=self.chash)
        data = (json.dumps(rec, sort_keys=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def journalled(outdir: Path) -> int:
    """How many attempts a job directory's journal holds (its non-empty fits.jsonl lines; 0 without one)."""
    try:
        return sum(1 for l in (Path(outdir) / FITS_FILE).read_bytes().split(b"\n") if l.strip())
    except OSError:
        return 0


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(json_safe(obj), indent=2) + "\n")
    os.replace(tmp, path)


def write_result(outdir: Path, result: dict) -> Path:
    p = Path(outdir) / RESULT_FILE
    write_json_atomic(p, result)
    return p


def append_curve(path: Path, rec: dict) -> None:
    """One learning-curve record (an epoch of an attempt) appended to curve.jsonl."""
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def drop_curve(path: Path, n: int, attempt: int, trial: Optional[int] = None) -> None:
    """Remove curve.jsonl lines of (n, attempt), left by a run killed during that attempt (the
    journal has no record of it, so it is run again and would otherwise be recorded twice)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:  # a line cut short by the kill
            continue
        if not (r.get("n") == n and r.get("attempt") == attempt and r.get("trial") == trial):
            keep.append(line)
    if len(keep) != len(lines):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file (fits.jsonl, curve.jsonl), read only (the Journal replays and
    repairs fits.jsonl): blank and unreadable lines skipped; none when the file is missing."""
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line) if line.strip() else None
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def read_curve(path: Path) -> list[dict]:
    """The records of a curve.jsonl (unreadable lines skipped; none when the file is missing)."""
    return [rec for rec in read_jsonl(path) if "step" in rec]
