"""`python -m flexnet [overrides] [-m]`: one EMC measurement per Hydra job.

Before a job touches its output directory: the config is validated (schema/), the directory is
locked and claimed (outdir.py: one writer; results of another config refused unless fresh=true);
only then are `.hydra/` written and a stale `error.txt` removed. Bad input, a directory in use and
Ctrl-C end with one line on stderr, never a traceback.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import CONF_DIR, normalize_overrides
from .errors import FAULT, ConfigError, die
from .signals import Terminated, die_with_parent, handle_sigterm, restore_sigint



def _job_info() -> dict:
    from hydra.core.hydra_config import HydraConfig

    try:
        hc = HydraConfig.get()
    except ValueError:
        return {}
    info = {"num": hc.job.get("num"), "id": hc.job.get("id"), "override_dirname": hc.job.override_dirname}
    if hc.mode is not None and hc.mode.name == "MULTIRUN":
        info["sweep_dir"] = hc.sweep.dir
    # the W&B run id (sweep dir + job number, or the run dir), recorded in emc.json: the same for a
    # restarted or requeued job, so it resumes its W&B run
    from .loggers import wandb_run_id

    info["run_id"] = wandb_run_id(Path(hc.runtime.output_dir), info)
    return info


def _resolve(cfg: DictConfig) -> dict:
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        raise ConfigError(f"{key}: cannot be resolved ({str(e).splitlines()[0]})") from None


def _interrupted(outdir: Path, multirun: bool, overrides: list, how: str = "interrupted") -> str:
    from .records import FITS_FILE, journalled

    done = journalled(outdir)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    where = str(outdir.parent) if multirun else str(outdir)
    cmd = " ".join(["python -m flexnet", *(["-m"] if multirun else []),
                    *[o for o in overrides if not o.startswith(key + "=")], f"{key}={where}"])
    return (f"flexnet: {how}: {done} finished attempt(s) journalled in {outdir / FITS_FILE}; "
            f"resume with: {cmd}")


def _quiet() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _fault(e: OSError) -> str:
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    return f"{where}{e.strerror or e} (a file of the run could not be written or read; finished attempts stay journalled)"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from . import outdir as od

    restore_sigint()
    handle_sigterm()
    die_with_parent()
    hc = HydraConfig.get()
    outdir = Path(hc.runtime.output_dir)
    multirun = hc.mode is not None and hc.mode.name == "MULTIRUN"
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    lock = None
    claimed = False
    try:
        from .pipeline import run_job
        from .records import result_hash
        from .schema import DIRECTIVES, validate_config

        plain = _resolve(cfg)
        validate_config(plain)
        fresh = bool(plain.get("fresh", False))
        accept = bool(plain.get("accept_code_change", False))  # replay a journal written by other code
        show_config = bool(plain.get("print_config", True))
        for d in DIRECTIVES:
            plain.pop(d, None)
        lock = od.DirLock(outdir, key).acquire()
        od.claim(outdir, plain, result_hash, fresh, key)
        claimed = True
        od.job_accepted()
        lock.write_owner()
        od.write_hydra_dir(outdir, cfg, hc_config(), hc.overrides.task)
        (outdir / od.ERROR_FILE).unlink(missing_ok=True)  # stale: from an earlier run of this directory
        if show_config:
            from .console import config_tree

            logging.getLogger("flexnet").info(config_tree(plain))
        result = run_job(plain, outdir, _job_info(), accept_code_change=accept)
        (outdir / od.ERROR_FILE).unlink(missing_ok=True)  # a finished job never carries an error.txt
    except (ConfigError, OSError) as e:
        msg, code = (str(e), 2) if isinstance(e, ConfigError) else (_fault(e), FAULT)
        if multirun:
            od.restore_sweep_file()
        # error.txt only into a directory this job holds (never one in use by another job) and without a
        # finished result; a refused run leaves a directory with results as it was
        if lock is not None and lock.fd is not None and (claimed or not od.has_results(outdir)) \
                and not (outdir / "emc.json").exists():
            try:
                (outdir / od.ERROR_FILE).write_text(f"{msg}\n")
            except OSError:
                pass
        die(msg, code)
    except KeyboardInterrupt as e:
        term = isinstance(e, Terminated)
        _quiet()  # a second signal (Ctrl-C reaches the jobs and their launcher signals them too) ends nothing twice
        print(_interrupted(outdir, multirun, list(hc.overrides.task), "terminated (SIGTERM)" if term else "interrupted"),
              file=sys.stderr, flush=True)
        raise SystemExit(143 if term else 130)
    finally:
        if lock is not None:
            lock.release()
    if result.get("mostly_broken") and not multirun:
        # emc.json is written; the exit status says the measurement is not one (a sweep goes on)
        die(f"{result['diverged'] + result['degenerate']} of {result['fits']} attempts diverged "
            f"or ended degenerate: lower optimizer.lr (now {cfg.optimizer.lr})", 3)
    return float(result["emc"])


def hc_config():
    """Hydra's own config as Hydra saves it (.hydra/hydra.yaml)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.instance().cfg


