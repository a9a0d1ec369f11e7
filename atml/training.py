"""The one training loop every part uses: epochs over in-memory batches, a step function,
interval logging, per-epoch evaluation, NaN detection, progress with ETA, the seconds spent so
far in each epoch's row, and checkpoints that make an interrupted part resumable.

`fit` trains one model; `fit_stacked` trains N copies at once (one per seed, stacked: see
atml.models.stacked), each with its own history and its own checkpoint in its own run folder, in
the format a lone copy writes: a stacked seed's folder resumes alone, and a lone one joins a stack.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from atml import distributed
from atml.data.batching import TensorBatches
from atml.errors import DamagedFileError, TrainingDivergedError
from atml.logs import Counter, Level
from atml.runs import Run

log = logging.getLogger("atml")

StepFn = Callable[[tuple[torch.Tensor, ...]], dict[str, torch.Tensor]]


class Stateful(Protocol):
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> object: ...


@dataclass
class History:
    steps: list[dict] = field(default_factory=list)  # one row per logging interval
    epochs: list[dict] = field(default_factory=list)  # one row per epoch, with evaluation columns


@dataclass
class Checkpointing:
    """Where fit() saves after every epoch, and the objects whose state it saves and restores.
    `generator`: the one the training's own random draws come from (noise, dropout, flips; None:
    it draws nothing but its batches' order, which `states` holds)."""

    run: Run
    key: str
    states: dict[str, Stateful]
    generator: torch.Generator | None = None

    def rng(self) -> dict:
        return {} if self.generator is None else {"torch": self.generator.get_state()}

    def set_rng(self, state: dict) -> None:
        if self.generator is not None:
            self.generator.set_state(state["torch"])


def _means(sums: dict[str, torch.Tensor], count: int, k: int) -> dict[str, float]:
    return {name: (v[k] / count).item() for name, v in sums.items()}


def _check_finite(
    values: dict[str, float], label: str, step: int, checkpointing: Checkpointing | None
) -> None:
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        where = ""
        if checkpointing is not None:
            path = checkpointing.run.checkpoint_path(checkpointing.key)
            where = (
                f"; the last good epoch is in {path}"
                if path.is_file()
                else "; no epoch had completed, so there is no checkpoint"
            )
        raise TrainingDivergedError(
            f"{label}: {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}{where}"
        )


class Progress:
    """A line per epoch with the numbers that matter for it (`shown`; the history CSV keeps every
    number); inside an epoch, a counter of batches (live on a terminal, a line at every ~10 % or
    30 s in a log file)."""

    def __init__(self, label: str, epochs: int, steps_per_epoch: int, shown: tuple[str, ...] = ()):
        self.label, self.epochs, self.steps_per_epoch, self.shown = label, epochs, steps_per_epoch, shown
        self.started = time.perf_counter()
        self.counter: Counter | None = None
        self.epochs_bar: Level | None = None

    def step(self, epoch: int, i: int) -> None:
        if self.epochs_bar is None:
            self.epochs_bar = Level(self.label, self.epochs, "epoch", done=epoch)
        if self.counter is None or i == 1:
            # batches by time only: each epoch has its own line
            label = f"{self.label} (epoch {epoch + 1}/{self.epochs}) batch"
            self.counter = Counter(label, self.steps_per_epoch, shares=False)
        if i < self.steps_per_epoch:  # the epoch's own line closes it
            self.counter.update(i)

    def epoch(self, epoch: int, first_epoch: int, row: dict) -> None:
        done = epoch + 1 - first_epoch
        per_epoch = (time.perf_counter() - self.started) / max(done, 1)
        eta = per_epoch * (self.epochs - epoch - 1)
        keys = self.shown or [k for k, v in row.items() if isinstance(v, float)]
        shown = "  ".join(f"{k} {row[k]:.4g}" for k in keys if isinstance(row.get(k), float))
        if self.counter is not None:
            self.counter.close()
        log.info(
            f"  {self.label} epoch {epoch + 1}/{self.epochs}  {shown}  "
            f"[{per_epoch:.1f}s/epoch, ETA {eta:.0f}s]"
        )
        if self.epochs_bar is not None:
            self.epochs_bar.advance()
            if epoch + 1 == self.epochs:
                self.epochs_bar.close()


