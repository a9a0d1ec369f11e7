"""Runs an experiment into run folders: one folder per seed, its parts in order, a seed summary
beside several seeds, resume of an interrupted folder, and `run all`. The CLI only parses."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import time
from pathlib import Path

from atml import distributed, folder_lock, logs, seed_summary
from atml.config import upgrade, validate
from atml.errors import (
    MESSAGE_LIMIT,
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
from atml.runtime import describe_device, hold_threads, pick_device
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
        hold_threads()
        torch_device = distributed.init(pick_device(device))
        if not distributed.is_main():
            logs.setup(main_rank=False)  # rank 0 speaks for all ranks
        yield torch_device
    finally:
        distributed.shutdown()


def prepare_group(exp: Experiment, cfgs: list, device, parts: list[str]) -> list:
    """The run contexts of seeds run as one group (configs that differ only in the seed): one
    `prepare` for all (its data and checks do not depend on the seed), one context per seed."""
    first = exp.prepare(cfgs[0], device, parts)
    return [first, *(dataclasses.replace(first, cfg=cfg) for cfg in cfgs[1:])]


def run(request: RunRequest) -> None:
    """`atml run EXP`: a request resolved by atml.plan."""
    with _session(request.device) as device:
        run_seeds(request, device)


def run_seeds(request: RunRequest, device) -> None:
    """One experiment under each seed, each into its own run folder; with several, a summary
    folder of mean ± std beside them. An experiment that stacks seeds trains them together (one
    process, one data pass per step); the others run them one after another."""
    exp = request.experiment
    groups = [request.configs] if exp.stacks_seeds else [(one,) for one in request.configs]
    runs, rows = {}, {}
    for group in groups:
        ctxs = prepare_group(exp, [one.cfg for one in group], device, request.parts)
        handles = []
        for one in group:
            env = {
                "experiment": exp.name,
                "parts": request.parts,
                "seed": one.seed,
                "smoke": request.smoke,
                "preset": request.preset,
                "device": str(device),
                "device_name": describe_device(device),
                "threads": hold_threads(),
                "world_size": distributed.world_size(),
                "seeds_trained_together": [c.seed for c in group] if len(group) > 1 else None,
            }
            label = f"{request.label}-seed{one.seed}" if request.summarise else request.label
            handles.append(_create_run(request.out, exp.name, label, one.raw, env))
        for one, handle, summary_rows in zip(
            group, handles, execute(exp, ctxs, handles, request.tracker, request.keep_checkpoints)
        ):
            rows[one.seed], runs[one.seed] = summary_rows, handle
    if request.summarise and distributed.is_main():
        summary_rows = seed_summary.summary_rows(rows)
        first_config = request.configs[0].raw
        folder = seed_summary.write(request.out, exp.name, request.label, first_config, runs, summary_rows)
        log.info(f"\n{exp.name} over seeds {', '.join(map(str, runs))}:\n{text_table(summary_rows)}")
        log.info(f"\natml: seed summary: {folder.dir / 'summary.md'}")


def resume(
    exp: Experiment, folders: list[Path], device: str, tracker: str, keep_checkpoints: bool = False
) -> None:
    """Continue run folders with their own configs and parts; finished parts are kept. Several
    folders (the seeds of one --seeds run) continue together where the experiment stacks seeds."""
    with _session(device) as torch_device:
        handles = [Run.open(f, exp) if distributed.is_main() else FollowerRun(f) for f in folders]
        cfgs, parts = [], []
        for handle in handles:
            parts.append(tuple(select_parts(exp, handle.env.get("parts"))))
            cfgs.append(validate(upgrade(handle.config, exp.config), exp.config))
        if len(set(parts)) > 1 or len({c.seed for c in cfgs}) < len(cfgs):
            raise UserError("folders resumed together must be the seeds of one run: same parts, other seeds")
        if exp.stacks_seeds and len({c.model_dump_json(exclude={"seed"}) for c in cfgs}) > 1:
            raise UserError(
                f"{exp.name} resumes its seeds together, as one model: the folders' configs must differ "
                "only in the seed (resume each folder alone)"
            )
        groups = [list(range(len(cfgs)))] if exp.stacks_seeds else [[i] for i in range(len(cfgs))]
        prepared = [
            prepare_group(exp, [cfgs[i] for i in group], torch_device, list(parts[0])) for group in groups
        ]
        for group, ctxs in zip(groups, prepared):
            execute(exp, ctxs, [handles[i] for i in group], tracker, keep_checkpoints)


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


def execute(
    exp: Experiment,
    ctxs: list,
    handles: list[Run],
    tracker_kind: str = "none",
    keep_checkpoints: bool = False,
) -> list[list[dict]]:
    """The parts of runs (one per seed: several when the experiment stacks seeds), in order, into
    their folders; returns each run's summary rows. A part's random draws depend on the run seed
    and their purpose alone (atml.seeding), not on which parts ran before it."""
    folders = " ".join(f"--resume {h.dir}" for h in handles)
    resume_hint = f"atml run {exp.name} {folders}"
    where = describe_device(ctxs[0].device)
    seeds = ", ".join(str(c.seed) for c in ctxs)
    together = f"seeds {seeds} together" if len(ctxs) > 1 else f"seed {seeds}"
    targets = ", ".join(str(h.dir) for h in handles)
    log.info(f"atml: {exp.name} [{', '.join(ctxs[0].parts)}] {together} on {where} → {targets}")
    p, trackers, ended, outer_bars = None, [], "FAILED", logs.open_bars()
    freed = [0] * len(handles)
    try:
        if distributed.is_main():
            trackers = [make_tracker(tracker_kind, h.dir, h.config) for h in handles]
            for h, tracker in zip(handles, trackers):
                if tracker:
                    h.epoch_listeners.append(tracker.log_epoch)
        with _sigterm_as_interrupt(), logs.Level(exp.name, len(ctxs[0].parts), "part") as parts_bar:
            for p in ctxs[0].parts:
                pending = [i for i, h in enumerate(handles) if p not in h.metrics]
                if not pending:
                    log.info(
                        f"== {exp.name}/{p}: already complete in the run folder{'s' * (len(handles) > 1)}"
                    )
                    parts_bar.advance(p)
                    continue
                log.info(f"== {exp.name}/{p}")
                started = time.perf_counter()
                hold_threads()
                results = exp.run_part(p, [ctxs[i] for i in pending], [handles[i] for i in pending])
                for i, result in zip(pending, results):
                    handles[i].record_metrics(p, result)
                    if trackers and trackers[i]:
                        trackers[i].log_part(p, handles[i].metrics[p])
                distributed.barrier()  # the other ranks read what rank 0 recorded
                if not keep_checkpoints:  # what no later part continues from serves --resume no more
                    later = ctxs[0].parts[ctxs[0].parts.index(p) + 1 :]
                    reused = [pattern for q in later for pattern in exp.part(q).reuses]
                    freed = [f + h.drop_checkpoints(keep=reused) for f, h in zip(freed, handles)]
                log.info(f"== {exp.name}/{p} done in {time.perf_counter() - started:.0f} s")
                parts_bar.advance(p)
            distributed.barrier()  # every rank is past its last checkpoint read
            if not keep_checkpoints:
                freed = [f + h.drop_checkpoints() for f, h in zip(freed, handles)]
            ended = "FINISHED"
    except KeyboardInterrupt:
        ended = "KILLED"
        log.error(f"\natml: interrupted; continue with: {resume_hint}")
        raise SystemExit(130) from None
    except TrainingDivergedError as exc:
        raise TrainingDivergedError(f"training diverged: {exc}") from None
    except OutputWriteError as exc:
        raise OutputWriteError(f"{exc}; once it can be written, continue with: {resume_hint}") from None
    except UserError:
        raise
    except Exception as exc:
        raise unexpected(exc, f"{exp.name}/{p}", handles[0].dir / "error.txt") from None
    finally:
        logs.close_bars(keep=outer_bars)
        for tracker in trackers:
            if tracker:
                tracker.close(ended)
        for h in handles:
            folder_lock.release(h.dir)
    all_rows = []
    for h, dropped in zip(handles, freed):
        rows = exp.summary({p: h.metrics[p] for p in ctxs[0].parts})
        log.info(f"\n{text_table(rows)}")
        log.info(f"\natml: done. metrics: {h.dir / 'metrics.json'}  plots: {h.dir / 'plots'}")
        log.info(f"atml: the run folder holds {h.size() / 1e6:,.1f} MB{_dropped(dropped)}")
        all_rows.append(rows)
    return all_rows


def _dropped(freed: int) -> str:
    if not freed:
        return ""
    return f" (its training checkpoints, {freed / 1e6:,.1f} MB, were deleted: --keep-checkpoints keeps them)"


def _create_run(out: Path, experiment: str, label: str, raw: dict, env: dict) -> Run:
    """A new run folder, made by rank 0 alone; the other ranks follow it."""
    handle = None
    try:
        if distributed.is_main():
            handle = Run.create(out, experiment, label, raw, env)
            folder_lock.hold(handle.dir)
    finally:
        # None tells the others rank 0 failed
        folder = distributed.broadcast_object(handle.dir if handle else None)
    if folder is None:
        raise OutputWriteError("rank 0 could not create the run folder")
    return handle or FollowerRun(folder)