def _where(group: str) -> str:
    """`(conf/<group>/<name>.yaml; code: <module>)` for a group with a registry, else ''."""
    from .registry import registries

    try:
        reg = registries().get(group)
    except Exception:  # an error line never fails on its hint
        return ""
    return reg.hint() if reg is not None else ""


def _hydra_error_line(e: BaseException) -> str:
    """Hydra's composition errors (unknown option, override of a key that does not exist, bad
    override syntax) as one line."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    first = lines[0] if lines else type(e).__name__
    if first.startswith("In '") and "Could not find" in first and "Available options" in " ".join(lines):
        what = first.split("Could not find", 1)[1].strip().strip("'")
        group, _, name = what.rpartition("/")
        rest = lines[lines.index(next(l for l in lines if l.startswith("Available options"))) + 1:]
        opts = []
        for l in rest:
            if l.endswith(":") or "=" in l:  # "Config search path:" and its provider lines
                break
            opts.append(l)
        return f"{group}={name!r}: unknown option; allowed: {', '.join(opts)} {_where(group)}".rstrip()
    if first.startswith("Could not override '"):
        key = first.split("'")[1]
        hint = next((l for l in lines if l.startswith("To append")), "")
        val = hint.split("=", 1)[1] if "=" in hint else "?"
        return f"{key}={val}: no such key in this config (a new key needs +{key}=...; see python -m flexnet --cfg job)"
    if first.startswith("Error merging override ") and e.__cause__ is not None:  # e.g. a launcher key's type
        why = str(e.__cause__).strip().splitlines()[0] if str(e.__cause__).strip() else type(e.__cause__).__name__
        return f"{first.split('Error merging override ', 1)[1]}: {why}"
    return " ".join(lines)[:500]


# Hydra's mode flags: at most one per command line (Hydra itself raises a ValueError with a traceback)
_MODES = {"--run": "--run", "-r": "--run", "--multirun": "-m", "-m": "-m", "--cfg": "--cfg", "-c": "--cfg",
          "--info": "--info", "-i": "--info", "--shell-completion": "--shell-completion", "-sc": "--shell-completion"}


# flags without a value: moved before the overrides (argparse refuses `a=1 -m b=2` with a usage screen)
_BARE_FLAGS = ("-m", "--multirun", "-r", "--run", "--resolve", "-h", "--help", "--hydra-help", "--version")


def _flags_first(argv: list) -> list:
    flags = [a for a in argv if a in _BARE_FLAGS]
    return flags + [a for a in argv if a not in _BARE_FLAGS]


def _check_modes(argv: list) -> None:
    modes = []
    for a in argv:
        m = _MODES.get(a.split("=", 1)[0])
        if m and m not in modes:
            modes.append(m)
    if len(modes) > 1:
        die(f"{' and '.join(modes)}: only one of --run, -m (--multirun), --cfg, --info, --shell-completion at a "
            f"time (to see a sweep job's config: python -m flexnet --cfg job <that job's overrides>)")


def cli() -> None:
    """`python -m flexnet`: every refusal, Hydra's own errors (composition, override syntax), a sweep's
    failed jobs and signals end with one line on stderr (errors.die), never a traceback."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .errors import JobsFailed

    user_full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its multi-line report
    sys.argv[1:] = _flags_first(normalize_overrides(sys.argv[1:]))
    _check_modes(sys.argv[1:])
    handle_sigterm()
    try:
        main()
    except ConfigError as e:  # from a launcher, before any job started
        die(str(e))
    except JobsFailed as e:  # the sweep ran; some jobs ended without a result
        die(str(e), FAULT)
    except (HydraException, OmegaConfBaseException) as e:
        if user_full == "1":
            raise
        die(_hydra_error_line(e))
    except KeyboardInterrupt as e:  # before a job started (composition, launch)
        _quiet()
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"flexnet: {how} before any job started; nothing was written", file=sys.stderr, flush=True)
        raise SystemExit(143 if isinstance(e, Terminated) else 130)


if __name__ == "__main__":
    cli()