def _restore(saved: object, checkpointing: Checkpointing) -> tuple[History, int]:
    """Load a checkpoint's states into the live objects; anything foreign or mismatched is one
    DamagedFileError naming the file."""
    try:
        for name, obj in checkpointing.states.items():
            obj.load_state_dict(saved["states"][name])
        checkpointing.set_rng(saved["rng"])
        return History(list(saved["history"]["steps"]), list(saved["history"]["epochs"])), int(
            saved["epoch"]
        ) + 1
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise checkpointing.run.damaged_checkpoint(checkpointing.key, exc) from None


def fit(
    step: StepFn,
    batches: TensorBatches,
    epochs: int,
    *,
    label: str,
    log_every: int = 50,
    evaluate: Callable[[int], dict] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    checkpointing: Checkpointing | None = None,
    shown: tuple[str, ...] = (),
) -> History:
    """Run `step` on every batch for `epochs` epochs: `fit_stacked` with one copy."""
    (history,) = fit_stacked(
        lambda batch: {name: value.reshape(1) for name, value in step(batch).items()},
        batches,
        epochs,
        label=label,
        log_every=log_every,
        evaluate=None if evaluate is None else (lambda epoch: [evaluate(epoch)]),
        on_epoch_end=on_epoch_end,
        checkpointing=None if checkpointing is None else [checkpointing],
        shown=shown,
    )
    return history


def _epoch(saved: object) -> object:
    return saved.get("epoch") if isinstance(saved, dict) else None


NONE = -1  # the state before any save: a copy killed before its first one restarts every copy


def _load_stack(checkpointing: list[Checkpointing], label: str) -> list[dict] | None:
    """Each copy's checkpoint of the last epoch that every copy saved, or None when none saved one.
    The copies of a stack are saved one after another, so a process killed between two saves leaves
    some copies an epoch ahead; their previous epoch is still beside it (see _save_stack)."""
    saved = [[c.run.load_checkpoint(c.key)] for c in checkpointing]
    if len({_epoch(s[0]) for s in saved}) == 1:
        return None if saved[0][0] is None else [s[0] for s in saved]
    for c, s in zip(checkpointing, saved):
        s.append(c.run.load_checkpoint(c.key, previous=True))
    found = [{_epoch(x) for x in s if x is not None} for s in saved]
    for f, (current, _) in zip(found, saved):
        if current is None or _epoch(current) == 0:  # before its first save, or just after it
            f.add(NONE)
    common = set.intersection(*found) - {None}
    if common == {NONE}:
        log.info(
            f"  {label}: resuming from the start (a seed's first checkpoint was cut before every seed "
            "saved one)"
        )
        return None
    common.discard(NONE)
    if not common:
        where = ", ".join(
            f"{c.run.dir.name}: {sorted(e + 1 for e in f if isinstance(e, int) and e != NONE) or 'none'}"
            for c, f in zip(checkpointing, found)
        )
        raise DamagedFileError(
            f"{label}: the seeds' checkpoints share no epoch (epochs saved: {where}); resume each "
            "run folder alone (atml run EXP --resume FOLDER): a seed gives the same numbers alone"
        )
    epoch = max(common)
    chosen = []
    for c, (current, previous) in zip(checkpointing, saved):
        if _epoch(current) != epoch:
            c.run.restore_previous_checkpoint(c.key)
        chosen.append(current if _epoch(current) == epoch else previous)
    return chosen


def _resume(checkpointing: list[Checkpointing], label: str, epochs: int) -> tuple[list[History], int]:
    """Every copy's history and the epoch to start from: all from their checkpoints, or none."""
    distributed.barrier()  # under torchrun: every rank sees the checkpoint rank 0 last wrote
    saved = _load_stack(checkpointing, label)
    if saved is None:
        return [History() for _ in checkpointing], 0
    restored = [_restore(s, c) for s, c in zip(saved, checkpointing)]
    first_epoch = restored[0][1]
    if first_epoch < epochs:
        log.info(f"  {label}: resuming after epoch {first_epoch}/{epochs}")
    return [h for h, _ in restored], first_epoch


