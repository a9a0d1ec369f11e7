"""A study's life: created from a sweep (every cell resolved first), its jobs run by a launcher
with study.json updated as each changes state, resumed (only what is not done, each job from its
own checkpoints, refused if the code or a cell's config would differ), cancelled, summarised."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from atml import experiments, folder_lock, logs, plan, tracking
from atml.errors import UserError, shorten
from atml.records import config_sha256
from atml.runs import check_output_root, git_commit, new_folder
from atml.study import grid, launchers, record, summary
from atml.study.record import Job, Study

log = logging.getLogger("atml")
KILLED = (137, 143)  # a shell's 128 + SIGKILL / SIGTERM


@dataclass(frozen=True)
class Base:
    """What every cell of a study shares: `atml run EXP` less the swept keys and the seed."""

    experiment: str
    parts: list[str]
    flag_args: list[str]  # the experiment's own flags, as typed
    sets: list[str]
    config_file: str | None
    smoke: bool
    seeds: list[int | None]
    preset: str | None
    device: str
    tracker: str
    keep_checkpoints: bool = False  # studies recorded before it existed kept none either way

    def request(self) -> plan.RunRequest:
        exp = experiments.get(self.experiment)
        return plan.RunRequest(
            experiment=exp,
            parts=plan.select_parts(exp, self.parts),
            flags=experiments.parse_flags(exp, self.flag_args),
            sets=list(self.sets),
            config_file=Path(self.config_file) if self.config_file else None,
            smoke=self.smoke,
            seeds=list(self.seeds),
            summarise=False,
            out=Path("."),
            label="study",
            device=self.device,
            tracker=self.tracker,
            keep_checkpoints=self.keep_checkpoints,
            preset=self.preset,
        )


def _cells(base: Base, axes: list[grid.Axis]) -> list[grid.Cell]:
    return grid.cells(base.request(), axes)


def _jobs(cells: list[grid.Cell]) -> list[Job]:
    jobs = []
    for cell in cells:
        hashes = {c.seed: config_sha256(c.raw) for c in cell.request.configs}
        for seeds in grid.job_seeds(cell):
            tag = f"seed{seeds[0]}" if len(seeds) == 1 else "seeds" + "_".join(map(str, seeds))
            jobs.append(Job(name=f"{cell.name}-{tag}", cell=cell.index, seeds=seeds,
                            config_sha256=[hashes[s] for s in seeds]))  # fmt: skip
    return jobs


def _version() -> str | None:
    try:
        return metadata.version("atml")
    except metadata.PackageNotFoundError:
        return None


def plan_study(base: Base, axes: list[grid.Axis]) -> tuple[list[grid.Cell], list[Job]]:
    """Every cell resolved and checked, and its jobs: nothing is written."""
    cells = _cells(base, axes)
    return cells, _jobs(cells)


def create(
    base: Base, axes: list[grid.Axis], out: Path, name: str, launcher: dict, command: list[str]
) -> Path:
    """The study folder outputs/studies/<time>-<name>/ with study.json, every job pending."""
    cells, jobs = plan_study(base, axes)
    check_output_root(out)
    folder = new_folder(Path(out) / "studies", name, "study folder")
    study = Study(
        experiment=base.experiment,
        command=command,
        base=base.__dict__,
        axes={a.key: list(a.values) for a in axes},
        cells=[c.assignments for c in cells],
        launcher=launcher,
        created=record.now(),
        git_commit=git_commit(),
        atml_version=_version(),
        jobs=jobs,
    )
    record.save(folder, study)
    return folder


def _base(study: Study) -> Base:
    return Base(**study.base)


def job_argv(study: Study, job: Job, folder: Path) -> list[str]:
    """The job's `atml run` command line: its runs' --resume where they exist, else a new run."""
    base = _base(study)
    extra = _extra(base)
    if job.runs:
        return ["run", study.experiment, *(a for r in job.runs for a in ("--resume", r)), *extra]
    args = ["run", study.experiment, *(a for p in base.parts for a in ("--part", p))]
    cell = study.cells[job.cell]
    preset = cell.get(grid.PRESET, base.preset)
    if preset and preset != grid.DEFAULT_PRESET:
        args += ["--preset", str(preset)]
    args += [a for s in base.sets for a in ("--set", s)]
    args += [a for k, v in cell.items() if k != grid.PRESET for a in ("--set", f"{k}={grid._yaml(v)}")]
    args += ["--config", base.config_file] if base.config_file else []
    args += ["--smoke"] if base.smoke else []
    args += (
        ["--seeds", ",".join(map(str, job.seeds))] if len(job.seeds) > 1 else ["--seed", str(job.seeds[0])]
    )
    return [*args, "--out", str(job_folder(folder, job)), "--name", job.name, *extra, *base.flag_args]


def _extra(base: Base) -> list[str]:
    """The options a job keeps on --resume."""
    return [
        "--device",
        base.device,
        "--tracker",
        base.tracker,
        *["--keep-checkpoints"] * base.keep_checkpoints,
    ]


def job_folder(folder: Path, job: Job) -> Path:
    return Path(folder) / "jobs" / job.name


def found_runs(folder: Path, study: Study, job: Job) -> list[str]:
    """The job's run folders, in the order of its seeds."""
    runs = launchers.run_folders(job_folder(folder, job), study.experiment)
    return [runs[s] for s in job.seeds if s in runs]


