"""flexnet's Hydra launchers: hydra-submitit-launcher's Slurm and local launchers, plus
reporting each job as it finishes, fire-and-forget submission, and a cap on local jobs.

Hydra imports every module under the `hydra_plugins` namespace at start-up, which registers
the schemas `hydra/launcher/flexnet_slurm_base` and `flexnet_local_base`; the presets
`conf/hydra/launcher/slurm.yaml` and `local.yaml` build on them. Keep this import light.
"""
