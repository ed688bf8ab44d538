"""Loggers (`logger` group): where a job's attempts, epochs and summary are sent besides its files.

`Logger` (the base, which does nothing: `logger=none`), `WandbLogger` (`logger=wandb`: online when
W&B is configured, offline otherwise; never blocks or fails a run for lack of network), `CsvLogger`
(`logger=csv`: plain files in `<job dir>/log/`, no dependency), `EpochThrottle` (which per-epoch rows
a logger sends: every `every_steps` steps, each lr change, each attempt's first and last epoch), `make_logger`
(which wraps any logger so that its errors are logged, never raised), the W&B naming helpers (run
name, group, tags, run id), and the reader of an offline W&B run (`read_offline_run`), with its CLI:
`python -m flexnet.loggers <job dir>/wandb/offline-run-*` prints the run's history as JSON lines.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from .records import json_safe
from .registry import Registry

log = logging.getLogger("flexnet")


class Logger:
    """Base logger: does nothing. Subclasses send attempts and the summary somewhere."""

    def log_attempt(self, rec: dict) -> None:
        pass

    def log_epoch(self, rec: dict) -> None:
        """One epoch of an attempt: n, attempt, epoch, step, train_loss, online_acc, lr (and trial)."""

    def log_summary(self, result: dict) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


LOGGERS: Registry[Callable[..., Logger]] = Registry("logger")


@LOGGERS.register("none")
def _none_logger(run_cfg: dict, outdir: Path, **_: Any) -> Logger:
    return Logger()


# the per-epoch row a logger records (the keys of train_to_minimum's epoch metrics, tagged)
EPOCH_KEYS = ("trial", "n", "attempt", "epoch", "step", "train_loss", "online_acc", "lr")
# the per-attempt row (a journal record's summary)
ATTEMPT_KEYS = ("trial", "n", "attempt", "status", "fitted", "train_acc", "train_loss", "test_acc", "epochs", "steps",
                "cap_steps", "stop_reason", "grad_norm", "min_eig", "max_eig", "seconds", "cost")


class EpochThrottle:
    """Which per-epoch rows a logger sends (a 90 s job has tens of thousands of epochs): an attempt's
    first epoch, then one every `every_steps` optimizer steps, every epoch whose lr differs from the
    previous one (a plateau that was not a verified minimum), and the attempt's last epoch (`end`)."""

    def __init__(self, every_steps: int):
        self.every = max(1, int(every_steps))
        self.key: Any = None
        self.sent_step, self.lr, self.held = 0, None, None

    def offer(self, rec: dict) -> list:
        """The rows to send now for this epoch record (0, 1 or 2: a held last epoch of the attempt before)."""
        key = (rec.get("trial"), rec.get("n"), rec.get("attempt"))
        out = []
        if key != self.key:
            out += self.end()
            self.key, self.lr = key, rec.get("lr")
            self.sent_step = int(rec.get("step") or 0)
            return out + [rec]
        step = int(rec.get("step") or 0)
        if step - self.sent_step >= self.every or rec.get("lr") != self.lr:
            self.sent_step, self.lr, self.held = step, rec.get("lr"), None
            return [rec]
        self.held = rec
        return []

    def end(self) -> list:
        """The attempt's last epoch if it was held back."""
        held, self.held = self.held, None
        return [held] if held is not None else []


def _write_csv_row(path: Path, keys: tuple, rec: dict) -> None:
    import csv

    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(keys)
        w.writerow(["" if rec.get(k) is None else rec.get(k) for k in keys])


def read_csv_log(job_dir: Path) -> dict:
    """A job's `logger=csv` files as plain data: {"attempts": [...], "epochs": [...], "summary": {...},
    "config": {...}} (numbers as numbers, empty cells as None); empty lists / dicts for missing files."""
    import csv

    import yaml

    d = Path(job_dir) / CSV_DIR

    def num(v: str) -> Any:
        if v == "":
            return None
        if v in ("True", "False"):
            return v == "True"
        try:
            f = float(v)
        except ValueError:
            return v
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f

    def rows(name: str) -> list:
        p = d / name
        if not p.exists():
            return []
        with p.open(newline="") as f:
            return [{k: num(v) for k, v in r.items()} for r in csv.DictReader(f)]

    summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").exists() else {}
    config = yaml.safe_load((d / "config.yaml").read_text()) if (d / "config.yaml").exists() else {}
    return {"attempts": rows("attempts.csv"), "epochs": rows("epochs.csv"), "summary": summary, "config": config}


CSV_DIR = "log"


