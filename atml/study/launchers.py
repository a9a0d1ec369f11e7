"""Where a study's jobs run. `local`: one after another in this process (atml's own run path,
through the CLI's `execute`). `processes`: up to N `atml run` processes on this machine at once,
the cores split between them (and one GPU each where there are several). Either way a job is one
`atml run` command line, so a job gives the numbers that command gives alone. The CLI hands the
engine its `execute` for the local launcher (this package does not import the CLI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atml.errors import UserError
from atml.records import read_env

LAUNCHERS = ("local", "processes", "slurm")


@dataclass
class Launch:
    name: str
    argv: list[str]  # after `atml`
    folder: Path  # the job's own folder: its run folders and its log
    extra: list[str]  # the options a --resume of its runs keeps (device, tracker)


Started = Callable[[Launch, str], None]  # the launch, its job id
Ended = Callable[[Launch, int, str], None]  # the launch, its exit code, its one-line reason


def check_launcher(kind: str, workers: int) -> None:
    if kind not in LAUNCHERS:
        raise UserError(f"unknown launcher '{kind}'; accepted: {', '.join(LAUNCHERS)}")
    if workers < 1 or workers > 256:
        raise UserError(f"--workers {workers}: give 1 … 256")
    if kind != "processes" and workers != 1:
        raise UserError("--workers goes with --launcher processes (SLURM runs as many as it may)")


Execute = Callable[[list[str]], tuple[int, str]]  # atml.cli.execute: a command line's exit code and reason


def run_local(launches: list[Launch], started: Started, ended: Ended, execute: Execute) -> None:
    """Each job in this process, in turn, through the CLI's own `execute`; Ctrl-C or SIGTERM ends
    the job (resumable) and the study."""
    for launch in launches:
        started(launch, f"local:{os.getpid()}")
        code, reason = execute(launch.argv)
        ended(launch, code, reason)
        if code == 130:
            raise KeyboardInterrupt


def _gpu_slots(device: str) -> list[str | None]:
    """One GPU per worker where several are visible; else no pinning."""
    if device == "cpu":
        return [None]
    import torch

    count = torch.cuda.device_count()
    return [str(i) for i in range(count)] if count > 1 else [None]


def run_processes(launches: list[Launch], started: Started, ended: Ended, workers: int, device: str) -> None:
    """Up to `workers` jobs at once, each an `atml run` process with its log in its folder and the
    threads the user chose (--threads, or OMP_NUM_THREADS already set), else its share of the cores.
    Ctrl-C or SIGTERM stops every running job the way a scheduler does (SIGTERM: each ends
    resumable, exit 130)."""
    queue = list(launches)
    running: dict[subprocess.Popen, tuple[Launch, str | None]] = {}
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // workers))
    slots = _gpu_slots(device)
    try:
        while queue or running:
            while queue and len(running) < workers:
                launch = queue.pop(0)
                busy = [slot for _, slot in running.values()]
                slot = min(slots, key=busy.count)
                process = _start(launch, threads, slot)
                running[process] = (launch, slot)
                started(launch, f"pid:{process.pid}")
            for process in [p for p in running if p.poll() is not None]:
                launch, _ = running.pop(process)
                ended(launch, process.returncode, last_error(launch.folder / "log.txt"))
            time.sleep(0.2)
    except KeyboardInterrupt:
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process, (launch, _) in running.items():
            process.wait()
            ended(launch, process.returncode, last_error(launch.folder / "log.txt") or "interrupted")
        raise


def _start(launch: Launch, threads: str, gpu: str | None) -> subprocess.Popen:
    launch.folder.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    with open(launch.folder / "log.txt", "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "atml", *launch.argv],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches the study, which stops its jobs
        )


def run_folders(folder: Path, experiment: str) -> dict[int | None, str]:
    """The run folders a job made under its folder (not a seed summary), by seed."""
    runs = {}
    for env_file in sorted((Path(folder) / experiment).glob("*/env.json")):
        try:
            env = read_env(env_file.parent, "")
        except UserError:
            continue  # a folder killed before its records were written: a new run replaces it
        if env.kind == "run":
            runs[env.seed] = str(env_file.parent)
    return runs


def last_error(log_file: Path) -> str:
    """The last line a job said about its failure (`atml: error: …`, `atml: interrupted …`)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    said = [s for s in lines if s.startswith("atml: ") and ("error" in s or "interrupted" in s)]
    return said[-1].strip()[:500] if said else ""
