"""The atml command line: run / list / config / data. Thin: parse, resolve, then call."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import typer
import yaml

from atml import distributed, experiments, seed_summary
from atml.config import has_key, resolve, validate
from atml.errors import DamagedFileError, OutputWriteError, TrainingDivergedError, UserError
from atml.runs import FollowerRun, Run, check_output_root, check_run_name
from atml.runtime import describe_device, pick_device, seed_everything
from atml.tables import text_table
from atml.tracking import check_tracker, make_tracker

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Rerun five classic deep-learning experiments as measured, reproducible runs.",
)
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


ALL = "all"


@app.command(
    context_settings=EXPERIMENT_FLAGS,
    epilog="\b\nEach experiment's own flags go after its name (see `atml list`):\n"
    + experiments.flags_help(),
)
def run(
    ctx: typer.Context,
    experiment: str = typer.Argument(
        ..., help=" | ".join(experiments.EXPERIMENTS) + f" (see `atml list`) | {ALL}: every one in turn"
    ),
    part: list[str] | None = typer.Option(None, "--part", help="run only this part (repeatable)"),
    config: Path | None = typer.Option(None, "--config", help="YAML merged over the defaults"),
    set_: list[str] | None = typer.Option(
        None, "--set", help="key=value override, e.g. train.epochs=5 (repeatable)"
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    seed: int | None = typer.Option(None, help="overrides the config's seed"),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        help="run under several seeds: a list (0,1,2) or a count (3 = 0,1,2); "
        "one run folder per seed and a summary folder with mean ± std",
    ),
    smoke: bool = typer.Option(False, "--smoke", help="tiny data and epochs: seconds on a CPU"),
    out: Path | None = typer.Option(None, "--out", help="root folder of run folders  [default: outputs]"),
    name: str | None = typer.Option(None, "--name", help="run folder suffix"),
    resume: Path | None = typer.Option(
        None, "--resume", help="continue this run folder from its checkpoints"
    ),
    tracker: str = typer.Option(
        "none",
        "--tracker",
        help="none | tensorboard: also write TensorBoard event files into the run folder "
        "(pip install 'atml[tensorboard]')",
    ),
) -> None:
    """Run an experiment (all parts, or those named by --part) into a new run folder; `all` runs
    every experiment, and one that fails is reported while the others still run."""
    check_tracker(tracker)
    torch_device = distributed.init(pick_device(device))
    if not distributed.is_main():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — rank 0 speaks for all ranks
    if resume is not None:
        given = [
            flag
            for flag, value in (
                ("--config", config),
                ("--set", set_),
                ("--seed", seed),
                ("--seeds", seeds),
                ("--part", part),
                ("--out", out),
                ("--name", name),
            )
            if value is not None
        ]
        given += ["--smoke"] * smoke + ctx.args
        if given:
            raise UserError(
                f"--resume continues a run with its own config, parts and folder; drop {' '.join(given)}"
            )
        exp = experiments.get(experiment)
        handle = Run.open(resume) if distributed.is_main() else FollowerRun(resume)
        if handle.env.get("experiment") != exp.NAME:
            raise UserError(f"{resume} is a run of '{handle.env.get('experiment')}', not '{exp.NAME}'")
        cfg = validate(handle.config, exp.Config)
        parts = _parts(exp, handle.env.get("parts"))
        exp.prepare(cfg, torch_device, parts)
        _execute(exp, cfg, parts, handle, torch_device, tracker)
        return
    if seed is not None and seeds is not None:
        raise UserError("give --seed or --seeds, not both")
    seed_list = seed_summary.parse_seeds(seeds) if seeds is not None else [seed]
    out = out or Path("outputs")
    check_output_root(out)
    label = check_run_name(name) if name else ("smoke" if smoke else "-".join(part) if part else "all")
    if experiment != ALL:
        _run_seeds(
            experiments.get(experiment),
            ctx.args,
            part,
            config,
            set_ or [],
            smoke,
            seed_list,
            seeds is not None,
            out,
            label,
            torch_device,
            tracker,
        )
        return
    given = [flag for flag, value in (("--part", part), ("--config", config)) if value] + ctx.args
    if given:
        raise UserError(
            f"`atml run all` runs every experiment with its own parts and config; drop {' '.join(given)}"
        )
    modules = [experiments.get(n) for n in experiments.EXPERIMENTS]
    sets = {
        exp.NAME: [s for s in set_ or [] if has_key(exp.Config, s.partition("=")[0].strip())]
        for exp in modules
    }
    unused = [s for s in set_ or [] if not any(s in chosen for chosen in sets.values())]
    if unused:
        raise UserError(f"--set {unused[0]}: no experiment has this config key (see `atml config EXP`)")
    failed: dict[str, int] = {}
    for exp in modules:
        try:
            _run_seeds(
                exp,
                [],
                None,
                None,
                sets[exp.NAME],
                smoke,
                seed_list,
                seeds is not None,
                out,
                label,
                torch_device,
                tracker,
            )
        except (UserError, TrainingDivergedError) as exc:
            print(f"atml: {exp.NAME} FAILED: {exc}", file=sys.stderr, flush=True)
            failed[exp.NAME] = exc.exit_code
    done = [n for n in experiments.EXPERIMENTS if n not in failed]
    print(
        f"\natml run all: {len(done)} of {len(modules)} experiments done"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if failed:
        raise SystemExit(next(iter(failed.values())))


def _run_seeds(
    exp,
    args: list[str],
    part,
    config,
    sets: list[str],
    smoke: bool,
    seed_list: list,
    summarise: bool,
    out: Path,
    label: str,
    torch_device,
    tracker: str,
) -> None:
    """One experiment under each seed (None: the config's own), each into its own run folder;
    with several, a summary folder of mean ± std beside them."""
    flags = experiments.parse_flags(exp, args)
    parts = _parts(exp, part)
    runs, rows, first_config = {}, {}, None
    for s in seed_list:
        raw, cfg = resolve(
            exp.NAME,
            exp.Config,
            config_file=config,
            smoke=smoke,
            flags=flags | ({"seed": s} if s is not None else {}),
            sets=sets,
        )
        exp.prepare(cfg, torch_device, parts)
        handle = _create_run(
            out,
            exp.NAME,
            f"{label}-seed{cfg.seed}" if summarise else label,
            raw,
            env={
                "experiment": exp.NAME,
                "parts": parts,
                "seed": cfg.seed,
                "smoke": smoke,
                "device": str(torch_device),
                "device_name": describe_device(torch_device),
                "world_size": distributed.world_size(),
            },
        )
        rows[cfg.seed] = _execute(exp, cfg, parts, handle, torch_device, tracker)
        runs[cfg.seed] = handle
        first_config = first_config or raw
    if summarise and distributed.is_main():
        summary_rows = seed_summary.summary_rows(rows)
        folder = seed_summary.write(out, exp.NAME, label, first_config, runs, summary_rows)
        print(f"\n{exp.NAME} over seeds {', '.join(map(str, runs))}:\n{text_table(summary_rows)}")
        print(f"\natml: seed summary: {folder.dir / 'summary.md'}")


def _execute(exp, cfg, parts: list[str], handle: Run, torch_device, tracker_kind: str = "none") -> list[dict]:
    """The parts of one run, in order, into its folder; returns its summary rows."""
    tracker = make_tracker(tracker_kind, handle.dir, handle.config) if distributed.is_main() else None
    seed_everything(cfg.seed)
    resume_hint = f"atml run {exp.NAME} --resume {handle.dir}"
    print(
        f"atml: {exp.NAME} [{', '.join(parts)}] seed {cfg.seed} on {describe_device(torch_device)} → {handle.dir}",
        flush=True,
    )
    try:
        with _sigterm_as_interrupt():
            for p in parts:
                if p in handle.metrics:
                    print(f"== {exp.NAME}/{p}: already complete in this run folder")
                    continue
                print(f"== {exp.NAME}/{p}", flush=True)
                started = time.perf_counter()
                handle.record_metrics(p, exp.run_part(p, cfg, handle, torch_device))
                if tracker:
                    tracker.log_part(p, handle.metrics[p])
                distributed.barrier()  # the other ranks read what rank 0 recorded
                print(f"== {exp.NAME}/{p} done in {time.perf_counter() - started:.0f} s", flush=True)
    except KeyboardInterrupt:
        print(f"\natml: interrupted; continue with: {resume_hint}", file=sys.stderr)
        raise SystemExit(130) from None
    except TrainingDivergedError as exc:
        raise TrainingDivergedError(f"training diverged: {exc}") from None
    except OutputWriteError as exc:
        raise OutputWriteError(f"{exc}; once it can be written, continue with: {resume_hint}") from None
    finally:
        if tracker:
            tracker.close()
    rows = exp.summary({p: handle.metrics[p] for p in parts})
    print(f"\n{text_table(rows)}")
    print(f"\natml: done. metrics: {handle.dir / 'metrics.json'}  plots: {handle.dir / 'plots'}")
    return rows


def _create_run(out: Path, experiment: str, label: str, raw: dict, env: dict) -> Run:
    """A new run folder, made by rank 0 alone; the other ranks follow it."""
    handle = None
    try:
        if distributed.is_main():
            handle = Run.create(out, experiment, label, raw, env)
    finally:
        folder = distributed.broadcast_object(
            handle.dir if handle else None
        )  # None tells the others rank 0 failed
    if folder is None:
        raise OutputWriteError("rank 0 could not create the run folder")
    return handle or FollowerRun(folder)


@app.command("report")
def report(
    runs: list[Path] | None = typer.Argument(
        None, help="run or seed-summary folders (default: the latest of each experiment in --outputs)"
    ),
    compare: tuple[Path, Path] | None = typer.Option(
        None, "--compare", help="two run folders side by side: RUN_A RUN_B"
    ),
    outputs: Path = typer.Option(Path("outputs"), "--outputs", help="where run folders are looked for"),
    to: Path | None = typer.Option(
        None, "--to", help="folder the report is written to  [default: OUTPUTS/report]"
    ),
) -> None:
    """Write report.md and a self-contained report.html from run folders (or compare two runs).
    A missing or broken folder is named in the report and in the exit code (3)."""
    from atml.report import build, document, sources
    from atml.runs import atomic_write_text

    to = to or outputs / "report"
    if compare:
        if runs:
            raise UserError("--compare takes its two folders itself; drop the other RUN_DIRs")
        try:
            a, b = (sources.load(folder) for folder in compare)
        except sources.BrokenSource as exc:
            raise DamagedFileError(str(exc)) from None
        blocks, stem, problems = build.compare_report(a, b), "compare", []
    else:
        entries: dict[str, sources.Source | str] = {}
        unreadable = []
        for folder in runs or ():
            entry = sources.read(folder)
            if isinstance(entry, sources.Source):
                entries[entry.experiment] = entry
            else:
                unreadable.append(entry)
        if not runs:
            latest = {name: sources.latest(outputs, name) for name in experiments.EXPERIMENTS}
            entries = {name: sources.read(folder) for name, folder in latest.items() if folder is not None}
        blocks, problems = build.study_report(entries, unreadable, explicit=bool(runs))
        stem = "report"
    try:
        to.mkdir(parents=True, exist_ok=True)
        atomic_write_text(to / f"{stem}.md", document.to_markdown(blocks, to))
        atomic_write_text(to / f"{stem}.html", document.to_html(blocks, f"atml {stem}"))
    except OSError as exc:
        raise OutputWriteError(f"could not write the report to {to}: {exc.strerror or exc}") from None
    print(f"atml: wrote {to / f'{stem}.md'} and {to / f'{stem}.html'}")
    if problems:
        raise DamagedFileError("; ".join(problems))


@app.command("list")
def list_() -> None:
    """The experiments, their parts and their flags."""
    for name in experiments.EXPERIMENTS:
        exp = experiments.get(name)
        print(f"{name}: {exp.__doc__.strip().splitlines()[0]}\n  parts: {', '.join(exp.PARTS)}")
        print(
            "  flags: "
            + ("none" if not exp.FLAGS else "\n    " + "\n    ".join(f.describe() for f in exp.FLAGS))
        )


@app.command("config", context_settings=EXPERIMENT_FLAGS)
def config_(
    ctx: typer.Context,
    experiment: str,
    config: Path | None = typer.Option(None, "--config"),
    set_: list[str] | None = typer.Option(None, "--set"),
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
def data_check(
    root: Path = typer.Option(Path("data"), help="data root to look in (torchvision layout)"),
) -> None:
    """Where each dataset and each pretrained weights file is found, or what is missing."""
    from atml.data.images import NAMES, SPLITS, where
    from atml.experiments.clip import ClipModelConfig
    from atml.experiments.vit import VitModelConfig
    from atml.models.weights import cached_open_clip_weights, cached_timm_weights, cached_torchvision_weights

    for name in NAMES:
        for split in SPLITS:
            found, looked = where(name, split, root)
            print(
                f"{name:14s} {split:5s} "
                + (f"found: {found}" if found else "MISSING (looked in " + ", ".join(map(str, looked)) + ")")
            )
    clip_default = ClipModelConfig()
    for weights, path, present in [
        *cached_torchvision_weights(("resnet18", "resnet152")),
        *cached_timm_weights((VitModelConfig().name,)),
        *cached_open_clip_weights(((clip_default.name, clip_default.weights),)),
    ]:
        print(
            f"{weights:30s} "
            + (f"cached: {path}" if present else f"not cached (downloaded to {path} when allowed)")
        )


@data_app.command("fake")
def data_fake(
    dataset: str = typer.Argument(..., help="mnist | fashion-mnist | cifar10 | cifar100 | stl10"),
    root: Path = typer.Option(..., help="data root to write into (torchvision layout)"),
    n_train: int = typer.Option(2000, min=1),
    n_test: int = typer.Option(500, min=1),
    gzip: bool = typer.Option(
        False, help="IDX datasets: write .gz files, as the download mirrors serve them"
    ),
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
    except TrainingDivergedError as exc:
        print(f"atml: {exc}", file=sys.stderr)
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