class CsvLogger(Logger):
    """`logger=csv`: the same rows as W&B gets, as plain files in `<job dir>/log/` (no dependency):
    `config.yaml` (the run's config), `attempts.csv` (one row per attempt trained), `epochs.csv`
    (per-epoch rows, throttled as EpochThrottle says), `summary.json` (emc.json without its config).
    A resumed job appends. `flexnet.report` draws `training.png` from them (docs/report.md)."""

    def __init__(self, run_cfg: dict, outdir: Path, every_steps: int = 500, **_: Any):
        import yaml

        self.dir = Path(outdir) / CSV_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.throttle = EpochThrottle(every_steps)
        cfg = json_safe({k: v for k, v in run_cfg.items() if k not in _NOT_RUN_CONFIG})
        (self.dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    def log_epoch(self, rec: dict) -> None:
        for row in self.throttle.offer(rec):
            _write_csv_row(self.dir / "epochs.csv", EPOCH_KEYS, row)

    def log_attempt(self, rec: dict) -> None:
        for row in self.throttle.end():
            _write_csv_row(self.dir / "epochs.csv", EPOCH_KEYS, row)
        _write_csv_row(self.dir / "attempts.csv", ATTEMPT_KEYS, rec)

    def log_summary(self, result: dict) -> None:
        data = json_safe({k: v for k, v in result.items() if k != "config"})
        tmp = self.dir / ".summary.json.tmp"
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.dir / "summary.json")


@LOGGERS.register("csv")
def _csv_logger(run_cfg: dict, outdir: Path, **kw: Any) -> Logger:
    kw.pop("job_info", None)
    return CsvLogger(run_cfg, outdir, **kw)



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


