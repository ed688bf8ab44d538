"""`python -m flexnet [overrides] [-m]`: one EMC measurement per Hydra job."""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


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
    from .tracking import wandb_run_id

    info["run_id"] = wandb_run_id(Path(hc.runtime.output_dir), info)
    return info


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from .job import run_job

    outdir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = run_job(OmegaConf.to_container(cfg, resolve=True), outdir, _job_info())
    except ConfigError as e:
        print(f"flexnet: error: {e}", file=sys.stderr, flush=True)
        try:
            (outdir / "error.txt").write_text(f"{e}\n")
        except OSError:
            pass
        raise SystemExit(2)
    if result.get("mostly_broken") and HydraConfig.get().mode.name != "MULTIRUN":
        # emc.json is written; the exit status says the measurement is not one (a sweep goes on)
        print(f"flexnet: error: {result['diverged'] + result['degenerate']} of {result['fits']} attempts diverged "
              f"or ended degenerate: lower optimizer.lr (now {cfg.optimizer.lr})", file=sys.stderr, flush=True)
        raise SystemExit(3)
    return float(result["emc"])


if __name__ == "__main__":
    main()