def _save_stack(checkpointing: list[Checkpointing], histories: list[History], epoch: int) -> None:
    """Every copy's checkpoint after `epoch`. Until the last copy's is written, each earlier copy
    keeps its previous epoch's beside the new one, so a resume can always start all copies from
    one epoch; one copy alone needs no such step (its file is replaced atomically)."""
    stacked = len(checkpointing) > 1
    for c, history in zip(checkpointing, histories):
        if stacked:
            c.run.keep_previous_checkpoint(c.key)
        c.run.save_checkpoint(
            c.key,
            {
                "epoch": epoch,
                "rng": c.rng(),
                "history": {"steps": history.steps, "epochs": history.epochs},
                "states": {name: obj.state_dict() for name, obj in c.states.items()},
            },
        )
    if stacked:
        for c in checkpointing:
            c.run.drop_previous_checkpoint(c.key)


def fit_stacked(
    step: StepFn,
    batches,
    epochs: int,
    *,
    label: str,
    log_every: int = 50,
    evaluate: Callable[[int], list[dict]] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    checkpointing: list[Checkpointing] | None = None,
    copies: list[str] | None = None,
    shown: tuple[str, ...] = (),
) -> list[History]:
    """Run `step` on every batch for `epochs` epochs for N stacked copies: `step` returns each
    logged value as an [N] tensor, `evaluate` one row per copy, `checkpointing` one per copy (all
    resume, or none). With checkpoints, a finished run returns its stored histories at once.
    `copies`: the copies' names in messages (e.g. seed 0, seed 1); `shown`: the logged values each
    epoch's line shows (all, if empty).
    Kept in one piece (over 60 lines): the order of step, interval logging, NaN check,
    evaluation, checkpoint and progress is the loop's contract and reads best top to bottom."""
    n = len(checkpointing) if checkpointing else len(copies or [None])
    named = [f"{label} ({c})" for c in copies] if copies and n > 1 else [label] * n
    histories, first_epoch = [History() for _ in range(n)], 0
    if checkpointing is not None:
        histories, first_epoch = _resume(checkpointing, label, epochs)
    steps_per_epoch = len(batches)
    progress = Progress(label if n == 1 else f"{label} ×{n}", epochs, steps_per_epoch, shown)
    global_step = first_epoch * steps_per_epoch
    trained_seconds = histories[0].epochs[-1].get("time_s", 0.0) if histories[0].epochs else 0.0
    for epoch in range(first_epoch, epochs):
        epoch_started = time.perf_counter()
        interval: dict[str, torch.Tensor] = {}
        epoch_sums: dict[str, torch.Tensor] = {}
        in_interval = 0
        for i, batch in enumerate(batches, start=1):
            values = step(batch)
            for name, v in values.items():
                v = v.detach().float()
                interval[name] = interval[name] + v if name in interval else v.clone()
                epoch_sums[name] = epoch_sums[name] + v if name in epoch_sums else v.clone()
            in_interval += 1
            global_step += 1
            if in_interval == log_every or i == steps_per_epoch:
                for k, history in enumerate(histories):
                    means = _means(interval, in_interval, k)
                    _check_finite(means, named[k], global_step, checkpointing[k] if checkpointing else None)
                    history.steps.append({"step": global_step, "epoch": epoch + i / steps_per_epoch, **means})
                interval, in_interval = {}, 0
            progress.step(epoch, i)
        evaluated = evaluate(epoch) if evaluate is not None else [{}] * n
        trained_seconds += time.perf_counter() - epoch_started
        for k, history in enumerate(histories):
            row = {"epoch": epoch + 1, "step": global_step, **_means(epoch_sums, steps_per_epoch, k)}
            row.update(evaluated[k])
            row["time_s"] = trained_seconds  # training + evaluation so far, across resumes
            history.epochs.append(row)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if checkpointing is not None:
            _save_stack(checkpointing, histories, epoch)
            for saved, history in zip(checkpointing, histories):  # after the save: none logged twice
                saved.run.log_epoch(saved.key, history.epochs[-1])
        progress.epoch(epoch, first_epoch, histories[0].epochs[-1])
    return histories
