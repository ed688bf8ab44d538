"""hydra-submitit-launcher's launchers with what flexnet's sweeps need on top:

* each job is reported as soon as it finishes (its EMC and output dir); a failed job is
  reported with its log paths and does not stop the others from being collected and shown;
* `wait=false` (Slurm): submit the array, print the job ids and the sweep dir, write
  `<sweep dir>/jobs.json`, exit; results are collected later from the emc.json files;
* local launcher: at most `max_parallel` jobs at once (submitit's local executor starts
  every job immediately), each with `threads_per_job` OpenMP/torch threads.

Requeue after a timeout or preemption is submitit's: the job's `checkpoint` (inherited)
resubmits the same call, which runs in the same output dir, where flexnet's journal
(`fits.jsonl`) replays the finished fit attempts.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)

JOBS_FILE = "jobs.json"


def _job_result(value: Any, outdir: Optional[str]) -> str:
    """What a finished job's line says: `EMC = <emc>`, or with search=fixed (one size, no EMC: the job's
    value is that n or 0) the size and its train and test error, read from the job's emc.json."""
    emc = int(value) if isinstance(value, float) and value.is_integer() else value
    try:
        r = json.loads((Path(str(outdir)) / "emc.json").read_text()) if outdir else {}
    except (OSError, ValueError):
        r = {}
    search = ((r.get("config") or {}).get("search") or {}) if isinstance(r, dict) else {}
    if search.get("name") != "fixed":
        return f"EMC = {emc}"

    def err(acc: Any) -> str:
        return "-" if not isinstance(acc, (int, float)) else f"{1 - acc:.4f}"

    return (f"n = {search.get('n')}: train error {err(r.get('train_accuracy'))}, "
            f"test error {err(r.get('test_accuracy'))}")


def _reason(exc: BaseException) -> str:
    """One line saying why a job failed (submitit's errors carry the whole remote traceback); a job that
    ended on flexnet's own error line (a refusal, a fault) is reported by that line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    own = [ln.split("flexnet: error: ", 1)[1] for ln in lines if "flexnet: error: " in ln]
    if own:
        return own[-1]
    own = [ln.split("flexnet: ", 1)[1] for ln in lines if ln.startswith(("flexnet: interrupted", "flexnet: terminated"))]
    if own:
        return own[-1]
    tail = [ln for ln in lines if not ln.startswith(("File ", "^", "Traceback", "During handling", "The above"))]
    last = tail[-1] if tail else (lines[-1] if lines else "")
    return f"{type(exc).__name__}: {last}" if last else type(exc).__name__


def ignore_late_preemption_signal() -> None:
    """In a job's process once its work has returned: ignore submitit's preemption/timeout signal.

    submitit keeps its handler (checkpoint, `scontrol requeue`, exit -1) installed while it pickles the
    result and exits, and Python restores the signal's default action (terminate) while it shuts down;
    Slurm's timeout signal arriving in that window turned a finished job into a FAILED (or needlessly
    requeued) one. Ignored from here on, the finished job exits 0 and Slurm records it COMPLETED.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread (submitit runs jobs there)
    try:
        import submitit

        sig = submitit.JobEnvironment._usr_sig()  # SUBMITIT_PREEMPT_SIGNAL, USR2 by default
    except Exception:
        sig = signal.SIGUSR2
    signal.signal(sig, signal.SIG_IGN)


