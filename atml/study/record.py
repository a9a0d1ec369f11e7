"""study.json: the command, the grid, the launcher and every job's state, rewritten atomically by
the one process that runs the study each time a job changes state."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from atml.errors import UserError
from atml.records import checked, read_mapping
from atml.runs import atomic_write_text

STATES = ("pending", "running", "done", "failed", "interrupted")
State = Literal["pending", "running", "done", "failed", "interrupted"]
RECORD = "study.json"


class Job(BaseModel):
    """One `atml run` of a cell: its seeds (several where the experiment stacks them)."""

    name: str
    cell: int
    seeds: list[int]
    config_sha256: list[str]  # each seed's resolved config
    state: State = "pending"
    exit_code: int | None = None
    reason: str = ""
    job_id: str | None = None  # where it ran: local:PID, or the worker's process id
    wall_s: float | None = None
    runs: list[str] = []  # its run folders, one per seed


class Study(BaseModel):
    experiment: str
    command: list[str]
    axes: dict[str, list[Any]]
    cells: list[dict[str, Any]]  # each cell's swept values
    base: dict[str, Any]  # what every job's `atml run` shares (atml.study.engine.Base)
    launcher: dict[str, Any]  # kind, workers
    runner: str | None = None  # pid@host of the process running the study now
    created: str
    git_commit: str | None
    atml_version: str | None
    jobs: list[Job]

    def cell_jobs(self, cell: int) -> list[Job]:
        return [j for j in self.jobs if j.cell == cell]


def save(folder: Path, study: Study) -> None:
    atomic_write_text(Path(folder) / RECORD, study.model_dump_json(indent=2))


def load(folder: Path) -> Study:
    folder = Path(folder)
    if not (folder / RECORD).is_file():
        raise UserError(f"{folder} is not a study folder (it holds no {RECORD})")
    data = read_mapping(folder / RECORD, "this study cannot be read")
    return checked(folder / RECORD, data, Study, "this study cannot be read")


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")
