"""The launchers' YAML (atml/configs/launchers): local, processes, slurm, slurm-gpu."""
