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

import errno
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
# keys that cannot change any single attempt, so the journal hash leaves them out (attempts replay across
# them) -- but they change the result: a finished emc.json is not replaced by a run that differs in one
# (outdir.check_claim), except by an extension (train.caps extended, search.trials increased)
ATTEMPT_NEUTRAL_KEYS = ("search.trials", "search.trial_workers", "search.growth", "train.caps")
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
    attempt at (n, attempt) is the same under either rule, so journals replay across it); train.caps
    only how far each attempt is trained (under the converge policy an attempt's trajectory does not
    depend on its cap: a record decides every cap it reached, and a longer ladder resumes the capped
    ones; the fixed policy's one cap is its schedule's length and stays in the hash as train.caps_fixed)."""
    result_cfg = {k: v for k, v in cfg.items() if k not in RESULT_NEUTRAL_KEYS}
    train = result_cfg.get("train")
    if isinstance(train, dict) and "caps" in train:
        train = {k: v for k, v in train.items() if k != "caps"}
        if cfg["train"].get("policy", "converge") != "converge" and cfg["train"]["caps"] is not None:
            train["caps_fixed"] = cfg["train"]["caps"]
        result_cfg["train"] = train
    search_neutral = [k.split(".", 1)[1] for k in ATTEMPT_NEUTRAL_KEYS if k.startswith("search.")]
    result_cfg["search"] = {k: v for k, v in cfg["search"].items()
                            if k not in search_neutral and not (k in _HASH_DEFAULTS and v == _HASH_DEFAULTS[k])}
    return config_hash(result_cfg)


# attempt outcomes a journal record may carry (a record with another status is not replayed)
STATUSES = ("fitted", "failed", "diverged", "unverified", "degenerate")
REJECTED_FILE = "fits.rejected.jsonl"


def _int(v: Any, lo: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _num(v: Any, lo: float = 0.0, hi: float = math.inf) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


# plausible ceilings of a journalled attempt (far above anything real, far below a planted 1e300)
MAX_SECONDS = 1e8        # ~3 years
MAX_COST = 1e15          # sample-epochs
# field -> (check, what is allowed); None is allowed for every field listed here (json_safe writes
# NaN and inf as null); a field absent from the record is not checked
_FIELDS: dict = {
    "seed": (lambda v: _int(v, 0), "an integer >= 0"),
    "train_loss": (lambda v: _num(v), "a finite number >= 0"),
    "test_acc": (lambda v: _num(v, 0, 1), "an accuracy in [0, 1]"),
    "test_loss": (lambda v: _num(v), "a finite number >= 0"),
    "epochs": (lambda v: _int(v, 0), "an integer >= 0"),
    "steps": (lambda v: _int(v, 0), "an integer >= 0"),
    "seconds": (lambda v: _num(v, 0, MAX_SECONDS), f"a number of seconds in [0, {MAX_SECONDS:g}]"),
    "check_seconds": (lambda v: _num(v, 0, MAX_SECONDS), f"a number of seconds in [0, {MAX_SECONDS:g}]"),
    "cost": (lambda v: _num(v, 0, MAX_COST), f"a number of sample-epochs in [0, {MAX_COST:g}]"),
    "extensions": (lambda v: _int(v, 0), "an integer >= 0"),
    "grad_norm": (lambda v: _num(v), "a finite number >= 0"),
    "lanczos_iters": (lambda v: _int(v, 0), "an integer >= 0"),
    "cap_steps": (lambda v: _int(v, 1), "an integer >= 1"),
    "fitted_step": (lambda v: _int(v, 0), "an integer >= 0"),
    "fitted_epoch": (lambda v: _int(v, 0), "an integer >= 0"),
    "resumed_from_step": (lambda v: _int(v, 0), "an integer >= 0"),
    "code_hash": (lambda v: isinstance(v, str), "a string"),
    "config_hash": (lambda v: isinstance(v, str), "a string"),
    "stop_reason": (lambda v: isinstance(v, str), "a string"),
    "plateaued": (lambda v: isinstance(v, bool), "true or false"),
    "stacked": (lambda v: _int(v, 1), "an integer >= 1"),
}


def _rung(r: Any) -> bool:
    return (isinstance(r, dict) and _int(r.get("cap"), 1) and _int(r.get("step"), 0)
            and _num(r.get("train_acc"), 0, 1) and (r.get("train_loss") is None or _num(r.get("train_loss"))))


def check_record(rec: Any, fit_threshold: float = 1.0) -> Optional[str]:
    """Why a journal record cannot be replayed (None: it can): its shape, the type and range of every
    field it carries (_FIELDS, `rungs`), `train_acc` present, and the status against the record's own
    accuracy (an edited status that contradicts train_acc is not trusted)."""
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
    if "train_acc" not in rec:
        return "no train_acc (every attempt records its accuracy on the subset)"
    acc = rec.get("train_acc")
    if acc is None and status not in ("diverged", "degenerate"):
        return f"train_acc=None on a {status} attempt (only a diverged or degenerate one has no accuracy)"
    if acc is not None and not _num(acc, 0, 1):
        return f"train_acc={acc!r} is not an accuracy in [0, 1]"
    for key, (ok, allowed) in _FIELDS.items():
        v = rec.get(key)
        if v is not None and not ok(v):
            return f"{key}={v!r} is not {allowed}"
    for key in ("min_eig", "max_eig", "trace"):
        v = rec.get(key)
        if v is not None and not _num(v, -math.inf):
            return f"{key}={v!r} is not a finite number"
    rungs = rec.get("rungs")
    if rungs is not None and not (isinstance(rungs, list) and all(_rung(r) for r in rungs)):
        return "rungs is not a list of {cap, step, train_acc, train_loss} records"
    fitted = rec.get("fitted")
    if fitted is not None and fitted is not (status == "fitted"):
        return f"status={status!r} contradicts fitted={fitted!r}"
    if isinstance(acc, (int, float)) and status in ("fitted", "failed", "unverified"):
        if (status == "fitted") != (acc >= fit_threshold - 1e-12):
            return f"status={status!r} contradicts train_acc={acc} (fit threshold {fit_threshold})"
    return None


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise DuplicateKey(f"key {k!r} appears twice (which one was meant cannot be known)")
        seen[k] = v
    return seen


def loads_record(line: Any) -> Any:
    """json.loads that refuses a duplicated key (plain json keeps the last one silently)."""
    return json.loads(line, object_pairs_hook=_no_duplicates)


def _reach(rec: dict) -> tuple[int, int]:
    """How far a record saw its attempt (search/ladder.py's reach), a final outcome before a capped one."""
    capped = rec.get("stop_reason") == "cap"
    steps = int(rec.get("cap_steps") or rec.get("steps") or 0) if capped else int(rec.get("steps") or 0)
    return steps, 0 if capped else 1


class Journal:
    """Append-only `fits.jsonl`; replays lines whose `config_hash` matches.

    An attempt may have several lines: one per cap it was trained to (train.caps: a capped attempt
    resumed to a larger cap adds a line); `get` returns the one that saw it furthest. Each line records
    the `code_hash` of the code that trained it (provenance.py); `other_code` counts the matching lines
    written by other code (lines from before code hashes were recorded have none and are not counted).

    Loading checks every line (check_record): a line cut by a kill mid-write, valid JSON of the
    wrong shape or a record whose status contradicts its accuracy is not replayed; it is moved to
    `fits.rejected.jsonl` (with the reason), the journal is rewritten without it, and one log line
    says how many lines were set aside and why."""

    def __init__(self, path: Path, chash: str, fit_threshold: float = 1.0, code_hash: Optional[str] = None):
        self.path, self.chash = Path(path), chash
        self.fit_threshold = float(fit_threshold)
        self.code_hash = code_hash
        self.replayed: dict[tuple[int, int, int], dict] = {}  # (trial, n, attempt): from earlier runs
        self.written: dict[tuple[int, int, int], dict] = {}   # ... and from this run
        self.other_code: dict[str, int] = {}  # code hash -> matching lines written by other code
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
                rec = loads_record(line)
                why = check_record(rec, self.fit_threshold)
            except DuplicateKey as e:
                rec, why = None, str(e)
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
                old = self.replayed.get(key)
                if old is not None and _reach(old) == _reach(rec):
                    self.rejected.append((i, f"repeats n={rec['n']} attempt {rec['attempt']} (the first is kept)"))
                    bad.append({"line": i, "reason": self.rejected[-1][1], "text": text})
                    good.pop()
                    continue
                ch = rec.get("code_hash")
                if ch and self.code_hash and ch != self.code_hash:
                    self.other_code[ch] = self.other_code.get(ch, 0) + 1
                if old is None or _reach(rec) > _reach(old):
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
        """The record that saw attempt (n, attempt) of `trial` furthest, from this run or an earlier one."""
        key = (int(trial), int(n), int(attempt))
        recs = [r for r in (self.written.get(key), self.replayed.get(key)) if r is not None]
        return max(recs, key=_reach) if recs else None

    def earlier(self, n: int, attempt: int, trial: int = 0) -> bool:
        """Was attempt (n, attempt) journalled by an earlier run (not trained by this one)?"""
        key = (int(trial), int(n), int(attempt))
        return key in self.replayed and key not in self.written

    def append(self, rec: dict) -> None:
        rec = dict(json_safe(rec), config_hash=self.chash)
        if self.code_hash is not None:
            rec.setdefault("code_hash", self.code_hash)
        self.written[(int(rec.get("trial") or 0), int(rec["n"]), int(rec["attempt"]))] = rec
        data = (json.dumps(rec, sort_keys=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:  # one whole line or none: a short or failed write (disk full, a file-size limit) is undone
                done = os.write(fd, data)
                if done != len(data):
                    raise OSError(errno.ENOSPC, f"only {done} of {len(data)} bytes written", str(self.path))
                os.fsync(fd)
            except OSError as e:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                if not e.filename:
                    e.filename = str(self.path)
                raise
        finally:
            os.close(fd)


CHECKPOINT_DIR = "checkpoints"  # capped attempts' training state (train.caps), one .pt file per attempt


def checkpoint_path(outdir: Path, n: int, attempt: int, trial: Optional[int] = None) -> Path:
    return Path(outdir) / CHECKPOINT_DIR / f"t{int(trial or 0)}-n{int(n)}-a{int(attempt)}.pt"


def save_checkpoint(path: Path, state: dict, meta: dict) -> None:
    """A capped attempt's training state (fit/resume.py) with `meta` (config and code hash, the step it
    was taken at), written to a temp file and renamed. Tensors and plain values only."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"meta": dict(meta), "state": state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, meta: dict) -> Optional[dict]:
    """The state in a checkpoint whose meta matches `meta` in every key given, else None (missing,
    unreadable, of another config or code, or of another step: the attempt is then trained afresh).
    Loaded with weights_only=True: a planted pickle is not executed."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  any unreadable file: train afresh, say why
        log.warning("checkpoint %s not resumed (%s: %s); the attempt is trained afresh", path, type(e).__name__, e)
        return None
    got = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(got, dict) or any(got.get(k) != v for k, v in meta.items()):
        log.warning("checkpoint %s not resumed (it is of another config, code or step: %s); the attempt is "
                    "trained afresh", path, {k: got.get(k) for k in meta} if isinstance(got, dict) else got)
        return None
    return obj.get("state")


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


def drop_curve(path: Path, n: int, attempt: int, trial: Optional[int] = None, after_step: Optional[int] = None) -> None:
    """Remove curve.jsonl lines of (n, attempt), left by a run killed during that attempt (the
    journal has no record of it, so it is run again and would otherwise be recorded twice); with
    `after_step` (an attempt resumed from its checkpoint at that step) only the lines past it."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:  # a line cut short by the kill
            continue
        ours = r.get("n") == n and r.get("attempt") == attempt and r.get("trial") == trial
        if not ours or (after_step is not None and int(r.get("step") or 0) <= after_step):
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
