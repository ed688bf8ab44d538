"""Everything a job can be refused for, checked before any job starts, any data loads or any directory
is touched (docs/reliability.md).

`python -m flexnet` calls `preflight_run` (one run) or `preflight_sweep` (-m: every job of the sweep,
composed as the sweeper will compose it) from the Hydra callback `outdir.SweepLock`, which Hydra runs
before it creates an output directory, configures the log file or launches a job. For each job:

* the config: `schema.validate_config` (types, ranges, unknown keys);
* the output directory: not empty (`hydra.run.dir=''` would write into the current directory), not
  under /proc, /sys or /dev, no symlink loop, no part of the path a file, writable (a real probe file:
  root ignores permission bits, a read-only mount does not); the files flexnet writes there
  (`fits.jsonl`, `emc.json`, the log, ...) are plain files or absent, `.hydra` a directory;
* the kind of directory: a single run is not written into a sweep directory (`multirun.yaml`), a sweep
  not into a single run's directory (its `emc.json` at the top);
* the directory's results: another configuration is refused unless `+fresh=true` (`outdir.check_claim`,
  the same rule the job applies under its lock); a directory in use by another job is refused;
* the data cache (`$FLEXNET_CACHE`) of generated datasets: a writable directory;
* memory: the model's weights, gradients and one optimizer buffer (4 bytes x 3 per parameter, a lower
  bound) must fit in the memory this process may use (MemAvailable, the cgroup's limit, RLIMIT_AS; on a
  GPU its total memory).

A refusal is one line, `flexnet: error: <key>=<value>: <what is allowed>`, exit 2 (`errors.die`).
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError

SYSTEM_ROOTS = ("/proc", "/sys", "/dev")
# files a job writes into its output directory (must be plain files when present)
JOB_FILES = ("fits.jsonl", "emc.json", "curve.jsonl", "fits.rejected.jsonl", "error.txt", ".flexnet.owner",
             ".flexnet.lock")
JOB_DIRS = (".hydra",)
# datasets generated once and cached under $FLEXNET_CACHE
CACHED_DATASETS = ("mnist1d",)
BYTES_PER_PARAM, COPIES = 4, 3  # float32 weights, gradients, one optimizer buffer (a lower bound)


def _path_problem(p: Path) -> Optional[str]:
    """Why `p` cannot be used as (or created as) a directory; None when it can."""
    for root in SYSTEM_ROOTS:
        if p == Path(root) or Path(root) in p.parents:
            return f"is under {root}, a kernel file system, not a place for results; choose a directory on disk"
    try:
        st = os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is (or passes through) a symlink loop"
        if e.errno == errno.ENOTDIR:
            for a in reversed(p.parents):
                if os.path.lexists(a) and not os.path.isdir(a):
                    return f"cannot be a directory: {a} is a file"
            return "cannot be a directory: a part of the path is a file"
        if e.errno == errno.EACCES:
            return f"cannot be reached ({e.strerror})"
        if e.errno != errno.ENOENT:
            return f"cannot be used ({e.strerror})"
        if os.path.islink(p):
            return f"is a symlink to {os.readlink(p)!r}, which does not exist"
        anc = p.parent
        while not os.path.lexists(anc) and anc != anc.parent:
            anc = anc.parent
        if not os.path.isdir(anc):
            return f"cannot be created: {anc} is not a directory"
        return None if _writable(anc) else f"cannot be created: {anc} is not writable"
    import stat

    if not stat.S_ISDIR(st.st_mode):
        return "is a file, not a directory"
    return None if _writable(p) else "is not writable (read-only)"


def _writable(d: Path) -> bool:
    """A real write probe (permission bits say nothing to root; a read-only mount refuses everyone)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".flexnet-probe-", dir=d)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return True


