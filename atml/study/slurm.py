"""The `slurm` launcher: each job submitted through submitit (one SLURM array per start), its
settings typed and checked before anything is submitted. A job runs `atml` with the job's command
line; when SLURM preempts it or its time runs out, submitit calls `checkpoint`, which requeues it as
`--resume` of the run folders it made, so it continues from its last finished epoch."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atml.errors import UserError, first_line
from atml.study.launchers import Ended, Launch, Started, last_error, run_folders

log = logging.getLogger("atml")


class SlurmSettings(BaseModel):
    """A slurm launcher's settings (names as in sbatch, units in the key): every key is set by its
    YAML (atml/configs/launchers/slurm.yaml holds the defaults), then by `--launcher-set key=value`."""

    model_config = ConfigDict(extra="forbid")
    partition: str | None
    time_min: int = Field(ge=1, le=60 * 24 * 30)
    cpus: int = Field(ge=1, le=1024)
    gpus: int = Field(ge=0, le=64)
    mem_gb: float | None = Field(gt=0, le=10_000)
    account: str | None
    qos: str | None
    array_parallelism: int = Field(ge=1, le=10_000)

    def submitit(self) -> dict:
        optional = {"slurm_partition": self.partition, "mem_gb": self.mem_gb,
                    "slurm_account": self.account, "slurm_qos": self.qos}  # fmt: skip
        return {
            "timeout_min": self.time_min,
            "cpus_per_task": self.cpus,
            "gpus_per_node": self.gpus,
            "slurm_array_parallelism": self.array_parallelism,
            **{k: v for k, v in optional.items() if v is not None},
        }


def settings(from_file: dict, assignments: list[str], path: Path) -> SlurmSettings:
    """The launcher file's settings with `--launcher-set` over them; a bad key or value is named
    where it was given."""
    from atml.config import split_set

    overrides = dict(split_set(a) for a in assignments)
    try:
        return SlurmSettings.model_validate(from_file | overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        where = f"--launcher-set {key}" if key in overrides else f"{path}: {key}"
        accepted = ", ".join(SlurmSettings.model_fields)
        raise UserError(f"{where}: {err['msg']} (slurm settings: {accepted})") from None


class SlurmJob:
    """What a SLURM job runs (pickled by submitit, so a module-level class): `atml ARGV` as a child
    process logging into the job's folder; its exit code and one-line reason come back."""

    def __call__(self, argv: list[str], folder: str, experiment: str, extra: list[str]) -> tuple[int, str]:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / "log.txt", "ab") as log_file:
            command = [sys.executable, "-m", "atml", *argv]
            # the child ignores SLURM's warning signal (USR2): submitit's handler here checkpoints and
            # requeues; the child then ends on SLURM's SIGTERM, resumable
            done = subprocess.run(
                command, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN),
            )  # fmt: skip
        return done.returncode, last_error(Path(folder) / "log.txt")

    def checkpoint(self, argv: list[str], folder: str, experiment: str, extra: list[str]):
        """Preempted or out of time: requeued as --resume of the run folders it made (`extra`: the
        options a resume keeps), or with the same argv when none exists yet."""
        import submitit

        runs = list(run_folders(Path(folder), experiment).values())
        if runs:
            argv = ["run", experiment, *(a for r in runs for a in ("--resume", r)), *extra]
        return submitit.helpers.DelayedSubmission(self, argv, folder, experiment, extra)


def _finished(jobs: list) -> list:
    """The jobs that have written their result, or that SLURM no longer holds (a failure on its
    side: their result then raises). Asked of squeue, not of submitit's watcher: that asks sacct,
    which a cluster without accounting answers with an error at every poll."""
    ids = ",".join(j.job_id for j in jobs)
    listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ids], capture_output=True, text=True)
    held = set(listed.stdout.split()) if listed.returncode == 0 else {j.job_id for j in jobs}
    return [j for j in jobs if j.paths.result_pickle.exists() or j.job_id not in held]


def run_slurm(
    launches: list[Launch],
    started: Started,
    ended: Ended,
    chosen: SlurmSettings,
    folder: Path,
    experiment: str,
) -> None:
    """Submit every job as one array, then wait for each; Ctrl-C or SIGTERM cancels the jobs left."""
    import submitit

    logging.getLogger("submitit").setLevel(logging.ERROR)  # its result() still asks sacct once
    executor = submitit.AutoExecutor(folder=Path(folder) / "slurm", cluster="slurm")
    executor.update_parameters(name=f"atml-{experiment}", **chosen.submitit())
    jobs = []
    with executor.batch():
        for launch in launches:
            jobs.append(
                executor.submit(SlurmJob(), launch.argv, str(launch.folder), experiment, launch.extra)
            )
    waiting = dict(zip(jobs, launches))
    for job, launch in waiting.items():
        started(launch, f"slurm:{job.job_id}")
    try:
        while waiting:
            for job in _finished(list(waiting)):
                launch = waiting.pop(job)
                try:
                    code, reason = job.result()
                except Exception as exc:  # noqa: BLE001 — submitit's FailedJobError, UncompletedJobError
                    code, reason = 1, f"the SLURM job failed: {first_line(exc)[:300]}"
                ended(launch, code, reason)
            time.sleep(1)
    except KeyboardInterrupt:
        for job, launch in waiting.items():
            job.cancel(check=False)
            ended(launch, 130, "cancelled with the study")
        raise
