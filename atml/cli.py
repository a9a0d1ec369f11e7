"""The atml command line: run / list / config / data. Thin: parse, resolve, then call."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer
import yaml

from atml import distributed, experiments
from atml.config import resolve, validate
from atml.errors import OutputWriteError, TrainingDivergedError, UserError
from atml.runs import FollowerRun, Run, check_output_root, check_run_name
from atml.runtime import describe_device, pick_device, seed_everything
from atml.tables import text_table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Rerun five classic deep-learning experiments as measured, reproducible runs.")
data_app = typer.Typer(no_args_is_help=True, help="Find, fetch or fake the datasets atml uses.")
app.add_typer(data_app, name="data")


def _parts(exp, requested: list[str] | None) -> list[str]:
    for part in requested or ():
        if part not in exp.PARTS:
            raise UserError(f"unknown part '{part}' of {exp.NAME}; accepted: {', '.join(exp.PARTS)}")
    return [p for p in exp.PARTS if p in requested] if requested else list(exp.PARTS)


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


EXPERIMENT_FLAGS = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=EXPERIMENT_FLAGS,
             epilog="\b\nEach experiment's own flags go after its name (see `atml list`):\n" + experiments.flags_help())
def run(
    ctx: typer.Context,
    experiment: str = typer.Argument(..., help=" | ".join(experiments.EXPERIMENTS) + " (see `atml list`)"),
    part: Optional[list[str]] = typer.Option(None, "--part", help="run only this part (repeatable)"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML merged over the defaults"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="key=value override, e.g. train.epochs=5 (repeatable)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    seed: Optional[int] = typer.Option(None, help="overrides the config's seed"),
    smoke: bool = typer.Option(False, "--smoke", help="tiny data and epochs: seconds on a CPU"),
    out: Optional[Path] = typer.Option(None, "--out", help="root folder of run folders  [default: outputs]"),
    name: Optional[str] = typer.Option(None, "--name", help="run folder suffix"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run folder from its checkpoints"),
) -> None:
    """Run an experiment (all parts, or those named by --part) into a new run folder."""
    exp = experiments.get(experiment)
    torch_device = distributed.init(pick_device(device))
    if not distributed.is_main():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — rank 0 speaks for all ranks
    if resume is not None:
        given = [flag for flag, value in (("--config", config), ("--set", set_), ("--seed", seed), ("--part", part),
                                          ("--out", out), ("--name", name)) if value is not None]
        given += ["--smoke"] * smoke + ctx.args
        if given:
            raise UserError(f"--resume continues a run with its own config, parts and folder; drop {' '.join(given)}")
        handle = Run.open(resume) if distributed.is_main() else FollowerRun(resume)
        if handle.env.get("experiment") != exp.NAME:
            raise UserError(f"{resume} is a run of '{handle.env.get('experiment')}', not '{exp.NAME}'")
        cfg = validate(handle.config, exp.Config)
        parts = _parts(exp, handle.env.get("parts"))
        exp.prepare(cfg, torch_device, parts)
    else:
        flags = experiments.parse_flags(exp, ctx.args) | ({"seed": seed} if seed is not None else {})
        out = out or Path("outputs")
        check_output_root(out)
        label = check_run_name(name) if name else ("smoke" if smoke else "-".join(part) if part else "all")
        raw, cfg = resolve(exp.NAME, exp.Config, config_file=config, smoke=smoke, flags=flags, sets=set_ or ())
        parts = _parts(exp, part)
        exp.prepare(cfg, torch_device, parts)
        handle = _create_run(out, exp.NAME, label, raw, env={
            "experiment": exp.NAME, "parts": parts, "seed": cfg.seed, "smoke": smoke,
            "device": str(torch_device), "device_name": describe_device(torch_device), "world_size": distributed.world_size(),
        })
    seed_everything(cfg.seed)
    resume_hint = f"atml run {exp.NAME} --resume {handle.dir}"
    print(f"atml: {exp.NAME} [{', '.join(parts)}] on {describe_device(torch_device)} → {handle.dir}", flush=True)
    try:
        with _sigterm_as_interrupt():
            for p in parts:
                if p in handle.metrics:
                    print(f"== {exp.NAME}/{p}: already complete in this run folder")
                    continue
                print(f"== {exp.NAME}/{p}", flush=True)
                started = time.perf_counter()
                handle.record_metrics(p, exp.run_part(p, cfg, handle, torch_device))
                distributed.barrier()  # the other ranks read what rank 0 recorded
                print(f"== {exp.NAME}/{p} done in {time.perf_counter() - started:.0f} s", flush=True)
    except KeyboardInterrupt:
        print(f"\natml: interrupted; continue with: {resume_hint}", file=sys.stderr)
        raise SystemExit(130) from None
    except TrainingDivergedError as exc:
        print(f"atml: training diverged: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except OutputWriteError as exc:
        print(f"atml: error: {exc}; once it can be written, continue with: {resume_hint}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    print(f"\n{text_table(exp.summary({p: handle.metrics[p] for p in parts}))}")
    print(f"\natml: done. metrics: {handle.dir / 'metrics.json'}  plots: {handle.dir / 'plots'}")


def _create_run(out: Path, experiment: str, label: str, raw: dict, env: dict) -> Run:
    """A new run folder, made by rank 0 alone; the other ranks follow it."""
    handle = None
    try:
        if distributed.is_main():
            handle = Run.create(out, experiment, label, raw, env)
    finally:
        folder = distributed.broadcast_object(handle.dir if handle else None)  # None tells the others rank 0 failed
    if folder is None:
        raise OutputWriteError("rank 0 could not create the run folder")
    return handle or FollowerRun(folder)


@app.command("list")
def list_() -> None:
    """The experiments, their parts and their flags."""
    for name in experiments.EXPERIMENTS:
        exp = experiments.get(name)
        print(f"{name}: {exp.__doc__.strip().splitlines()[0]}\n  parts: {', '.join(exp.PARTS)}")
        print("  flags: " + ("none" if not exp.FLAGS else "\n    " + "\n    ".join(f.describe() for f in exp.FLAGS)))


@app.command("config", context_settings=EXPERIMENT_FLAGS)
def config_(
    ctx: typer.Context,
    experiment: str,
    config: Optional[Path] = typer.Option(None, "--config"),
    set_: Optional[list[str]] = typer.Option(None, "--set"),
    smoke: bool = typer.Option(False, "--smoke"),
) -> None:
    """Print the resolved config of an experiment as YAML (takes the experiment's flags too)."""
    exp = experiments.get(experiment)
    flags = experiments.parse_flags(exp, ctx.args)
    raw, _ = resolve(exp.NAME, exp.Config, config_file=config, smoke=smoke, flags=flags, sets=set_ or ())
    print(yaml.safe_dump(raw, sort_keys=False), end="")


def _dataset(name: str) -> str:
    from atml.data.images import NAMES

    if name not in NAMES:
        raise UserError(f"unknown dataset '{name}'; accepted: {', '.join(NAMES)}")
    return name


@data_app.command("check")
def data_check(root: Path = typer.Option(Path("data"), help="data root to look in (torchvision layout)")) -> None:
    """Where each dataset and each pretrained weights file is found, or what is missing."""
    from atml.data.images import NAMES, SPLITS, where
    from atml.experiments.clip import ClipModelConfig
    from atml.experiments.vit import VitModelConfig
    from atml.models.weights import cached_open_clip_weights, cached_timm_weights, cached_torchvision_weights

    for name in NAMES:
        for split in SPLITS:
            found, looked = where(name, split, root)
            print(f"{name:14s} {split:5s} " + (f"found: {found}" if found else "MISSING (looked in " + ", ".join(map(str, looked)) + ")"))
    clip_default = ClipModelConfig()
    for weights, path, present in [*cached_torchvision_weights(("resnet18", "resnet152")), *cached_timm_weights((VitModelConfig().name,)),
                                   *cached_open_clip_weights(((clip_default.name, clip_default.weights),))]:
        print(f"{weights:30s} " + (f"cached: {path}" if present else f"not cached (downloaded to {path} when allowed)"))


@data_app.command("fake")
def data_fake(
    dataset: str = typer.Argument(..., help="mnist | fashion-mnist | cifar10 | cifar100 | stl10"),
    root: Path = typer.Option(..., help="data root to write into (torchvision layout)"),
    n_train: int = typer.Option(2000, min=1),
    n_test: int = typer.Option(500, min=1),
    gzip: bool = typer.Option(False, help="IDX datasets: write .gz files, as the download mirrors serve them"),
    seed: int = 0,
) -> None:
    """Write a format-true fake dataset (the real files and layout, synthetic class-dependent images)."""
    from atml.data.fake import write_fake_dataset

    folder = write_fake_dataset(_dataset(dataset), root, n_train, n_test, gzip=gzip, seed=seed)
    print(f"wrote fake {dataset} ({n_train} train, {n_test} test) to {folder}")


@data_app.command("fetch")
def data_fetch(
    dataset: str = typer.Argument(..., help="mnist | fashion-mnist | cifar10 | cifar100 | stl10"),
    root: Path = typer.Option(Path("data"), help="data root to download into"),
) -> None:
    """Download a dataset with torchvision (needs internet)."""
    from atml.data.images import fetch, where

    fetch(_dataset(dataset), root)
    print(f"{dataset} is in {where(dataset, 'train', root)[0]}")


def _is(exc: BaseException, class_name: str) -> bool:
    """Whether exc is an instance of click's class of this name. Matched by name because typer
    ≥ 0.26 vendors click privately and older typer uses click itself: neither is importable as one
    public class (typer's own rich_utils checks NoArgsIsHelpError the same way)."""
    return any(cls.__name__ == class_name for cls in type(exc).__mro__)


def main() -> None:
    try:
        app(standalone_mode=False)
    except UserError as exc:
        print(f"atml: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        print("atml: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:
        if _is(exc, "NoArgsIsHelpError"):
            print(exc.ctx.get_help() if exc.ctx else str(exc))
            raise SystemExit(0) from None
        if _is(exc, "UsageError"):
            print(f"atml: error: {exc.format_message()}", file=sys.stderr)
            raise SystemExit(2) from None
        if _is(exc, "Abort"):
            print("atml: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        raise
    finally:
        distributed.shutdown()
