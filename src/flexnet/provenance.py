"""What code a result came from: recorded in every emc.json (`provenance`) and every fits.jsonl line
(`code_hash`).

`code_hash` is a hash of the sources that decide a single attempt (the fit loop, optimizers, models,
data and labelings, the oracle and the seeding helpers): a resume on a journal whose lines were written
by other such code is refused (pipeline.py) unless `+accept_code_change=true`, because its attempts
would not be what this code trains. A change elsewhere (the search, the report, the docs) leaves it
as it is: journalled attempts stay valid. The git commit and a dirty flag, the torch version, threads,
device and lr policy are recorded beside it.
"""
from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Optional

PACKAGE = Path(__file__).resolve().parent
# the sources an attempt's outcome depends on (relative to the package)
ATTEMPT_SOURCES = ("fit", "optim", "models", "data", "oracle.py", "utils.py")


@functools.lru_cache(maxsize=None)
def code_hash() -> str:
    h = hashlib.sha256()
    for entry in ATTEMPT_SOURCES:
        p = PACKAGE / entry
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(PACKAGE)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def git_state() -> tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the checkout flexnet runs from; (None, None) outside a git checkout (an
    installed wheel). Dirty: uncommitted changes to tracked files under src/ or conf/."""
    top = _git("rev-parse", "--show-toplevel")
    if not top or not (Path(top) / "src" / "flexnet").is_dir():
        return None, None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", str(Path(top) / "src"), str(Path(top) / "conf"))
    return commit, (None if status is None else bool(status))


def version() -> str:
    try:
        from importlib.metadata import version as v

        return v("flexnet")
    except Exception:  # noqa: BLE001  not installed (a source tree on the path)
        return "unknown"


def provenance(threads: int, device: str, policy: str) -> dict:
    import torch

    commit, dirty = git_state()
    return {"flexnet": version(), "git_commit": commit, "git_dirty": dirty, "code_hash": code_hash(),
            "torch": torch.__version__, "python": platform.python_version(), "threads": int(threads),
            "device": str(device), "lr_policy": policy}