def check_dir(raw: Any, key: str, log_name: Optional[str] = None) -> Path:
    """The output directory `raw` (the value of `key`) as an absolute path, or ConfigError."""
    if raw is None or str(raw).strip() == "":
        raise ConfigError(f"{key}={raw!r}: must name a directory (empty would write the results into the "
                          f"current directory)")
    p = Path(os.path.abspath(os.path.expanduser(str(raw))))
    why = _path_problem(p)
    if why:
        raise ConfigError(f"{key}={str(raw)!r}: {why}")
    if p.is_dir():
        names = JOB_FILES + ((f"{log_name}.log",) if log_name else ())
        for name in names:
            q = p / name
            if os.path.lexists(q) and not (q.is_file() and not _loops(q)):
                raise ConfigError(f"{key}={str(raw)!r}: {q} is not a plain file (flexnet writes its {name} there); "
                                  f"move it away or choose another directory")
        for name in JOB_DIRS:
            q = p / name
            if os.path.lexists(q) and not q.is_dir():
                raise ConfigError(f"{key}={str(raw)!r}: {q} is not a directory; move it away or choose another "
                                  f"directory")
    return p


def _loops(q: Path) -> bool:
    try:
        os.stat(q)
        return False
    except OSError:
        return True


def check_cache(dataset: dict) -> None:
    """$FLEXNET_CACHE (where generated datasets are kept) usable, before data generation starts."""
    if dataset.get("name") not in CACHED_DATASETS:
        return
    from .data.embedded import cache_dir

    d = cache_dir()
    why = _path_problem(Path(os.path.abspath(d)))
    if why:
        raise ConfigError(f"FLEXNET_CACHE={str(d)!r}: the data cache {why}")


def available_memory(device: Any) -> tuple[int, str]:
    """(bytes this job may still allocate, where) on `device` (a torch.device)."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        idx = device.index if device.index is not None else torch.cuda.current_device()
        return int(torch.cuda.get_device_properties(idx).total_memory), f"GPU cuda:{idx}"
    limits: list[tuple[int, str]] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append((int(line.split()[1]) * 1024, "this machine (MemAvailable)"))
    except (OSError, ValueError, IndexError):
        pass
    try:
        mx = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if mx != "max":
            cur = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            limits.append((int(mx) - cur, "this cgroup (memory.max)"))
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            vm = 0
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmSize:"):
                    vm = int(line.split()[1]) * 1024
            limits.append((soft - vm, "this process (ulimit -v)"))
    except (OSError, ValueError, ImportError):
        pass
    if not limits:
        return (1 << 62), "this machine"
    return min(limits)


def check_memory(cfg: dict) -> None:
    """Refuse a model whose weights, gradients and one optimizer buffer cannot fit (a lower bound)."""
    scaling = cfg.get("scaling") or {}
    params = scaling.get("params")
    if scaling.get("name") == "none" or not isinstance(params, (int, float)) or isinstance(params, bool):
        return
    from .utils import resolve_device

    try:
        device = resolve_device(cfg.get("device", "auto"))
    except Exception:  # the schema has already named a bad device
        return
    need = float(params) * BYTES_PER_PARAM * COPIES
    have, where = available_memory(device)
    if need > have:
        gib = 2 ** 30
        raise ConfigError(f"scaling.params={params:g}: the model needs at least {need / gib:.1f} GiB "
                          f"({params:g} parameters x {BYTES_PER_PARAM} bytes x {COPIES}: weights, gradients, "
                          f"optimizer state), {where} has {max(have, 0) / gib:.1f} GiB available; "
                          f"lower scaling.params or use a larger machine")


def check_job(plain: dict, outdir_raw: Any, key: str, multirun: bool, log_name: Optional[str] = None) -> Path:
    """Every check of one job (see the module docstring); returns its output directory."""
    from . import outdir as od
    from .records import result_hash
    from .schema import DIRECTIVES, validate_config

    validate_config(plain)
    out = check_dir(outdir_raw, key, log_name)
    if not multirun and (out / "multirun.yaml").exists():
        raise ConfigError(f"{key}={str(outdir_raw)!r}: is a sweep directory (multirun.yaml); a single run there "
                          f"would be counted as one of its jobs: resume the sweep with -m hydra.sweep.dir=..., or "
                          f"choose another directory")
    check_cache(plain.get("dataset") or {})
    check_memory(plain)
    if out.is_dir():
        cfg = {k: v for k, v in plain.items() if k not in DIRECTIVES}
        od.check_claim(out, cfg, result_hash, bool(plain.get("fresh", False)), key)
        lock = od.DirLock(out, key)
        lock.acquire()  # refused with the holder's pid when another job has it
        lock.release()
    return out


def _plain(cfg: Any) -> dict:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    task = OmegaConf.to_container(cfg, resolve=False)
    task.pop("hydra", None)
    try:
        return OmegaConf.to_container(OmegaConf.create(task), resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        raise ConfigError(f"{key}: cannot be resolved ({str(e).splitlines()[0]})") from None


def _select(cfg: Any, key: str) -> Any:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.select(cfg, key)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{key}: cannot be resolved ({str(e).splitlines()[0]})") from None


def preflight_run(config: Any) -> None:
    """One run (`python -m flexnet ...`): ConfigError unless it can run."""
    check_job(_plain(config), _select(config, "hydra.run.dir"), "hydra.run.dir", False,
              _select(config, "hydra.job.name"))


def sweep_jobs(config: Any) -> Optional[list[list[str]]]:
    """The overrides of every job of a sweep, as Hydra's basic sweeper will run them (None: another
    sweeper, e.g. Optuna, which chooses its jobs as it goes)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    target = str(OmegaConf.select(config, "hydra.sweeper._target_") or "")
    if not target.endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    args = [f"{k}={v}" for k, v in params.items()]
    args += list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(args), None)
    return [list(job) for batch in batches for job in batch]


