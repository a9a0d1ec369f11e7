"""`--launcher NAME|FILE`, `--workers` and `--launcher-set`, read into one checked launcher record:
kind, workers and, for SLURM, the settings every job is submitted with. NAME is one of
atml/configs/launchers/*.yaml (local, processes, slurm, slurm-gpu ship with atml); FILE is a YAML of the
same keys, e.g. `kind: slurm` and your cluster's partition. Every key a file leaves out is its
kind's shipped default (atml/configs/launchers/KIND.yaml, the package's own)."""

from __future__ import annotations

import importlib.util
from importlib.resources import files
from pathlib import Path

from atml.config import read_yaml
from atml.errors import UserError
from atml.study.launchers import LAUNCHERS, check_launcher


def _shipped():
    return files("atml.configs") / "launchers"


def _file(name: str):
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name)
    shipped = sorted(p.name.removesuffix(".yaml") for p in _shipped().iterdir() if p.name.endswith(".yaml"))
    if name not in shipped:
        raise UserError(f"unknown launcher '{name}'; accepted: {', '.join(shipped)}, or a launcher YAML file")
    return _shipped() / f"{name}.yaml"


def choose(name: str, workers: int | None, assignments: list[str] | None) -> dict:
    """The launcher record a study keeps in study.json; one bad key or value is a UserError."""
    path = _file(name)
    given = read_yaml(path)
    kind = given.get("kind")
    if kind not in LAUNCHERS:
        raise UserError(f"{path}: kind: give one of {', '.join(LAUNCHERS)}, not {kind!r}")
    values = read_yaml(_shipped() / f"{kind}.yaml") | given  # the kind's defaults under the file's keys
    del values["kind"]
    file_workers = values.pop("workers", 1)
    chosen_workers = file_workers if workers is None else workers
    if not isinstance(chosen_workers, int) or isinstance(chosen_workers, bool):
        raise UserError(f"{path}: workers must be a whole number, not {chosen_workers!r}")
    check_launcher(kind, chosen_workers)
    chosen = {"kind": kind, "workers": chosen_workers, "file": str(path)}
    if kind != "slurm":
        if values or assignments:
            extra = ", ".join([*values, *(a.split("=")[0] for a in assignments or [])])
            raise UserError(f"{extra}: SLURM settings, for a slurm launcher (this one is {kind})")
        return chosen
    if importlib.util.find_spec("submitit") is None:
        raise UserError("--launcher slurm submits through submitit: pip install 'atml[slurm]'")
    from atml.study.slurm import settings

    chosen["settings"] = settings(values, assignments or [], path).model_dump()
    return chosen


def describe(chosen: dict) -> str:
    """One line: the launcher's kind, workers or SLURM settings, and its file."""
    if chosen["kind"] == "processes":
        what = f"processes, {chosen['workers']} workers"
    elif chosen["kind"] == "slurm":
        settings = ", ".join(f"{k}={v}" for k, v in chosen["settings"].items() if v is not None)
        what = f"slurm: {settings}"
    else:
        what = chosen["kind"]
    return f"{what} (from {chosen['file']})"
