"""The records a run folder keeps (config.yaml, env.json, metrics.json, a seed summary's
summary.json), read back through one typed check each. `--resume` and `atml report` both read
through here, so a file of the wrong shape is the same DamagedFileError (exit 3) naming the file
and the key, never an AttributeError three calls later."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from atml.errors import DamagedFileError, UserError, first_line, shorten


class RunEnv(BaseModel):
    """env.json: what the code reads of it. Everything else (versions, command, platform) is
    shown as recorded."""

    model_config = ConfigDict(extra="allow")
    experiment: str
    kind: Literal["run", "seed-summary"] = "run"
    run_id: str | None = None  # runs made before checkpoints recorded their run have none
    seed: int | None = None
    seeds: list[int] | None = None
    parts: list[str] | None = None
    smoke: bool = False
    preset: str | None = None
    runs: dict[int, str] | None = None  # a seed summary's seed folders
    created: str | None = None
    git_commit: str | None = None
    device: str | None = None
    device_name: str | None = None
    threads: int | None = None  # CPU threads torch used (runs before this was recorded: absent)


class SeedNumber(BaseModel):
    mean: float
    std: float
    n: int
    values: dict[int, float]


class SeedSummaryRecord(BaseModel):
    """summary.json of a --seeds run."""

    model_config = ConfigDict(extra="allow")
    runs: dict[int, str]
    rows: list[dict[str, Any]] = []
    numbers: dict[str, SeedNumber] = {}


def config_sha256(config: dict) -> str:
    """What ties a checkpoint or a study's job to a resolved config: the sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def read_mapping(path: Path, what: str) -> dict:
    """A YAML or JSON record as a mapping, or a DamagedFileError naming the file; `what` says
    what the damage means for the user."""
    parse = yaml.safe_load if path.suffix == ".yaml" else json.loads
    try:
        data = parse(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise DamagedFileError(f"{path} is damaged ({first_line(exc)}); {what}") from None
    if not isinstance(data, dict):
        raise DamagedFileError(f"{path} is damaged (it does not hold a mapping); {what}")
    return data


def checked(path: Path, data: dict, schema: type[BaseModel], what: str) -> BaseModel:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = "" if err["type"] == "missing" else f" (got {shorten(repr(err.get('input')), 80)})"
        raise DamagedFileError(f"{path} is damaged: key '{key}'{got}: {err['msg']}; {what}") from None


def read_env(folder: Path, what: str) -> RunEnv:
    path = Path(folder) / "env.json"
    return checked(path, read_mapping(path, what), RunEnv, what)


def check_summary(folder: Path, data: dict, what: str) -> SeedSummaryRecord:
    """summary.json's mapping, typed; it must list a seed folder."""
    path = Path(folder) / "summary.json"
    record = checked(path, data, SeedSummaryRecord, what)
    if not record.runs:
        raise DamagedFileError(f"{path} is damaged: key 'runs' lists no seed folder; {what}")
    return record


def check_config(folder: Path, experiment, raw: dict, what: str) -> BaseModel:
    """config.yaml's mapping as the experiment's typed config (keys an earlier atml wrote under an
    old name read under the new one)."""
    from atml.config import upgrade, validate

    try:
        return validate(upgrade(raw, experiment.config), experiment.config)
    except UserError as exc:
        raise DamagedFileError(f"{Path(folder) / 'config.yaml'} is damaged: {exc}; {what}") from None


def check_metrics(folder: Path, experiment, metrics: dict, what: str) -> None:
    problem = experiment.metrics_problem(metrics)
    if problem:
        raise DamagedFileError(f"{Path(folder) / 'metrics.json'} is damaged: {problem}; {what}")


def require_records(folder: Path) -> None:
    if not (folder / "config.yaml").is_file() or not (folder / "env.json").is_file():
        raise UserError(f"--resume needs a run folder holding config.yaml and env.json; {folder} lacks one")


def check_run(folder: Path, experiment) -> None:
    """Every record of a run folder of `experiment` reads back typed; metrics.json may not exist yet."""
    folder = Path(folder)
    require_records(folder)
    what = "this run cannot be resumed; start a new one"
    read_env(folder, what)
    check_config(folder, experiment, read_mapping(folder / "config.yaml", what), what)
    if (folder / "metrics.json").is_file():
        metrics = read_mapping(folder / "metrics.json", "delete it and resume to recompute every part")
        check_metrics(folder, experiment, metrics, "delete it and resume to recompute every part")
