"""One writer per output directory, and what a job may do to a directory that holds results.

* `DirLock`: an exclusive `flock` on the job's output directory itself (or, where the file system
  cannot lock a directory, e.g. some NFS mounts, on `<dir>/.flexnet.lock`). The kernel drops it
  when the holding process ends, however it ends (kill -9 included), so a lock is never left stuck.
  A second job on a directory in use is refused with one line; who holds it is read from
  `<dir>/.flexnet.owner`, written by the holder.
* `claim`: a directory that holds results (`fits.jsonl`, `emc.json`) is resumed only by the same
  configuration (the journal's config hash); a different one is refused unless `fresh=true`,
  which moves the old files into `<dir>/replaced-<time>/` first.
* `.hydra/` (config.yaml, hydra.yaml, overrides.yaml) is written here, after the config is
  validated and the directory claimed (`hydra.output_subdir: null` stops Hydra from writing it
  before the job starts), so a rejected run leaves an existing directory as it was.
* `SweepLock`: a Hydra callback that holds the lock on a multirun's sweep directory for the whole
  sweep, so a second sweep into it is refused before Hydra writes `multirun.yaml`.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError

LOCK_FILE = ".flexnet.lock"
OWNER_FILE = ".flexnet.owner"
ERROR_FILE = "error.txt"
RESULT_FILES = ("fits.jsonl", "emc.json", "curve.jsonl")
REPLACED_PREFIX = "replaced-"


def _open_lock(path: Path) -> int:
    """An fd to flock: the directory itself (creates nothing in it), else a lock file in it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise
        os.close(fd)  # e.g. EBADF/ENOLCK: this file system cannot lock a directory fd
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