SLURM_TOOLS = ("sbatch", "srun", "sacct")


def check_launcher(config: Any) -> None:
    """hydra/launcher=slurm needs Slurm's commands on this machine (sbatch submits, srun starts the job
    in its allocation, sacct tells a job that died)."""
    import shutil

    from omegaconf import OmegaConf

    target = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
    if target.endswith("SlurmLauncher") and not OmegaConf.select(config, "hydra.launcher.dry_run", default=False):
        missing = [t for t in SLURM_TOOLS if shutil.which(t) is None]
        if missing:
            raise ConfigError(f"hydra/launcher=slurm: {', '.join(missing)} not found on PATH on this machine (Slurm's "
                              f"commands submit and run the jobs); run from a Slurm login node, or use "
                              f"hydra/launcher=local")


def preflight_sweep(config: Any) -> None:
    """-m: every job of the sweep checked before any is launched (and before multirun.yaml is written)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import filter_overrides
    from omegaconf import open_dict

    sweep_dir = check_dir(_select(config, "hydra.sweep.dir"), "hydra.sweep.dir")
    if any((sweep_dir / f).exists() for f in ("emc.json", "fits.jsonl")):
        raise ConfigError(f"hydra.sweep.dir={str(sweep_dir)!r}: holds a single run's results (emc.json or "
                          f"fits.jsonl at its top); a sweep there would mix with them: choose another directory")
    check_launcher(config)
    jobs = sweep_jobs(config)
    if jobs is None:
        return
    loader = GlobalHydra.instance().config_loader()
    common = set.intersection(*(set(j) for j in jobs)) if len(jobs) > 1 else set()
    for idx, overrides in enumerate(jobs):
        cfg = loader.load_sweep_config(config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = idx
            cfg.hydra.job.num = idx
        subdir = _select(cfg, "hydra.sweep.subdir")
        try:
            check_job(_plain(cfg), str(sweep_dir / str(subdir)), "hydra.sweep.dir", True,
                      _select(cfg, "hydra.job.name"))
        except ConfigError as e:
            own = [o for o in filter_overrides(overrides) if o not in common]
            named = any(o.split("=", 1)[0].lstrip("+~") in str(e) for o in own)  # the job's own value at fault
            where = f" (sweep job #{idx}: {' '.join(own)})" if len(jobs) > 1 and own and named else ""
            raise ConfigError(f"{e}{where}") from None
