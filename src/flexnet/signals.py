"""How flexnet's processes end on signals (docs/reliability.md, "Signals and orphans").

* SIGTERM (Slurm's time limit or scancel, `kill`): `Terminated`, a KeyboardInterrupt, so a job stops the
  way Ctrl-C stops it (finished attempts journalled, one line with the resume command), exit 143.
* SIGINT in a job of the local launcher (`restore_sigint`).
* A job of the local launcher dies with the sweep's process, however that ended (`die_with_parent`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm's time limit or scancel, `kill`, a launcher whose parent died): stops the job the
    way Ctrl-C does (finished attempts journalled, one line with the resume command), exit 143."""


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Terminated()


def handle_sigterm(force: bool = False) -> None:
    """SIGTERM as Terminated in this (main) thread: where nothing else handles it (a single run, the
    basic launcher, the CLI's own process), or with force (a job of the local launcher, whose submitit
    wrapper would otherwise ignore it). A Slurm job keeps submitit's handlers (requeue on timeout)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if force or signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, _on_sigterm):
        signal.signal(signal.SIGTERM, _on_sigterm)


def restore_sigint() -> None:
    """A job of the local launcher inherits SIGINT ignored from submitit's controller (which must not
    print its own traceback on Ctrl-C); the launcher sets FLEXNET_SIGINT=1 when Ctrl-C should reach
    the jobs, and the job then stops on it like a single run (journal, one line, exit 130)."""
    import signal
    import threading

    if (os.environ.get("FLEXNET_SIGINT") == "1" and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        signal.signal(signal.SIGINT, signal.default_int_handler)


PARENT_ENV = "FLEXNET_PARENT"  # "<pid>:<start time>" of the local launcher's process, set for its jobs


def process_start(pid: int) -> Optional[str]:
    """The start time of a live process (/proc/<pid>/stat field 22); None when it is gone, or dead and
    not yet reaped (a zombie: its parent has not waited for it), or not on Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def die_with_parent(poll_s: float = 0.5) -> None:
    """A job of the local launcher ends when the sweep's process does, however that one ended (kill -9
    included): a watchdog thread sends this process SIGTERM (journal intact, exit 143) once the
    launcher's process is gone, so no orphan goes on writing into the sweep's directories."""
    import signal
    import threading

    spec = os.environ.get(PARENT_ENV, "")
    pid, _, start = spec.partition(":")
    if not pid.isdigit() or int(pid) == os.getpid():
        return
    handle_sigterm(force=True)

    def watch() -> None:
        while process_start(int(pid)) == start:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="flexnet-parent-watch", daemon=True).start()
