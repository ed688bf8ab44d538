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


def claim(path: Path, chash: str, result_hash, fresh: bool, key: str) -> str:
    """Decide what this job does with `path` (already locked): 'new', 'resume' or 'fresh'.

    Raises ConfigError (and changes nothing) when the directory holds results of another config."""
    path = Path(path)
    if not has_results(path):
        return "new"
    hashes = recorded_hashes(path, result_hash)
    if hashes <= {chash}:  # same config (or results without a readable hash: the journal decides)
        if not fresh:
            return "resume"
    elif not fresh:
        other = ", ".join(sorted(hashes - {chash}))
        raise ConfigError(f"{key}={str(path)!r}: holds results of a different configuration (config hash {other}; "
                          f"this run: {chash}); rerun with the same settings to resume it, choose another directory, "
                          f"or add +fresh=true to move the old files into {REPLACED_PREFIX}<time>/ and start afresh")
    dest = move_aside(path)
    print(f"flexnet: fresh=true: earlier files of {path} moved to {dest}", file=sys.stderr, flush=True)
    return "fresh"


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
    """Hydra callback (conf/config.yaml, hydra.callbacks): one sweep per sweep directory."""

    def __init__(self) -> None:
        self.lock: Optional[DirLock] = None

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.lock = DirLock(Path(str(config.hydra.sweep.dir)), key="hydra.sweep.dir")
        try:
            self.lock.acquire()
        except ConfigError as e:
            print(f"flexnet: error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2)
        # Hydra writes multirun.yaml after this: keep the old one, put back if no job is accepted
        _SWEEP_FILE.clear()
        f = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        if f.exists():
            st = f.stat()
            _SWEEP_FILE.update(path=f, data=f.read_bytes(), times=(st.st_atime_ns, st.st_mtime_ns))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if self.lock is not None:
            self.lock.release()