def _descendants(pid: int) -> List[int]:
    """The processes below pid, children first (Linux /proc; empty elsewhere)."""
    children: dict = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    out: List[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _signal(pids: List[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


class _FlexnetLauncher(BaseSubmititLauncher):
    _OWN_KEYS: tuple = ("poll_s",)

    def __init__(self, **params: Any) -> None:
        own = {k: params.pop(k) for k in list(params) if k in self._OWN_KEYS}
        super().__init__(**params)
        self.own = {k: (OmegaConf.to_container(v) if OmegaConf.is_config(v) else v) for k, v in own.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """The submitted callable (runs in the job's process); see ignore_late_preemption_signal."""
        try:
            return super().__call__(*args, **kwargs)
        finally:
            ignore_late_preemption_signal()

    # ------------------------------------------------------------------ executor
    def _executor(self) -> Any:
        """Same executor as hydra-submitit-launcher builds (folder, max_num_timeout, parameters)."""
        import submitit

        params = dict(self.params)
        init_params: dict = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init_params[f"{self._EXECUTOR}_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        rest = {k: v for k, v in params.items() if k not in ("submitit_folder", "max_num_timeout")}
        if not rest.get("gpus_per_node"):  # 0 or null: no GPU request at all (CPU-only clusters)
            rest.pop("gpus_per_node", None)
        executor.update_parameters(**{k if k in baseparams else f"{self._EXECUTOR}_{k}": v for k, v in rest.items()})
        return executor

    def _job_params(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[tuple]:
        out = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            out.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        return out

    def _output_dir(self, overrides: List[str], idx: int) -> Optional[str]:
        """The job's output dir, as Hydra will compute it in the job (for the job list)."""
        assert self.hydra_context is not None and self.config is not None
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num = idx
            return str(Path(str(cfg.hydra.sweep.dir), str(OmegaConf.select(cfg, "hydra.sweep.subdir"))).resolve())
        except Exception:  # the list is informative only
            return None

    # ------------------------------------------------------------------ reporting
    _common: frozenset = frozenset()

    def _label(self, idx: int, overrides: List[str]) -> str:
        """`#num` and the job's overrides that differ between the sweep's jobs."""
        own = [o for o in filter_overrides(overrides) if o not in self._common]
        return f"#{idx} " + (" ".join(own) or "(no overrides)")

    def _set_common(self, job_overrides: Sequence[Sequence[str]]) -> None:
        sets = [set(o) for o in job_overrides]
        self._common = frozenset(set.intersection(*sets)) if len(sets) > 1 else frozenset()

    def _collect(self, job: Any, spec: tuple, jobs_total: int, counts: dict) -> JobReturn:
        overrides, _, idx, _, _ = spec
        label = self._label(idx, overrides)
        paths = f"log: {job.paths.stderr} (stdout: {job.paths.stdout})"
        try:
            ret = job.result()
        except Exception as e:  # job died: exception outside Hydra's run_job, timeout, killed, OOM...
            ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
            ret.return_value = RuntimeError(f"job {label} [{job.job_id}] failed: {_reason(e)}; {paths}")
        counts["done"] += 1
        prefix = f"[{counts['done']}/{jobs_total}] {label} [{job.job_id}]"
        if ret.status == JobStatus.COMPLETED:
            outdir = None
            if ret.hydra_cfg is not None:
                outdir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir")
            log.info(f"{prefix}: {_job_result(ret.return_value, outdir)}  ({outdir})")
        else:
            counts["failed"] += 1
            err = ret._return_value
            if not (isinstance(err, RuntimeError) and str(err).startswith("job #")):
                err = RuntimeError(f"job {label} [{job.job_id}] failed: {_reason(err)}; {paths}")
                ret.return_value = err
            log.error(f"{prefix}: FAILED: {str(err).split(' failed: ', 1)[-1]}")
        return ret

    def _write_jobs(self, sweep_dir: Path, rows: List[dict]) -> Path:
        path = sweep_dir / JOBS_FILE
        old: List[dict] = []
        if path.exists():  # several batches (or sweeps) into one dir: keep earlier rows
            try:
                old = json.loads(path.read_text())
            except ValueError:
                old = []
        nums = {r["num"] for r in rows}
        rows = [r for r in old if r.get("num") not in nums] + rows
        tmp = path.with_name(f".{JOBS_FILE}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(rows, indent=1) + "\n")
        os.replace(tmp, path)
        return path

    def _rows(self, specs: List[tuple], jobs: List[Any]) -> List[dict]:
        return [{"num": s[2], "job_id": j.job_id, "overrides": list(s[0]), "output_dir": self._output_dir(s[0], s[2]),
                 "stdout": str(j.paths.stdout), "stderr": str(j.paths.stderr)} for s, j in zip(specs, jobs)]

    def _finish(self, sweep_dir: Path, results: List[JobReturn], counts: dict) -> None:
        # hydra-submitit leaves an empty folder literally named '%j' behind
        for p in (sweep_dir / ".submitit" / "%j", Path(str(self.params.get("submitit_folder", "")))):
            try:
                if p.name == "%j" and p.is_dir():
                    p.rmdir()
            except OSError:
                pass
        if counts["failed"]:
            from flexnet.errors import JobsFailed

            failed = [str(r._return_value).split("job ", 1)[-1] for r in results
                      if r is not None and r.status != JobStatus.COMPLETED]
            # raised here, not left to Hydra's sweeper (which logs "Error executing job ..." and raises
            # the first failed job's value): the whole story once, as one line (flexnet.__main__.cli)
            raise JobsFailed(failed, len(results), str(sweep_dir))
        else:
            log.info(f"all {len(results)} jobs finished; results in {sweep_dir}")

    def _prepare(self) -> Path:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        return sweep_dir

    def _wait(self, jobs: List[Any], specs: List[tuple], counts: dict, total: int,
              results: List[Optional[JobReturn]]) -> None:
        poll = float(self.own.get("poll_s", 1.0))
        open_ = list(range(len(jobs)))
        last_refresh = time.monotonic()
        while open_:
            # submitit asks sacct less and less often as jobs age (up to every 10 min); a finished
            # job is seen at once (its result file), but a job that died is only seen by sacct
            force = time.monotonic() - last_refresh > float(self.own.get("refresh_s", 30.0))
            if force:
                last_refresh = time.monotonic()
                try:
                    jobs[open_[0]].watcher.update()
                except Exception as e:  # sacct trouble: submitit's own polling still runs
                    log.debug(f"sacct refresh failed: {e}")
            still = []
            for k in open_:
                if jobs[k].done():
                    results[k] = self._collect(jobs[k], specs[k], total, counts)
                else:
                    still.append(k)
            open_ = still
            if open_:
                time.sleep(poll)


class FlexnetSlurmLauncher(_FlexnetLauncher):
    _EXECUTOR = "slurm"
    _OWN_KEYS = ("poll_s", "wait", "refresh_s", "dry_run")

    def sbatch_script(self, executor: Any, n_jobs: int) -> str:
        """The batch script submitit would give sbatch for an array of n_jobs (one job: no --array)."""
        inner = executor._executor
        ex = copy.copy(inner)  # the array's own copy, as submitit makes it (SlurmExecutor's init wants srun)
        ex.parameters = dict(inner.parameters)
        if n_jobs > 1:
            ex.parameters["map_count"] = n_jobs
        return ex._make_submission_file_text(ex._submitit_command_str, "dry-run")

    def dry_run(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """hydra.launcher.dry_run=true: print the jobs (each one's overrides and output directory) and the
        sbatch script of their array; submit nothing, need no cluster."""
        from submitit.slurm.slurm import SlurmExecutor

        assert self.config is not None
        # submitit refuses to build a Slurm executor without srun; the preview only renders its script
        affinity = SlurmExecutor.__dict__["affinity"]
        SlurmExecutor.affinity = classmethod(lambda cls: 1)  # type: ignore[method-assign,assignment]
        try:
            executor = self._executor()
        finally:
            SlurmExecutor.affinity = affinity  # type: ignore[method-assign]
        specs = self._job_params(job_overrides, initial_job_idx)
        self._set_common(job_overrides)
        lines = [f"dry run (hydra.launcher.dry_run=true): {len(specs)} Slurm job(s) would be submitted as "
                 f"{'one array' if len(specs) > 1 else 'one job'}; nothing was submitted"]
        for s in specs:
            lines.append(f"  {self._label(s[2], s[0])}  ->  {self._output_dir(s[0], s[2])}")
        lines += ["", "sbatch script:", self.sbatch_script(executor, len(specs)).rstrip(), "",
                  "submit it: the same command without hydra.launcher.dry_run=true"]
        print("\n".join(lines), flush=True)
        self._undo_sweep_file()
        return []

    def _undo_sweep_file(self) -> None:
        """A preview leaves the sweep directory as it was: Hydra wrote multirun.yaml before launching."""
        from flexnet import outdir as od

        assert self.config is not None
        if od._SWEEP_FILE:  # it held one before: put it back
            od.restore_sweep_file()
            return
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            if sweep_dir.is_dir() and {p.name for p in sweep_dir.iterdir()} - {od.LOCK_FILE} == {"multirun.yaml"}:
                (sweep_dir / "multirun.yaml").unlink()  # the sweep lock's file goes when the sweep ends
        except OSError:
            pass

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        if self.own.get("dry_run"):
            return self.dry_run(job_overrides, initial_job_idx)
        sweep_dir = self._prepare()
        executor = self._executor()
        specs = self._job_params(job_overrides, initial_job_idx)
        self._set_common(job_overrides)
        for s in specs:
            log.info(f"\t{self._label(s[2], s[0])}")
        jobs = executor.map_array(self, *zip(*specs))
        jobs_file = self._write_jobs(sweep_dir, self._rows(specs, jobs))
        ids = ", ".join(j.job_id for j in jobs)
        log.info(f"submitted {len(jobs)} jobs: {ids}; job list: {jobs_file}")
        if not self.own.get("wait", True):
            print(f"submitted {len(jobs)} Slurm jobs ({ids})\nsweep dir: {sweep_dir.resolve()}\n"
                  f"job list: {jobs_file}\nwatch: squeue -j {jobs[0].job_id.split('_')[0]}   "
                  f"collect: python -m flexnet.report {sweep_dir}", flush=True)
            return []
        counts = {"done": 0, "failed": 0}
        results: List[Optional[JobReturn]] = [None] * len(jobs)
        self._wait(jobs, specs, counts, len(jobs), results)
        self._finish(sweep_dir, results, counts)  # type: ignore[arg-type]
        return results  # type: ignore[return-value]


class FlexnetLocalLauncher(_FlexnetLauncher):
    _EXECUTOR = "local"
    _OWN_KEYS = ("poll_s", "max_parallel", "threads_per_job")

    def _cap(self) -> int:
        """max_parallel, or the usable CPU cores // threads_per_job; one job at a time when the jobs
        will train on a GPU (device auto or cuda, and torch sees one): each would take the whole GPU."""
        cap = self.own.get("max_parallel")
        if cap:
            return max(1, int(cap))
        device = str(OmegaConf.select(self.config, "device", default="auto")) if self.config is not None else "auto"
        if device == "auto" or device.startswith("cuda"):
            try:
                import torch

                if torch.cuda.is_available():
                    return 1
            except Exception:  # no usable torch here: the jobs will say so
                pass
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:
            cores = os.cpu_count() or 1
        return max(1, cores // max(1, int(self.own.get("threads_per_job") or 1)))

    def _submit_ignoring_sigint(self, executor: Any, spec: tuple) -> Any:
        """executor.submit with SIGINT ignored meanwhile: the controller process it starts inherits that."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return executor.submit(self, *spec)
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return executor.submit(self, *spec)
        finally:
            signal.signal(signal.SIGINT, old)

    def _interrupted(self, sweep_dir: Path, jobs: List[Any], specs: List[tuple], counts: dict,
                     term: bool = False) -> None:
        """Ctrl-C (or SIGTERM, term=True): stop the running jobs (their finished attempts are journalled),
        print one line with the command that resumes the sweep, exit 130 (143)."""
        import sys

        import signal

        live = [j for j in jobs if j is not None and not j.done()]
        controllers = [p.pid for p in (getattr(j, "_process", None) for j in live) if p is not None]
        # SIGTERM to the jobs themselves (below submitit's controllers): each stops like a single run on
        # Ctrl-C (flexnet handles SIGTERM in the jobs of this launcher), its finished attempts journalled,
        # and its controller then exits
        _signal([t for c in controllers for t in _descendants(c)], signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        while any(not j.done() for j in live) and time.monotonic() < deadline:
            time.sleep(0.2)
        for c in controllers:  # still running (e.g. SIGINT ignored): kill
            _signal([*reversed(_descendants(c)), c], signal.SIGKILL)
        task = [] if self.config is None else [str(o) for o in self.config.hydra.overrides.task]
        task = [o for o in task if not o.startswith("hydra.sweep.dir=")]
        cmd = " ".join(["python -m flexnet -m", *task, f"hydra.sweep.dir={sweep_dir}"])
        how = "terminated (SIGTERM)" if term else "interrupted"
        print(f"flexnet: {how}: {counts['done']} of {len(specs)} jobs finished (the others' finished "
              f"attempts are journalled); resume with: {cmd}", file=sys.stderr, flush=True)
        raise SystemExit(143 if term else 130)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        sweep_dir = self._prepare()
        threads = self.own.get("threads_per_job")
        if threads:  # inherited by the job processes (submitit copies this environment)
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[var] = str(int(threads))
        import signal

        # Ctrl-C reaches the whole process group: the jobs stop themselves (flexnet restores their
        # SIGINT handler, FLEXNET_SIGINT), submitit's controllers ignore it (no traceback of theirs on
        # the terminal) and this process stops the rest (_interrupted)
        os.environ["FLEXNET_SIGINT"] = "1" if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else "0"
        # the jobs die with this process, however it ends (kill -9 included): each watches it (its pid
        # and start time) and stops on its own when it is gone (flexnet.__main__.die_with_parent)
        from flexnet.signals import PARENT_ENV, Terminated, handle_sigterm, process_start

        os.environ[PARENT_ENV] = f"{os.getpid()}:{process_start(os.getpid()) or ''}"
        handle_sigterm()  # SIGTERM to the sweep: stops it like Ctrl-C (below), exit 143
        executor = self._executor()
        specs = self._job_params(job_overrides, initial_job_idx)
        self._set_common(job_overrides)
        cap = self._cap()
        log.info(f"{len(specs)} jobs, at most {cap} at once, {threads or 'default'} thread(s) each")
        counts = {"done": 0, "failed": 0}
        results: List[Optional[JobReturn]] = [None] * len(specs)
        jobs: List[Any] = [None] * len(specs)
        todo = list(range(len(specs)))
        running: List[int] = []
        poll = float(self.own.get("poll_s", 0.5))
        try:
            while todo or running:
                while todo and len(running) < cap:
                    k = todo.pop(0)
                    jobs[k] = self._submit_ignoring_sigint(executor, specs[k])
                    log.info(f"\tstarted {self._label(specs[k][2], specs[k][0])} [{jobs[k].job_id}]")
                    running.append(k)
                still = []
                for k in running:
                    if jobs[k].done():
                        results[k] = self._collect(jobs[k], specs[k], len(specs), counts)
                    else:
                        still.append(k)
                if len(still) == len(running):
                    time.sleep(poll)
                running = still
        except KeyboardInterrupt as e:
            self._interrupted(sweep_dir, jobs, specs, counts, term=isinstance(e, Terminated))
        self._write_jobs(sweep_dir, self._rows(specs, jobs))
        self._finish(sweep_dir, results, counts)  # type: ignore[arg-type]
        return results  # type: ignore[return-value]
