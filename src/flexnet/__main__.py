"""`python -m flexnet [overrides] [-m]`: one EMC measurement per Hydra job.

Before a job touches its output directory: the config is validated (schema/), the directory is
locked and claimed (outdir.py: one writer; results of another config refused unless fresh=true);
only then are `.hydra/` written and a stale `error.txt` removed. Bad input, a directory in use and
Ctrl-C end with one line on stderr, never a traceback.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import CONF_DIR, normalize_overrides
from .errors import ConfigError



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


def _interrupted(outdir: Path, multirun: bool, overrides: list) -> str:
    from .records import FITS_FILE, journalled

    done = journalled(outdir)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    where = str(outdir.parent) if multirun else str(outdir)
    cmd = " ".join(["python -m flexnet", *(["-m"] if multirun else []),
                    *[o for o in overrides if not o.startswith(key + "=")], f"{key}={where}"])
    return (f"flexnet: interrupted: {done} finished attempt(s) journalled in {outdir / FITS_FILE}; "
            f"resume with: {cmd}")


def restore_sigint() -> None:
    """A job of the local launcher inherits SIGINT ignored from submitit's controller (which must not
    print its own traceback on Ctrl-C); the launcher sets FLEXNET_SIGINT=1 when Ctrl-C should reach
    the jobs, and the job then stops on it like a single run (journal, one line, exit 130)."""
    import signal
    import threading

    if (os.environ.get("FLEXNET_SIGINT") == "1" and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        signal.signal(signal.SIGINT, signal.default_int_handler)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from . import outdir as od

    restore_sigint()
    hc = HydraConfig.get()
    outdir = Path(hc.runtime.output_dir)
    multirun = hc.mode is not None and hc.mode.name == "MULTIRUN"
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    had_results = od.has_results(outdir)
    lock = None
    claimed = False
    try:
        from .pipeline import run_job
        from .records import result_hash
        from .schema import DIRECTIVES, validate_config

        plain = _resolve(cfg)
        validate_config(plain)
        fresh = bool(plain.get("fresh", False))
        for d in DIRECTIVES:
            plain.pop(d, None)
        lock = od.DirLock(outdir, key).acquire()
        od.claim(outdir, result_hash(plain), result_hash, fresh, key)
        claimed = True
        od.job_accepted()
        lock.write_owner()
        od.write_hydra_dir(outdir, cfg, hc_config(), hc.overrides.task)
        (outdir / od.ERROR_FILE).unlink(missing_ok=True)  # stale: from an earlier run of this directory
        result = run_job(plain, outdir, _job_info())
    except ConfigError as e:
        print(f"flexnet: error: {e}", file=sys.stderr, flush=True)
        if multirun:
            od.restore_sweep_file()
        if claimed or not had_results:  # a refused run leaves a directory with results as it was
            try:
                (outdir / od.ERROR_FILE).write_text(f"{e}\n")
            except OSError:
                pass
        raise SystemExit(2)
    except KeyboardInterrupt:
        print(_interrupted(outdir, multirun, list(hc.overrides.task)), file=sys.stderr, flush=True)
        raise SystemExit(130)
    finally:
        if lock is not None:
            lock.release()
    if result.get("mostly_broken") and not multirun:
        # emc.json is written; the exit status says the measurement is not one (a sweep goes on)
        print(f"flexnet: error: {result['diverged'] + result['degenerate']} of {result['fits']} attempts diverged "
              f"or ended degenerate: lower optimizer.lr (now {cfg.optimizer.lr})", file=sys.stderr, flush=True)
        raise SystemExit(3)
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
    return " ".join(lines)[:500]


def cli() -> None:
    """`python -m flexnet`: Hydra's own errors (composition, override syntax) as one line too."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user_full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its multi-line report
    sys.argv[1:] = normalize_overrides(sys.argv[1:])
    try:
        main()
    except (HydraException, OmegaConfBaseException) as e:
        if user_full == "1":
            raise
        print(f"flexnet: error: {_hydra_error_line(e)}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    except KeyboardInterrupt:  # before a job started (composition, launch)
        print("flexnet: interrupted before any job started; nothing was written", file=sys.stderr, flush=True)
        raise SystemExit(130)


if __name__ == "__main__":
    cli()
