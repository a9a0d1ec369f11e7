"""Runs an experiment into run folders: one folder per seed, its parts in order, a seed summary
beside several seeds, resume of an interrupted folder, and `run all`. The CLI only parses."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

from atml import distributed, experiments, seed_summary
from atml.config import has_key, presets, resolve, validate
from atml.errors import (
    MESSAGE_LIMIT,
    DamagedFileError,
    OutputWriteError,
    TrainingDivergedError,
    UnexpectedError,
    UserError,
    first_line,
    shorten,
)
from atml.experiments import Experiment
from atml.runs import FollowerRun, Run
from atml.runtime import describe_device
from atml.seeding import seed_everything
from atml.tables import text_table
from atml.tracking import make_tracker

log = logging.getLogger("atml")


@dataclass(frozen=True)
class RunRequest:
    """What `atml run EXP` was asked for, parsed and checked."""

    experiment: Experiment
    parts: list[str]
    flags: dict
    sets: list[str]
    config_file: Path | None
    smoke: bool
    seeds: list[int | None]  # None: the config's own seed
    summarise: bool  # --seeds: a summary folder beside the seeds' folders
    out: Path
    label: str
    device: object
    tracker: str = "none"
    preset: str | None = None  # configs/EXP.PRESET.yaml over the defaults


def select_parts(exp: Experiment, requested: list[str] | None) -> list[str]:
    for part in requested or ():
        if part not in exp.parts:
            raise UserError(f"unknown part '{part}' of {exp.name}; accepted: {', '.join(exp.parts)}")
    return [p for p in exp.parts if p in requested] if requested else list(exp.parts)


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


def run_seeds(request: RunRequest) -> None:
    """One experiment under each seed, each into its own run folder; with several, a summary
    folder of mean ± std beside them."""
    exp = request.experiment
    runs, rows, first_config = {}, {}, None
    for s in request.seeds:
        raw, cfg = resolve(
            exp.name,
            exp.config,
            preset=request.preset,
            config_file=request.config_file,
            smoke=request.smoke,
            flags=request.flags | ({"seed": s} if s is not None else {}),
            sets=request.sets,
        )
        ctx = exp.prepare(cfg, request.device, request.parts)
        env = {
            "experiment": exp.name,
            "parts": request.parts,
            "seed": cfg.seed,
            "smoke": request.smoke,
            "preset": request.preset,
            "device": str(request.device),
            "device_name": describe_device(request.device),
            "world_size": distributed.world_size(),
        }
        label = f"{request.label}-seed{cfg.seed}" if request.summarise else request.label
        handle = _create_run(request.out, exp.name, label, raw, env)
        rows[cfg.seed] = execute(exp, ctx, handle, request.tracker)
        runs[cfg.seed] = handle
        first_config = first_config or raw
    if request.summarise and distributed.is_main():
        summary_rows = seed_summary.summary_rows(rows)
        folder = seed_summary.write(request.out, exp.name, request.label, first_config, runs, summary_rows)
        log.info(f"\n{exp.name} over seeds {', '.join(map(str, runs))}:\n{text_table(summary_rows)}")
        log.info(f"\natml: seed summary: {folder.dir / 'summary.md'}")


def resume(exp: Experiment, folder: Path, device, tracker: str) -> None:
    """Continue a run folder with its own config and parts; finished parts are kept."""
    handle = Run.open(folder) if distributed.is_main() else FollowerRun(folder)
    if handle.env.get("experiment") != exp.name:
        raise UserError(f"{folder} is a run of '{handle.env.get('experiment')}', not '{exp.name}'")
    problem = exp.metrics_problem(handle.metrics)
    if problem:
        raise DamagedFileError(f"{folder / 'metrics.json'} is damaged: {problem}; this run cannot be resumed")
    cfg = validate(handle.config, exp.config)
    ctx = exp.prepare(cfg, device, select_parts(exp, handle.env.get("parts")))
    execute(exp, ctx, handle, tracker)


def run_all(request: RunRequest) -> None:
    """Every experiment in turn, each with the --set keys its schema has; one that fails is
    reported and the others still run; the exit code is the first failure's."""
    chosen = {
        name: [s for s in request.sets if has_key(exp.config, s.partition("=")[0].strip())]
        for name, exp in ((n, experiments.get(n)) for n in experiments.EXPERIMENTS)
    }
    unused = [s for s in request.sets if not any(s in sets for sets in chosen.values())]
    if unused:
        raise UserError(f"--set {unused[0]}: no experiment has this config key (see `atml config EXP`)")
    with_preset = {name for name in chosen if request.preset in presets(name)}
    if request.preset is not None and not with_preset:
        raise UserError(f"unknown preset '{request.preset}': no experiment has it (see `atml list`)")
    failed: dict[str, int] = {}
    done: list[str] = []
    try:
        for name, sets in chosen.items():
            exp = experiments.get(name)
            try:
                preset = request.preset if name in with_preset else None
                if request.preset is not None and preset is None:
                    log.info(f"atml: {name} has no preset '{request.preset}'; it runs with its own settings")
                run_seeds(replace(request, experiment=exp, parts=list(exp.parts), sets=sets, preset=preset))
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
            f"\natml run all: {len(done)} of {len(chosen)} experiments done"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + (
                f"; not run: {', '.join(n for n in chosen if n not in done and n not in failed)}"
                if len(done) + len(failed) < len(chosen)
                else ""
            )
        )
    if failed:
        raise SystemExit(next(iter(failed.values())))


def unexpected(exc: BaseException, where: str, traceback_file: Path | None) -> UnexpectedError:
    """An exception atml did not foresee, as one line: what and where, its traceback written to
    `traceback_file` (a run folder's error.txt) or, before any run folder exists, a temporary file."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    try:
        if traceback_file is None:
            fd, name = tempfile.mkstemp(prefix="atml-error-", suffix=".txt")
            os.close(fd)
            traceback_file = Path(name)
        traceback_file.write_text(text)
        pointer = f"traceback in {traceback_file}"
    except OSError:
        pointer = "its traceback could not be written"
    return UnexpectedError(
        f"{where} failed: {type(exc).__name__}: {shorten(first_line(exc))} (atml did not foresee this; "
        f"{pointer})"
    )


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