def run_name(run_cfg: dict, num: Optional[int] = None) -> str:
    """A W&B run name a reader can place: arch, parameter target, labeling, optimizer (and the job
    number in a sweep), e.g. "3-mlp-2000p-random_labels-sgd"."""
    def opt(group: str) -> Optional[str]:
        v = run_cfg.get(group)
        return str(v["name"]) if isinstance(v, dict) and v.get("name") is not None else None

    params = (run_cfg.get("scaling") or {}).get("params")
    parts = [None if num is None else str(num), opt("arch"),
             f"{params:g}p" if isinstance(params, (int, float)) and opt("scaling") != "none" else None,
             opt("labeling"), opt("optimizer")]
    return "-".join(p for p in parts if p) or "flexnet"


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
                 init_timeout: float = 30.0, finish_timeout: float = 60.0, every_steps: int = 500, **_: Any):
        import wandb

        self.wandb = wandb
        self.throttle = EpochThrottle(every_steps)
        self.curve: list = []  # every epoch of the job, logged once at the end (epochs.csv, an artifact)
        self.run_cfg = json_safe({k: v for k, v in run_cfg.items() if k not in _NOT_RUN_CONFIG})
        self.mode = wandb_mode(mode)
        self.outdir = Path(outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        ji = job_info or {}
        self.group = group or sweep_group_name(ji.get("sweep_dir"))
        if name is None:  # e.g. "3-mlp-2000p-random_labels-sgd" in a sweep (job 3), without the number alone
            name = run_name(run_cfg, ji.get("num"))
        cfg = flatten(json_safe({k: v for k, v in run_cfg.items() if k not in _NOT_RUN_CONFIG}))
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
        # per-epoch training curves of the attempts, against the job's cumulative optimizer step
        self.run.define_metric("train/global_step")
        self.run.define_metric("train/*", step_metric="train/global_step")
        self._i = 0
        self._attempt, self._base, self._last_step = None, 0, 0

    def log_attempt(self, rec: dict) -> None:
        for row in self.throttle.end():
            self._log_epoch_row(row)
        self._i += 1
        data = {f"fit/{k}": (float(rec[k]) if isinstance(rec.get(k), bool) else rec.get(k))
                for k in self.ATTEMPT_KEYS if rec.get(k) is not None}
        data["fit/index"] = self._i
        self.run.log(json_safe(data))

    EPOCH_KEYS = ("n", "attempt", "trial", "epoch", "step", "train_loss", "online_acc", "lr")

    def log_epoch(self, rec: dict) -> None:
        """Every epoch goes into the job's curve (logged once, at the end); the history gets the rows
        EpochThrottle lets through (logger.every_steps)."""
        key = (rec.get("trial"), rec.get("n"), rec.get("attempt"))
        if key != self._attempt:  # a new attempt continues the job's step axis
            self._attempt, self._base = key, self._base + self._last_step
        self._last_step = int(rec.get("step") or 0)
        rec = {**rec, "global_step": self._base + self._last_step}
        self.curve.append(tuple(rec.get(k) for k in (*EPOCH_KEYS, "global_step")))
        for row in self.throttle.offer(rec):
            self._log_epoch_row(row)

    def _log_epoch_row(self, rec: dict) -> None:
        data = {f"train/{'loss' if k == 'train_loss' else k}": rec[k] for k in self.EPOCH_KEYS if rec.get(k) is not None}
        data["train/global_step"] = rec["global_step"]
        self.run.log(json_safe(data))

    def log_summary(self, result: dict) -> None:
        flat = {k: v for k, v in flatten(json_safe({k: v for k, v in result.items() if k != "config"})).items()
                if v is not None and not isinstance(v, (list, dict))}
        point = {"emc": result.get("emc"), "params/actual": result["params"]["actual"],
                 "params/target": result["params"]["target"]}
        if result.get("test_accuracy") is not None:
            point["test_accuracy"] = result["test_accuracy"]
        self.run.log(json_safe(point))
        self.run.summary.update(flat)
        self.summary = json_safe({k: v for k, v in result.items() if k != "config"})

    def _write_files(self) -> None:
        """Readable copies in the run's files/ (uploaded with it): flexnet_config.yaml, flexnet_summary.json,
        epochs.csv (every epoch of the job), the last also as a `curve` artifact."""
        import csv

        import yaml

        files = Path(self.run.dir)
        (files / "flexnet_config.yaml").write_text(yaml.safe_dump(self.run_cfg, sort_keys=False))
        if getattr(self, "summary", None) is not None:
            (files / "flexnet_summary.json").write_text(json.dumps(self.summary, indent=1) + "\n")
        if self.curve:
            path = files / "epochs.csv"
            with path.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow((*EPOCH_KEYS, "global_step"))
                w.writerows(["" if v is None else v for v in row] for row in self.curve)
            art = self.wandb.Artifact(f"curve-{self.run.id}", type="curve",
                                      description="every epoch of the job's attempts (n, attempt, step, loss, acc, lr)")
            art.add_file(str(path))
            self.run.log_artifact(art)

    def finish(self, exit_code: int = 0) -> None:
        run_dir = Path(self.run.dir).parent
        try:
            self._write_files()
        except Exception as e:  # the run's history and summary are logged already
            log.warning("W&B: the run's readable files were not written: %s", e)
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

    def log_epoch(self, rec: dict) -> None:
        self._call("log_epoch", rec)

    def log_summary(self, result: dict) -> None:
        self._call("log_summary", result)

    def finish(self, exit_code: int = 0) -> None:
        self._call("finish", exit_code)


def make_logger(logger_cfg: dict, run_cfg: dict, outdir: Path, job_info: Optional[dict] = None) -> Logger:
    cfg = dict(logger_cfg)
    name = cfg.pop("name")
    inner = LOGGERS.get(name)(run_cfg, outdir, job_info=job_info, **cfg)
    return inner if type(inner) is Logger else _SafeLogger(inner)


# ---------------------------------------------------------------- reading an offline W&B run

_WANDB_BLOCK = 32768
_WANDB_HEADER = 7  # ":W&B" + uint16 magic + version byte


def wandb_records(path: Path) -> list:
    """The records of a run's `.wandb` transaction log, as W&B's protobuf `Record`s. The file is a
    LevelDB-format log: 32 KiB blocks of [crc32 u32][length u16][type u8][data] chunks (types 1
    full, 2 first, 3 middle, 4 last)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    raw = Path(path).read_bytes()
    if raw[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    out, buf, pos = [], b"", _WANDB_HEADER
    while pos + 7 <= len(raw):
        left = _WANDB_BLOCK - pos % _WANDB_BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        data = raw[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        buf = data if kind in (1, 2) else buf + data
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def read_offline_run(path: Path) -> dict:
    """An offline run (its `offline-run-*` directory or its `.wandb` file) as plain data: name, group,
    history rows (one dict per `run.log`: the per-epoch `train/*` curves, the per-attempt `fit/*`
    rows, the `emc` point) and the summary."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise ValueError(f"{path}: no run-*.wandb file (give an offline-run-* directory)")
        path = files[0]

    def key(it) -> str:
        return "/".join(it.nested_key) if it.nested_key else it.key

    out: dict = {"file": str(path), "name": None, "group": None, "history": [], "summary": {}}
    for r in wandb_records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["group"] = r.run.display_name, r.run.run_group
        elif kind == "history":
            out["history"].append({key(it): json.loads(it.value_json) for it in r.history.item})
        elif kind == "summary":
            out["summary"].update({key(it): json.loads(it.value_json) for it in r.summary.update})
    return out


def main(argv: Optional[list] = None) -> int:
    """`python -m flexnet.loggers <job dir>/wandb/offline-run-*`: an offline run's history as JSON
    lines (one per logged row), then its summary line; nothing is uploaded."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m flexnet.loggers <job dir>/wandb/offline-run-<...> (or its run-*.wandb file)",
              file=sys.stderr)
        return 2
    try:
        run = read_offline_run(Path(args[0]))
    except (OSError, ValueError) as e:
        print(f"flexnet.loggers: error: {e}", file=sys.stderr)
        return 2
    for row in run["history"]:
        print(json.dumps(row))
    print(json.dumps({"name": run["name"], "group": run["group"], "summary": run["summary"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
