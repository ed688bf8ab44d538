"""`python -m flexnet [overrides] [-m]`: one EMC measurement per Hydra job."""
from __future__ import annotations

import hashlib
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
        key = f"{Path(str(hc.sweep.dir)).resolve()}#{hc.job.get('num')}"
    else:
        key = str(Path(hc.runtime.output_dir).resolve())
    # stable across restarts and Slurm requeues of the same job (same sweep dir and job number, or
    # same run dir), so W&B resumes the run instead of starting a duplicate
    info["run_id"] = hashlib.sha256(key.encode()).hexdigest()[:16]
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
    return float(result["emc"])


if __name__ == "__main__":
    main()