class DirLock:
    """Exclusive lock on an output directory for the life of this process (or until release())."""

    def __init__(self, path: Path, key: str = "hydra.run.dir"):
        self.path, self.key = Path(path), key
        self.fd: Optional[int] = None

    def owner(self) -> str:
        try:
            o = json.loads((self.path / OWNER_FILE).read_text())
            return f"pid {o.get('pid')} on {o.get('host')}, started {o.get('started')}"
        except (OSError, ValueError, AttributeError):
            return "another process"

    def acquire(self) -> "DirLock":
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.fd = _open_lock(self.path)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(f"{self.key}={str(self.path)!r}: in use by another flexnet job ({self.owner()}); "
                                  f"wait for it to finish or choose another directory") from None
            raise ConfigError(f"{self.key}={str(self.path)!r}: cannot lock the directory ({e.strerror})") from None
        return self

    def write_owner(self) -> None:
        info = {"pid": os.getpid(), "host": platform.node(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "argv": sys.argv[1:]}
        tmp = self.path / f".{OWNER_FILE}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(info) + "\n")
        os.replace(tmp, self.path / OWNER_FILE)

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def has_results(path: Path) -> bool:
    return any((Path(path) / f).exists() for f in RESULT_FILES)


def recorded_hashes(path: Path, result_hash) -> set[str]:
    """Config hashes of the results in a directory: the journal's records, and emc.json's config."""
    path = Path(path)
    hashes: set[str] = set()
    fits = path / "fits.jsonl"
    if fits.exists():
        for line in fits.read_bytes().split(b"\n"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("config_hash"), str):
                hashes.add(rec["config_hash"])
    emc = path / "emc.json"
    if emc.exists():
        try:
            cfg = json.loads(emc.read_text()).get("config")
            if isinstance(cfg, dict):
                hashes.add(result_hash(cfg))
        except (OSError, ValueError, AttributeError, TypeError, KeyError):
            pass
    return hashes


def move_aside(path: Path) -> Path:
    """fresh=true: the directory's earlier files into replaced-<time>/ (logs copied, then emptied:
    this run's log handler already has them open)."""
    path = Path(path)
    dest = path / f"{REPLACED_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    dest.mkdir()
    keep = {LOCK_FILE, OWNER_FILE, dest.name}
    for p in sorted(path.iterdir()):
        if p.name in keep or p.name.startswith(REPLACED_PREFIX):
            continue
        if p.suffix == ".log" and p.is_file():
            shutil.copy2(p, dest / p.name)
            with open(p, "r+") as f:
                f.truncate(0)
            continue
        os.replace(p, dest / p.name)
    return dest


def finished_config(path: Path) -> Optional[dict]:
    """The config of the finished result in a directory (emc.json's `config`), None without one."""
    try:
        cfg = json.loads((Path(path) / "emc.json").read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        return None
    return cfg if isinstance(cfg, dict) else None


def _flat(d: Any, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out: dict = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def changed_keys(old: dict, new: dict) -> list[str]:
    """Config keys (dotted) whose value differs between a finished result's config and this run's, the
    result-neutral keys left out (records.RESULT_NEUTRAL_KEYS). A key the old config does not record
    (added to flexnet since) is not counted: what it was then cannot be known."""
    from .records import RESULT_NEUTRAL_KEYS

    def keep(k: str) -> bool:
        return not any(k == n or k.startswith(n + ".") for n in RESULT_NEUTRAL_KEYS)

    a, b = _flat(old), _flat(new)
    return sorted(k for k in set(a) | set(b) if keep(k) and k in a and a.get(k) != b.get(k))


# what a rerun of a finished directory may change: each extends the measurement (the old result's
# attempts are all in the new one, replayed from the journal), and the old emc.json is kept as a copy
def _extends(key: str, old: Any, new: Any) -> bool:
    if key == "train.caps":  # more (larger) caps on the ladder: the old rungs are all still there
        return (isinstance(old, list) and isinstance(new, list) and len(new) > len(old)
                and new[:len(old)] == old)
    if key == "search.trials":  # more trials: trial k's attempts do not depend on how many there are
        return isinstance(old, int) and isinstance(new, int) and new > old
    return False


def check_claim(path: Path, cfg: dict, result_hash, fresh: bool, key: str) -> str:
    """What this job would do with `path`: 'new', 'resume', 'extend' (a finished result whose measurement
    this run extends: more caps, more trials) or 'fresh'. Changes nothing.

    Raises ConfigError when the directory holds results of another configuration: its journal's config
    hash differs, or it holds a finished emc.json of a config that differs in any key but the
    result-neutral ones (records.RESULT_NEUTRAL_KEYS) and the extensions above."""
    path = Path(path)
    if not has_results(path):
        return "new"
    if fresh:
        return "fresh"
    chash = result_hash(cfg)
    hashes = recorded_hashes(path, result_hash)
    old = finished_config(path)
    if old is not None:
        diff = changed_keys(old, cfg)
        flat_old, flat_new = _flat(old), _flat(cfg)
        if diff and all(_extends(k, flat_old[k], flat_new.get(k)) for k in diff):
            return "extend"
        if diff:
            shown = "; ".join(f"{k}={flat_old[k]!r} there, {flat_new.get(k)!r} now" for k in diff[:3])
            more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
            raise ConfigError(f"{key}={str(path)!r}: holds the finished result (emc.json) of a different configuration "
                              f"({shown}{more}); rerun with the same settings, choose another directory, or add "
                              f"+fresh=true to move the old files into {REPLACED_PREFIX}<time>/ and start afresh")
        hashes.discard(result_hash(old))
    if hashes <= {chash}:  # same config (or results without a readable hash: the journal decides)
        return "resume"
    other = ", ".join(sorted(hashes - {chash}))
    raise ConfigError(f"{key}={str(path)!r}: holds results of a different configuration (config hash {other}; "
                      f"this run: {chash}); rerun with the same settings to resume it, choose another directory, "
                      f"or add +fresh=true to move the old files into {REPLACED_PREFIX}<time>/ and start afresh")


def claim(path: Path, cfg: dict, result_hash, fresh: bool, key: str) -> str:
    """Decide what this job does with `path` (already locked): check_claim, then act on it: 'fresh'
    moves the old files aside, 'extend' copies the finished emc.json to emc.<time>.json (the new run
    replaces it). Raises ConfigError (and changes nothing) when refused."""
    path = Path(path)
    what = check_claim(path, cfg, result_hash, fresh, key)
    if what == "fresh":
        dest = move_aside(path)
        print(f"flexnet: fresh=true: earlier files of {path} moved to {dest}", file=sys.stderr, flush=True)
    elif what == "extend":
        keep = path / f"emc.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
        shutil.copy2(path / "emc.json", keep)
        print(f"flexnet: extending the finished result in {path}; the old emc.json is kept as {keep.name}",
              file=sys.stderr, flush=True)
    return what


def write_hydra_dir(path: Path, task_cfg: Any, hydra_cfg: Any, overrides: Any, subdir: str = ".hydra") -> None:
    """What Hydra's run_job writes when hydra.output_subdir is set: the job's config, Hydra's config
    and the overrides, each written to a temp file and renamed."""
    from omegaconf import OmegaConf

    out = Path(path) / subdir
    out.mkdir(parents=True, exist_ok=True)
    for name, obj in (("config.yaml", task_cfg), ("hydra.yaml", hydra_cfg), ("overrides.yaml", overrides)):
        tmp = out / f".{name}.tmp{os.getpid()}"
        tmp.write_text(OmegaConf.to_yaml(obj))
        os.replace(tmp, out / name)


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[misc,assignment]


# the sweep directory's multirun.yaml as it was before this sweep (one process: the basic launcher)
_SWEEP_FILE: dict = {}


def job_accepted() -> None:
    """A job of this sweep claimed its directory: the sweep's new multirun.yaml stands."""
    _SWEEP_FILE.clear()


def restore_sweep_file() -> None:
    """A job was refused before any was accepted: the sweep changed nothing, multirun.yaml included."""
    if _SWEEP_FILE:
        f = _SWEEP_FILE["path"]
        f.write_bytes(_SWEEP_FILE["data"])
        os.utime(f, ns=_SWEEP_FILE["times"])
        _SWEEP_FILE.clear()


class SweepLock(Callback):  # type: ignore[misc,valid-type]
    """Hydra callback (conf/config.yaml, hydra.callbacks), run before Hydra creates an output directory,
    configures the log file or launches a job: one sweep per sweep directory, and the preflight
    (flexnet.preflight: every job's config, paths, directory and memory) of a run or of every job of a
    sweep. A refusal is one line, exit 2 (errors.die: Hydra turns a callback's exception into a warning)."""

    def __init__(self) -> None:
        self.lock: Optional[DirLock] = None

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from .errors import die
        from .preflight import preflight_run

        try:
            preflight_run(config)
        except ConfigError as e:
            die(str(e))

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from .errors import die
        from .preflight import check_dir, preflight_sweep

        try:
            self.lock = DirLock(check_dir(config.hydra.sweep.dir, "hydra.sweep.dir"), key="hydra.sweep.dir")
            self.lock.acquire()
            preflight_sweep(config)
        except ConfigError as e:
            if self.lock is not None:
                self.lock.release()
            die(str(e))
        # Hydra writes multirun.yaml after this: keep the old one, put back if no job is accepted
        _SWEEP_FILE.clear()
        f = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        if f.exists():
            st = f.stat()
            _SWEEP_FILE.update(path=f, data=f.read_bytes(), times=(st.st_atime_ns, st.st_mtime_ns))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if self.lock is not None:
            self.lock.release()