def run(folder: Path, study: Study, execute: launchers.Execute) -> int:
    """Run every job not done with the study's launcher; returns the study's exit code (0, the
    first failed job's, or 130 when interrupted)."""
    folder_lock.hold(folder)
    study.runner = f"{os.getpid()}@{socket.gethostname()}"
    todo = [j for j in study.jobs if j.state != "done"]
    by_name = {j.name: j for j in study.jobs}
    total, done_before = len(study.jobs), len(study.jobs) - len(todo)
    starts: dict[str, float] = {}
    finished = [done_before]
    jobs_bar = logs.Level("study", total, "job", done=done_before)

    def started(launch: launchers.Launch, job_id: str) -> None:
        job = by_name[launch.name]
        job.state, job.job_id, job.exit_code, job.reason = "running", job_id, None, ""
        starts[job.name] = time.perf_counter()
        record.save(folder, study)
        log.info(f"atml study: [{finished[0] + 1}/{total}] {job.name}: started ({job_id})")

    def ended(launch: launchers.Launch, code: int, reason: str) -> None:
        job = by_name[launch.name]
        if code < 0:  # a worker killed by a signal: resumable from its checkpoints, like Ctrl-C
            reason = f"its process was killed ({signal.Signals(-code).name})"
        job.state = "done" if code == 0 else "interrupted" if code in (130, *KILLED) or code < 0 else "failed"
        job.exit_code, job.reason = code, "" if code == 0 else reason
        job.wall_s = round(time.perf_counter() - starts.pop(job.name, time.perf_counter()), 1)
        job.runs = found_runs(folder, study, job)
        finished[0] += code == 0
        if code == 0:
            jobs_bar.advance(job.name)
        record.save(folder, study)
        said = f"{job.state} in {job.wall_s:.0f} s" + (
            f" (exit {code}: {shorten(reason, 200)})" if code else ""
        )
        log.info(f"atml study: {job.name}: {said}")

    for job in todo:
        job.runs = found_runs(folder, study, job)
    extra = _extra(_base(study))
    launches = [
        launchers.Launch(j.name, job_argv(study, j, folder), job_folder(folder, j), extra) for j in todo
    ]
    kind = study.launcher["kind"]
    log.info(f"atml study: {len(todo)} of {total} jobs to run ({kind}) → {folder}")
    interrupted = False
    base = _base(study)
    try:
        with tracking.shared_store(base.tracker, Path(folder).resolve().parents[1], study.experiment):
            if kind == "processes":
                launchers.run_processes(launches, started, ended, study.launcher["workers"], base.device)
            elif kind == "slurm":
                from atml.study.slurm import SlurmSettings, run_slurm

                chosen = SlurmSettings.model_validate(study.launcher.get("settings", {}))
                run_slurm(launches, started, ended, chosen, folder, study.experiment)
            else:
                launchers.run_local(launches, started, ended, execute)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        jobs_bar.close()
        for job in study.jobs:  # a job the launcher could not report: its process went with ours
            if job.state == "running":
                job.state, job.reason = "interrupted", "the study's process ended"
        study.runner = None
        record.save(folder, study)
        summary.write(folder, study)
        folder_lock.release(folder)
    states = {s: sum(j.state == s for j in study.jobs) for s in record.STATES}
    log.info(
        f"atml study: {states['done']} of {total} jobs done"
        + "".join(f", {n} {s}" for s, n in states.items() if n and s != "done")
        + f"; summary: {folder / 'summary.md'}"
    )
    if interrupted or states["interrupted"] or states["pending"]:
        log.error(f"atml study: interrupted; continue with: atml study resume {folder}")
        return 130
    failed = [j for j in study.jobs if j.state == "failed"]
    if failed:
        log.error(f"atml study: {len(failed)} job(s) failed, first {failed[0].name}: {failed[0].reason}")
        return failed[0].exit_code or 1
    return 0


def check_resumable(folder: Path, study: Study) -> None:
    """The same code and, per job, the same resolved configs as when the study was made; else a
    UserError naming what differs (its numbers would not be one study's)."""
    now = git_commit()
    if study.git_commit and now and study.git_commit != now:
        raise UserError(
            f"{folder} was made by atml at commit {study.git_commit}; this is {now}: resume it with the "
            "code it was made with (its cells would not be comparable)"
        )
    axes = [grid.Axis(k, tuple(v)) for k, v in study.axes.items()]
    jobs = {j.name: j for j in _jobs(_cells(_base(study), axes))}
    for job in study.jobs:
        if job.state != "done" and (
            job.name not in jobs or jobs[job.name].config_sha256 != job.config_sha256
        ):
            raise UserError(
                f"{folder}: job {job.name}'s config would now resolve differently (its default config or a "
                "preset changed since the study was made); resume it with the settings it was made with"
            )


def resume(folder: Path, launcher: dict | None, execute: launchers.Execute) -> int:
    study = record.load(folder)
    check_resumable(folder, study)
    if launcher:
        study.launcher = launcher
    return run(folder, study, execute)


def cancel(folder: Path) -> str:
    """Stop the process running the study: it stops its jobs the way a scheduler does (SIGTERM:
    each ends resumable) and records them interrupted. Returns what was done."""
    study = record.load(folder)
    pid, _, host = (study.runner or "").partition("@")
    if not pid or host != socket.gethostname():
        return f"no process on this host runs {folder}" + (f" (it runs on {host})" if host else "")
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        study.runner = None
        for job in study.jobs:
            if job.state == "running":
                job.state, job.reason = "interrupted", "the study's process had ended"
        record.save(folder, study)
        return "its process had already ended; running jobs are recorded as interrupted"
    for _ in range(600):
        if record.load(folder).runner is None:
            return f"stopped process {pid}; continue with: atml study resume {folder}"
        time.sleep(0.1)
    return f"sent SIGTERM to process {pid}; it has not finished stopping yet"
