"""Runs an experiment into run folders: one folder per seed, its parts in order, a seed summary
beside several seeds, resume of an interrupted folder, and `run all`. The CLI only parses."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from pathlib import Path

from atml import distributed, logs, seed_summary
from atml.config import validate
from atml.errors import (
    MESSAGE_LIMIT,
    DamagedFileError,
    OutputWriteError,
    TrainingDivergedError,
    UnexpectedError,
    UserError,
    shorten,
    unexpected,
)
from atml.experiments import Experiment
from atml.plan import RunRequest, select_parts
from atml.runs import FollowerRun, Run
from atml.runtime import describe_device, pick_device
from atml.seeding import seed_everything
from atml.tables import text_table
from atml.tracking import make_tracker

log = logging.getLogger("atml")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a batch scheduler's stop, `kill`) ends a run like Ctrl-C: resumable, exit 130."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _session(device: str):
    """The device a run uses (under torchrun, this rank's), and the process group closed after."""
    try:
        torch_device = distributed.init(pick_device(device))
        if not distributed.is_main():
            logs.setup(main_rank=False)  # rank 0 speaks for all ranks
        yield torch_device
    finally:
        distributed.shutdown()


def run(request: RunRequest) -> None:
    """`atml run EXP`: a request resolved by atml.plan."""
    with _session(request.device) as device:
        run_seeds(request, device)


def run_seeds(request: RunRequest, device) -> None:
    """One experiment under each seed, each into its own run folder; with several, a summary
    folder of mean ± std beside them."""
    exp = request.experiment
    runs, rows = {}, {}
    for one in request.configs:
        ctx = exp.prepare(one.cfg, device, request.parts)
        env = {
            "experiment": exp.name,
            "parts": request.parts,
            "seed": one.seed,
            "smoke": request.smoke,
            "preset": request.preset,
            "device": str(device),
            "device_name": describe_device(device),
            "world_size": distributed.world_size(),
        }
        label = f"{request.label}-seed{one.seed}" if request.summarise else request.label
        handle = _create_run(request.out, exp.name, label, one.raw, env)
        rows[one.seed] = execute(exp, ctx, handle, request.tracker)
        runs[one.seed] = handle
    if request.summarise and distributed.is_main():
        summary_rows = seed_summary.summary_rows(rows)
        first_config = request.configs[0].raw
        folder = seed_summary.write(request.out, exp.name, request.label, first_config, runs, summary_rows)
        log.info(f"\n{exp.name} over seeds {', '.join(map(str, runs))}:\n{text_table(summary_rows)}")
        log.info(f"\natml: seed summary: {folder.dir / 'summary.md'}")


def resume(exp: Experiment, folder: Path, device: str, tracker: str) -> None:
    """Continue a run folder with its own config and parts; finished parts are kept."""
    with _session(device) as torch_device:
        handle = Run.open(folder) if distributed.is_main() else FollowerRun(folder)
        if handle.env.get("experiment") != exp.name:
            raise UserError(f"{folder} is a run of '{handle.env.get('experiment')}', not '{exp.name}'")
        problem = exp.metrics_problem(handle.metrics)
        if problem:
            raise DamagedFileError(
                f"{folder / 'metrics.json'} is damaged: {problem}; this run cannot be resumed"
            )
        cfg = validate(handle.config, exp.config)
        ctx = exp.prepare(cfg, torch_device, select_parts(exp, handle.env.get("parts")))
        execute(exp, ctx, handle, tracker)


def run_all(plans: list[RunRequest]) -> None:
    """Every experiment in turn (atml.plan.plan_all checked their configs); one that fails is
    reported and the others still run; the exit code is the first failure's."""
    failed: dict[str, int] = {}
    done: list[str] = []
    names = [p.experiment.name for p in plans]
    with _session(plans[0].device) as device:
        try:
            for request in plans:
                name = request.experiment.name
                try:
                    if plans[0].preset is not None and request.preset is None:
                        log.info(
                            f"atml: {name} has no preset '{plans[0].preset}'; it runs with its own settings"
                        )
                    run_seeds(request, device)
                    done.append(name)
                except (UserError, TrainingDivergedError, UnexpectedError) as exc:
                    log.error(f"atml: {name} FAILED: {shorten(str(exc), MESSAGE_LIMIT)}")
                    failed[name] = exc.exit_code
                except SystemExit as exc:  # an interrupted experiment ends the whole run
                    failed[name] = exc.code if isinstance(exc.code, int) else 1
                    raise
                except Exception as exc:  # noqa: BLE001 — one experiment's bug must not stop the others
                    error = unexpected(exc, name, None)
                    log.error(f"atml: {name} FAILED: {error}")
                    failed[name] = error.exit_code
        finally:
            log.info(
                f"\natml run all: {len(done)} of {len(names)} experiments done"
                + (f"; failed: {', '.join(failed)}" if failed else "")
                + (
                    f"; not run: {', '.join(n for n in names if n not in done and n not in failed)}"
                    if len(done) + len(failed) < len(names)
                    else ""
                )
            )
    if failed:
        raise SystemExit(next(iter(failed.values())))


def execute(exp: Experiment, ctx, handle: Run, tracker_kind: str = "none") -> list[dict]:
    """The parts of one run, in order, into its folder; returns its summary rows. Every part
    starts from the run's seed, so its numbers do not depend on which parts ran before it."""
    resume_hint = f"atml run {exp.name} --resume {handle.dir}"
    where = describe_device(ctx.device)
    log.info(f"atml: {exp.name} [{', '.join(ctx.parts)}] seed {ctx.seed} on {where} → {handle.dir}")
    p, tracker = None, None
    try:
        if distributed.is_main():
            tracker = make_tracker(tracker_kind, handle.dir, handle.config)
        with _sigterm_as_interrupt():
            for p in ctx.parts:
                if p in handle.metrics:
                    log.info(f"== {exp.name}/{p}: already complete in this run folder")
                    continue
                log.info(f"== {exp.name}/{p}")
                started = time.perf_counter()
                seed_everything(ctx.seed)
                handle.record_metrics(p, exp.run_part(p, ctx, handle))
                if tracker:
                    tracker.log_part(p, handle.metrics[p])
                distributed.barrier()  # the other ranks read what rank 0 recorded
                log.info(f"== {exp.name}/{p} done in {time.perf_counter() - started:.0f} s")
    except KeyboardInterrupt:
        log.error(f"\natml: interrupted; continue with: {resume_hint}")
        raise SystemExit(130) from None
    except TrainingDivergedError as exc:
        raise TrainingDivergedError(f"training diverged: {exc}") from None
    except OutputWriteError as exc:
        raise OutputWriteError(f"{exc}; once it can be written, continue with: {resume_hint}") from None
    except UserError:
        raise
    except Exception as exc:
        raise unexpected(exc, f"{exp.name}/{p}", handle.dir / "error.txt") from None
    finally:
        if tracker:
            tracker.close()
    rows = exp.summary({p: handle.metrics[p] for p in ctx.parts})
    log.info(f"\n{text_table(rows)}")
    log.info(f"\natml: done. metrics: {handle.dir / 'metrics.json'}  plots: {handle.dir / 'plots'}")
    return rows


def _create_run(out: Path, experiment: str, label: str, raw: dict, env: dict) -> Run:
    """A new run folder, made by rank 0 alone; the other ranks follow it."""
    handle = None
    try:
        if distributed.is_main():
            handle = Run.create(out, experiment, label, raw, env)
    finally:
        # None tells the others rank 0 failed
        folder = distributed.broadcast_object(handle.dir if handle else None)
    if folder is None:
        raise OutputWriteError("rank 0 could not create the run folder")
    return handle or FollowerRun(folder)
