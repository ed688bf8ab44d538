"""Schemas of flexnet's launchers: hydra-submitit-launcher's, plus flexnet's own keys."""
from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf


@dataclass
class FlexnetSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.flexnet_launcher.launcher.FlexnetSlurmLauncher"
    # false: submit the array, print job ids and the sweep dir, exit (collect later with the report)
    wait: bool = True
    # seconds between status polls while waiting (result files)
    poll_s: float = 2.0
    # seconds between forced sacct queries (how soon a job that died is noticed)
    refresh_s: float = 30.0
    # true: print the jobs and the sbatch script, submit nothing (no cluster needed)
    dry_run: bool = False


@dataclass
class FlexnetLocalConf(LocalQueueConf):
    _target_: str = "hydra_plugins.flexnet_launcher.launcher.FlexnetLocalLauncher"
    # jobs running at once; null: usable CPU cores // threads_per_job (at least 1)
    max_parallel: Optional[int] = None
    # torch/OpenMP threads of each job (OMP_NUM_THREADS, MKL_NUM_THREADS in the job's environment)
    threads_per_job: int = 1
    poll_s: float = 0.5


cs = ConfigStore.instance()
cs.store(group="hydra/launcher", name="flexnet_slurm_base", node=FlexnetSlurmConf, provider="flexnet")
cs.store(group="hydra/launcher", name="flexnet_local_base", node=FlexnetLocalConf, provider="flexnet")
