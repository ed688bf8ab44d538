"""The only place that touches result files and W&B.

* `Journal`: `fits.jsonl`, one JSON line per fit attempt, appended atomically
  (one write + fsync per line). It is also the search's journal: a job started
  again on the same output dir replays the finished attempts (matched by a
  hash of the config that determines results) instead of retraining them.
* `write_result`: `emc.json`, written to a temp file and renamed.
* Loggers (`logger` group): `none`, `wandb` (online when W&B is configured,
  offline otherwise; never blocks or fails a run for lack of network).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from .registry import Registry

log = logging.getLogger("flexnet")

FITS_FILE = "fits.jsonl"
RESULT_FILE = "emc.json"


def _clean(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy/torch scalars -> python."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(_clean(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]


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
        rec = dict(_clean(rec), config_hash=self.chash)
        data = (json.dumps(rec, sort_keys=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(_clean(obj), indent=2) + "\n")
    os.replace(tmp, path)


def write_result(outdir: Path, result: dict) -> Path:
    p = Path(outdir) / RESULT_FILE
    write_json_atomic(p, result)
    return p


# ---------------------------------------------------------------- loggers

class Logger:
    """Base logger: does nothing. Subclasses send attempts and the summary somewhere."""

    def log_attempt(self, rec: dict) -> None:
        pass

    def log_summary(self, result: dict) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


LOGGERS: Registry[Callable[..., Logger]] = Registry("logger")


@LOGGERS.register("none")
def _none_logger(run_cfg: dict, outdir: Path, **_: Any) -> Logger:
    return Logger()



# ---------------------------------------------------------------- W&B

# config groups whose option name becomes a run tag ("labeling:random_labels")
TAG_GROUPS = ("dataset", "labeling", "arch", "scaling", "optimizer", "regularizer", "reparam", "search")
# config keys that are not part of the experiment (left out of the W&B run config)
_NOT_RUN_CONFIG = ("hydra", "logger")


def wandb_mode(requested: Optional[str] = None) -> str:
    """online if the user configured W&B (API key in env or netrc), offline otherwise.

    An explicit mode (online | offline | disabled) wins; then $WANDB_MODE; then the
    presence of credentials."""
    if requested and requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        import netrc

        rc = netrc.netrc()
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        if rc.authenticators(host):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def sweep_group_name(sweep_dir: Optional[str]) -> Optional[str]:
    """W&B group of a sweep: the multirun directory's name. Hydra's default layout
    `multirun/<date>/<time>` gives `<date>_<time>` (a time alone is ambiguous)."""
    if not sweep_dir:
        return None
    p = Path(str(sweep_dir))
    name = p.name
    parent = p.parent.name
    if len(parent) == 10 and parent[4] == "-" and parent[7] == "-" and parent.replace("-", "").isdigit():
        name = f"{parent}_{name}"
    return name or None


def wandb_run_id(outdir: Path, job_info: Optional[dict] = None) -> str:
    """Stable run id: from the sweep directory + job number in a multirun (a requeued job
    resumes the same W&B run), else from the output directory."""
    ji = job_info or {}
    if ji.get("sweep_dir") is not None and ji.get("num") is not None:
        key = f"{Path(str(ji['sweep_dir'])).resolve()}#{ji['num']}"
    else:
        key = str(Path(outdir).resolve())
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def config_tags(run_cfg: dict, extra: Optional[list] = None) -> list[str]:
    tags = []
    for g in TAG_GROUPS:
        v = run_cfg.get(g)
        if isinstance(v, dict) and v.get("name") is not None:
            tags.append(f"{g}:{v['name']}"[:64])
    tags += [str(t)[:64] for t in (extra or [])]
    return list(dict.fromkeys(tags))


class WandbLogger(Logger):
    """One W&B run per Hydra job. Online when configured, else offline (local files, with
    the `wandb sync` command printed at the end). Never fails or blocks a measurement:
    an online start that times out falls back to offline, and `finish` gives up uploading
    after `finish_timeout` seconds (the data stays on disk for `wandb sync`)."""

    ATTEMPT_KEYS = ("n", "attempt", "fitted", "train_acc", "train_loss", "test_acc", "epochs", "steps",
                    "grad_norm", "min_eig", "max_eig", "seconds", "cost")

    def __init__(self, run_cfg: dict, outdir: Path, project: str = "flexnet", entity: Optional[str] = None,
                 mode: str = "auto", group: Optional[str] = None, tags: Optional[list] = None,
                 run_id: Optional[str] = None, name: Optional[str] = None, job_info: Optional[dict] = None,
                 init_timeout: float = 30.0, finish_timeout: float = 60.0, **_: Any):
        import wandb

        self.wandb = wandb
        self.mode = wandb_mode(mode)
        self.outdir = Path(outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        ji = job_info or {}
        self.group = group or sweep_group_name(ji.get("sweep_dir"))
        if name is None and ji.get("num") is not None:
            name = f"{self.group or 'job'}-{ji['num']}"
        cfg = flatten(_clean({k: v for k, v in run_cfg.items() if k not in _NOT_RUN_CONFIG}))
        kw = dict(project=project, entity=entity, group=self.group, tags=config_tags(run_cfg, tags),
                  config=cfg, dir=str(self.outdir), id=run_id or wandb_run_id(outdir, ji), name=name,
                  resume="allow", reinit="finish_previous", job_type="emc")

        def settings(mode: str):
            return wandb.Settings(mode=mode, init_timeout=float(init_timeout), finish_timeout=float(finish_timeout),
                                  silent=True, x_disable_stats=mode != "online")

        try:
            self.run = wandb.init(settings=settings(self.mode), **kw)
        except Exception as e:
            if self.mode != "online":
                raise
            log.warning("W&B online start failed (%s); logging offline instead",
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            self.mode = "offline"
            # the failed start leaves its run registered with W&B's service process ("run ID ... is in
            # use"): shut that service down, so the offline run starts in a fresh one, same run id
            # (`wandb sync` later uploads it as that run)
            try:
                wandb.teardown()
            except Exception:
                pass
            self.run = wandb.init(settings=settings("offline"), **kw)
        self.run.define_metric("fit/index")
        self.run.define_metric("fit/*", step_metric="fit/index")
        self.run.define_metric("params/actual")
        self.run.define_metric("emc", step_metric="params/actual", summary="last")
        self.run.define_metric("test_accuracy", step_metric="params/actual", summary="last")
        self._i = 0

    def log_attempt(self, rec: dict) -> None:
        self._i += 1
        data = {f"fit/{k}": (float(rec[k]) if isinstance(rec.get(k), bool) else rec.get(k))
                for k in self.ATTEMPT_KEYS if rec.get(k) is not None}
        data["fit/index"] = self._i
        self.run.log(_clean(data))

    def log_summary(self, result: dict) -> None:
        flat = {k: v for k, v in flatten(_clean({k: v for k, v in result.items() if k != "config"})).items()
                if v is not None and not isinstance(v, (list, dict))}
        point = {"emc": result.get("emc"), "params/actual": result["params"]["actual"],
                 "params/target": result["params"]["target"]}
        if result.get("test_accuracy") is not None:
            point["test_accuracy"] = result["test_accuracy"]
        self.run.log(_clean(point))
        self.run.summary.update(flat)

    def finish(self, exit_code: int = 0) -> None:
        run_dir = Path(self.run.dir).parent
        self.run.finish(exit_code=exit_code)
        if self.mode == "offline":
            print(f"W&B offline run saved; upload with: wandb sync {run_dir}", flush=True)


@LOGGERS.register("wandb")
def _wandb_logger(run_cfg: dict, outdir: Path, **kw: Any) -> Logger:
    try:
        return WandbLogger(run_cfg, outdir, **kw)
    except Exception as e:  # W&B must never fail or block a measurement
        log.warning("W&B logging disabled for this run: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
        return Logger()


class _SafeLogger(Logger):
    """Wraps a logger so that an error inside it (e.g. W&B) is logged, never raised."""

    def __init__(self, inner: Logger):
        self.inner = inner

    def _call(self, what: str, *a: Any) -> None:
        try:
            getattr(self.inner, what)(*a)
        except Exception as e:  # results never depend on the logger
            log.warning("logger %s: %s failed: %s", type(self.inner).__name__, what, e)

    def log_attempt(self, rec: dict) -> None:
        self._call("log_attempt", rec)

    def log_summary(self, result: dict) -> None:
        self._call("log_summary", result)

    def finish(self, exit_code: int = 0) -> None:
        self._call("finish", exit_code)


def make_logger(logger_cfg: dict, run_cfg: dict, outdir: Path, job_info: Optional[dict] = None) -> Logger:
    cfg = dict(logger_cfg)
    name = cfg.pop("name")
    inner = LOGGERS.get(name)(run_cfg, outdir, job_info=job_info, **cfg)
    return inner if type(inner) is Logger else _SafeLogger(inner)
