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


class Journal:
    """Append-only `fits.jsonl`; replays lines whose `config_hash` matches."""

    def __init__(self, path: Path, chash: str):
        self.path, self.chash = Path(path), chash
        self.replayed: dict[tuple[int, int], dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        good: list[str] = []
        with open(self.path, "rb") as f:
            raw = f.read()
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut by a kill mid-write: dropped
                continue
            good.append(line.decode())
            if rec.get("config_hash") == self.chash and "n" in rec and "attempt" in rec:
                self.replayed[(int(rec["n"]), int(rec["attempt"]))] = rec
        if raw and not raw.endswith(b"\n") or len(good) != len([l for l in raw.split(b"\n") if l.strip()]):
            # rewrite without the broken tail so later appends start on a clean line
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(l + "\n" for l in good))
            os.replace(tmp, self.path)

    def get(self, n: int, attempt: int) -> Optional[dict]:
        return self.replayed.get((int(n), int(attempt)))

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


def wandb_mode(requested: Optional[str] = None) -> str:
    """online if the user configured W&B (API key in env or netrc), offline otherwise."""
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


class WandbLogger(Logger):
    def __init__(self, run_cfg: dict, outdir: Path, project: str = "flexnet", entity: Optional[str] = None,
                 mode: str = "auto", group: Optional[str] = None, tags: Optional[list] = None,
                 run_id: Optional[str] = None, name: Optional[str] = None, **_: Any):
        import wandb

        self.wandb = wandb
        self.mode = wandb_mode(mode)
        self.outdir = Path(outdir)
        self.run = wandb.init(
            project=project, entity=entity, mode=self.mode, group=group, tags=list(tags or []),
            config=flatten(_clean(run_cfg)), dir=str(self.outdir), id=run_id, name=name,
            resume="allow" if run_id else None, reinit="finish_previous",
            settings=wandb.Settings(init_timeout=30, silent=True),
        )
        self.run.define_metric("fit/*", step_metric="fit/index")
        self.run.define_metric("emc", step_metric="params/actual", summary="last")
        self._i = 0

    def log_attempt(self, rec: dict) -> None:
        self._i += 1
        keys = ("n", "attempt", "fitted", "train_acc", "train_loss", "epochs", "grad_norm", "min_eig",
                "max_eig", "seconds")
        data = {f"fit/{k}": (float(rec[k]) if isinstance(rec.get(k), bool) else rec.get(k))
                for k in keys if rec.get(k) is not None}
        data["fit/index"] = self._i
        self.run.log(data)

    def log_summary(self, result: dict) -> None:
        flat = {k: v for k, v in flatten(_clean({k: v for k, v in result.items() if k != "config"})).items()
                if v is not None and not isinstance(v, (list, dict))}
        self.run.log({"emc": result.get("emc"), "params/actual": result["params"]["actual"]})
        self.run.summary.update(flat)

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)
        if self.mode == "offline":
            log.info("W&B offline run saved; upload with: wandb sync %s", Path(self.run.dir).parent)


@LOGGERS.register("wandb")
def _wandb_logger(run_cfg: dict, outdir: Path, **kw: Any) -> Logger:
    try:
        return WandbLogger(run_cfg, outdir, **kw)
    except Exception as e:  # W&B must never fail or block a measurement
        log.warning("W&B logging disabled for this run: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
        return Logger()


def make_logger(logger_cfg: dict, run_cfg: dict, outdir: Path) -> Logger:
    cfg = dict(logger_cfg)
    name = cfg.pop("name")
    return LOGGERS.get(name)(run_cfg, outdir, **cfg)
