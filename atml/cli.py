"""The atml command line: run / list / config / data. Thin: parse, resolve, then call."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import typer
import yaml

from atml import cache, experiments, logs, plan, seed_summary
from atml.config import presets, resolve
from atml.errors import (
    MESSAGE_LIMIT,
    DamagedFileError,
    DataCorruptError,
    OutputWriteError,
    TrainingDivergedError,
    UnexpectedError,
    UserError,
    shorten,
    unexpected,
)
from atml.runs import check_output_root, check_run_name
from atml.tracking import check_tracker

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Rerun five classic deep-learning experiments as measured, reproducible runs.",
)
data_app = typer.Typer(no_args_is_help=True, help="Find, fetch or fake the datasets atml uses.")
app.add_typer(data_app, name="data")
cache_app = typer.Typer(
    no_args_is_help=True,
    help="See or empty atml's caches (frozen-model features, sample classifiers trained here).",
)
app.add_typer(cache_app, name="cache")
log = logging.getLogger("atml")


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        print(f"atml {version('atml')}")
        raise typer.Exit()


@app.callback()
def options(
    quiet: bool = typer.Option(False, "-q", "--quiet", help="warnings and errors only"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="debug lines too"),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="atml's version and exit"
    ),
) -> None:
    """Rerun five classic deep-learning experiments as measured, reproducible runs."""
    if quiet and verbose:
        raise UserError("give -q or -v, not both")
    logs.setup(verbose - quiet)


EXPERIMENT_FLAGS = {"allow_extra_args": True, "ignore_unknown_options": True}


ALL = "all"


def use_threads(n: int) -> None:
    """--threads N: OpenMP's and MKL's count for this process and every process it starts (study
    workers, torchrun ranks), set before torch is imported; torch's own too where it already is."""
    if not 1 <= n <= 4096:
        raise UserError(f"--threads {n}: give 1 to 4096")
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:  # a study's local launcher runs jobs in this process
        from atml.runtime import set_threads

        set_threads(n)


def complete_experiment(incomplete: str) -> list[str]:
    """Shell completion (atml --install-completion): the experiments and `all`."""
    return [name for name in (*experiments.EXPERIMENTS, ALL) if name.startswith(incomplete)]


@app.command(
    context_settings=EXPERIMENT_FLAGS,
    help="Run an experiment (all parts, or those named by --part) into a new run folder; `all` runs "
    "every experiment, and one that fails is reported while the others still run.",
    epilog="\b\nEach experiment's own flags go after its name (see `atml list`):\n"
    + experiments.flags_help(),
)
def run(
    ctx: typer.Context,
    experiment: str = typer.Argument(
        ...,
        metavar="EXPERIMENT",
        autocompletion=complete_experiment,
        help=" | ".join(experiments.EXPERIMENTS) + f" (see `atml list`) | {ALL}: every one in turn",
    ),
    part: list[str] | None = typer.Option(
        None, "--part", metavar="PART", help="run only this part (repeatable)"
    ),
    config: Path | None = typer.Option(
        None, "--config", metavar="FILE", help="YAML merged over the defaults"
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="key=value override, e.g. train.epochs=5 (repeatable)"
    ),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto | cpu | cuda"),
    threads: int | None = typer.Option(
        None,
        "--threads",
        metavar="N",
        help="CPU threads for every part of every experiment (also study workers')  [default: "
        "OMP_NUM_THREADS, else torch's]",
    ),
    seed: int | None = typer.Option(None, metavar="N", help="overrides the config's seed"),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        metavar="SEEDS",
        help="run under several seeds: a list (0,1,2) or a count (3 = 0,1,2); "
        "one run folder per seed and a summary folder with mean ± std",
    ),
    preset: str | None = typer.Option(
        None, "--preset", metavar="NAME", help="a shipped settings preset, e.g. original (see `atml list`)"
    ),
    smoke: bool = typer.Option(False, "--smoke", help="tiny data and epochs: seconds on a CPU"),
    force: bool = typer.Option(False, "--force", help=f"allow --seeds above {seed_summary.MAX_SEEDS}"),
    out: Path | None = typer.Option(
        None, "--out", metavar="DIR", help="root folder of run folders  [default: outputs]"
    ),
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="run folder suffix"),
    resume: list[Path] | None = typer.Option(
        None,
        "--resume",
        metavar="RUN_DIR",
        help="continue this run folder from its checkpoints (repeatable: the seed folders of one "
        "--seeds run continue together)",
    ),
    tracker: str = typer.Option(
        "none",
        "--tracker",
        metavar="KIND",
        help="none | tensorboard | mlflow: also log to TensorBoard (event files in the run folder; "
        "pip install 'atml[tensorboard]') or MLflow (epochs live; MLFLOW_TRACKING_URI, else "
        "sqlite:///OUT/mlflow.db; pip install 'atml[mlflow]')",
    ),
    keep_checkpoints: bool = typer.Option(
        False,
        "--keep-checkpoints",
        help="keep the training checkpoints (by default a part's go once it is done, unless a later part "
        "continues from them, and the rest with the run: they serve --resume, and a finished part has "
        "nothing to resume)",
    ),
    sweep: list[str] | None = typer.Option(
        None,
        "--sweep",
        metavar="KEY=[V1,V2,...]",
        help="key=[v1,v2,...]: a study over these values (repeatable: the grid is the product; "
        "preset=[original,default] sweeps presets); it goes to OUT/studies/",
    ),
    launcher: str = typer.Option(
        "local",
        "--launcher",
        metavar="NAME|FILE",
        help="a study's jobs: local | processes | slurm | slurm-gpu | a launcher YAML",
    ),
    launcher_set: list[str] | None = typer.Option(
        None,
        "--launcher-set",
        metavar="KEY=VALUE",
        help="key=value over a slurm launcher's YAML: partition, time_min, cpus, ...",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        metavar="N",
        help="with --launcher processes: jobs at once  [default: the launcher's]",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="with --sweep: list the cells and jobs, run nothing"
    ),
) -> None:
    """`atml run` (its help text is in the decorator). Over 60 lines only by its typer option
    declarations; the body parses them into a RunRequest, resolved by atml.plan before atml.runner
    (and with it torch) is imported."""
    check_tracker(tracker)
    plan.check_device(device)
    cache.max_bytes()  # a bad ATML_CACHE_MAX_GB is refused before any run folder
    if threads is not None:
        use_threads(threads)
    if resume:
        given = [
            flag
            for flag, value in (
                ("--config", config),
                ("--set", set_),
                ("--seed", seed),
                ("--seeds", seeds),
                ("--part", part),
                ("--preset", preset),
                ("--out", out),
                ("--name", name),
                ("--sweep", sweep),
            )
            if value is not None
        ]
        given += ["--smoke"] * smoke + ctx.args
        if given:
            raise UserError(
                f"--resume continues a run with its own config, parts and folder; drop {' '.join(given)}"
            )
        exp = experiments.get(experiment)
        plan.check_resume(exp, resume)
        from atml import runner

        runner.resume(exp, resume, device, tracker, keep_checkpoints)
        return
    if seed is not None and seeds is not None:
        raise UserError("give --seed or --seeds, not both")
    out = out or Path("outputs")
    check_output_root(out)
    label = check_run_name(name) if name else ("smoke" if smoke else "-".join(part) if part else "all")
    if sweep or dry_run or launcher != "local" or workers is not None or launcher_set:
        from atml.study.launcher_choice import choose

        chosen = choose(launcher, workers, launcher_set)
        _study(experiment, sweep, chosen, dry_run, out, label, ctx.args, part, set_, config, smoke,
               seeds, seed, force, preset, device, tracker, keep_checkpoints)  # fmt: skip
        return
    if experiment == ALL:
        given = [flag for flag, value in (("--part", part), ("--config", config)) if value] + ctx.args
        if given:
            raise UserError(
                f"`atml run all` runs every experiment with its own parts and config; drop {' '.join(given)}"
            )
    exp = experiments.get(experiment if experiment != ALL else next(iter(experiments.EXPERIMENTS)))
    request = plan.RunRequest(
        experiment=exp,
        parts=plan.select_parts(exp, part),
        flags=experiments.parse_flags(exp, ctx.args, _options(ctx)),
        sets=set_ or [],
        config_file=config,
        smoke=smoke,
        seeds=seed_summary.parse_seeds(seeds, force) if seeds is not None else [seed],
        summarise=seeds is not None,
        out=out,
        label=label,
        device=device,
        tracker=tracker,
        keep_checkpoints=keep_checkpoints,
        preset=preset,
    )
    if experiment == ALL:
        plans = plan.plan_all(request)
        from atml import runner

        runner.run_all(plans)
    else:
        request = plan.resolved(request)
        from atml import runner

        runner.run(request)


def _study(experiment, sweep, launcher, dry_run, out, label, flag_args, part, set_, config, smoke,
           seeds, seed, force, preset, device, tracker, keep_checkpoints) -> None:  # fmt: skip
    """`atml run EXP|all --sweep ...`: every cell of every study resolved and checked, then a study
    folder per experiment, run in turn (`all`: each experiment that has every swept key)."""
    import sys

    from atml.config import has_key
    from atml.study import engine, grid, record

    if not sweep:
        raise UserError("--launcher, --workers and --dry-run go with --sweep (a study)")
    axes = [grid.parse_sweep(text) for text in sweep]
    names = list(experiments.EXPERIMENTS) if experiment == ALL else [experiments.get(experiment).name]
    if experiment == ALL and (part or config or flag_args):
        raise UserError("`atml run all` runs every experiment with its own parts and config; drop them")
    settings = (
        plan.per_experiment(set_ or [], preset) if experiment == ALL else {names[0]: (set_ or [], preset)}
    )
    studies = []
    for name in names:
        exp = experiments.get(name)
        lacking = [a.key for a in axes if a.key != grid.PRESET and not has_key(exp.config, a.key)]
        if lacking and experiment == ALL:
            log.info(f"atml: {name} has no key {lacking[0]}: not in this study")
            continue
        base = engine.Base(
            experiment=name,
            parts=part or [],
            flag_args=list(flag_args),
            sets=settings[name][0],
            config_file=str(config.absolute()) if config else None,
            smoke=smoke,
            seeds=seed_summary.parse_seeds(seeds, force) if seeds is not None else [seed],
            preset=settings[name][1],
            device=device,
            tracker=tracker,
            keep_checkpoints=keep_checkpoints,
        )
        try:
            studies.append((base, *engine.plan_study(base, axes)))
        except UserError as exc:
            raise type(exc)(f"{name}: {exc}" if experiment == ALL else str(exc)) from None
    if not studies:
        raise UserError(f"no experiment has every swept key ({', '.join(a.key for a in axes)})")
    if dry_run:
        for base, cells, jobs in studies:
            for job in jobs:
                cell = ", ".join(f"{k}={v}" for k, v in cells[job.cell].assignments.items())
                print(f"{base.experiment}: {job.name:56s} {cell}  seeds {','.join(map(str, job.seeds))}")
            print(f"{base.experiment}: {len(cells)} cells, {len(jobs)} jobs; nothing run")
        from atml.study.launcher_choice import describe

        print(f"launcher: {describe(launcher)}")
        return
    command = ["atml", *sys.argv[1:]]

    def named(base: engine.Base) -> str:
        return f"{label}-{base.experiment}" if experiment == ALL else label

    folders = [engine.create(base, axes, out, named(base), launcher, command) for base, _, _ in studies]
    codes = []
    for folder in folders:
        codes.append(engine.run(folder, record.load(folder), execute))
        if codes[-1] == 130:
            break
    raise SystemExit(next((c for c in codes if c), 0))


def _options(ctx: typer.Context) -> list[str]:
    """The command's own option names (--seed, --set, ...): what a mistyped one may have meant."""
    return [name for param in ctx.command.params for name in param.opts if name.startswith("--")]


study_app = typer.Typer(no_args_is_help=True, help="See, resume or cancel a study (atml run EXP --sweep).")
app.add_typer(study_app, name="study")


@study_app.command("status")
def study_status(folder: Path = typer.Argument(..., metavar="STUDY_DIR", help="the study folder")) -> None:
    """A table of the study's jobs: cell, seeds, state, exit code, wall time, reason."""
    from atml.study import record
    from atml.tables import text_table

    study = record.load(folder)
    rows = [
        {
            "job": job.name,
            "seeds": ",".join(map(str, job.seeds)),
            "state": job.state,
            "exit": "" if job.exit_code is None else job.exit_code,
            "wall s": "" if job.wall_s is None else f"{job.wall_s:.0f}",
            "job id": job.job_id or "",
            "reason": shorten(job.reason, 80),
        }
        for job in study.jobs
    ]
    print(text_table(rows))
    counts = {s: sum(j.state == s for j in study.jobs) for s in record.STATES}
    print(
        ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + (f"; running in {study.runner}" if study.runner else "")
    )


@study_app.command("resume")
def study_resume(
    folder: Path = typer.Argument(..., metavar="STUDY_DIR", help="the study folder"),
    launcher: str | None = typer.Option(
        None,
        "--launcher",
        metavar="NAME|FILE",
        help="local | processes | slurm | slurm-gpu | a launcher YAML  [default: the study's]",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        metavar="N",
        help="with --launcher processes: jobs at once  [default: the launcher's]",
    ),
    launcher_set: list[str] | None = typer.Option(
        None, "--launcher-set", metavar="KEY=VALUE", help="with --launcher slurm"
    ),
) -> None:
    """Run the jobs not done, each from its own checkpoints; refused if the code or a job's
    resolved config would differ from when the study was made."""
    from atml.study import engine

    if launcher is None and (workers is not None or launcher_set):
        raise UserError("--workers and --launcher-set go with --launcher (the study's is kept without it)")
    from atml.study.launcher_choice import choose

    chosen = choose(launcher, workers, launcher_set) if launcher else None
    raise SystemExit(engine.resume(folder, chosen, execute))


@study_app.command("cancel")
def study_cancel(folder: Path = typer.Argument(..., metavar="STUDY_DIR", help="the study folder")) -> None:
    """Stop the process running the study (its jobs end resumable, recorded as interrupted)."""
    from atml.study import engine

    print(engine.cancel(folder))


@app.command("report")
def report(
    runs: list[Path] | None = typer.Argument(
        None,
        metavar="FOLDER...",
        help="run, seed-summary or study folders (default: the latest of each experiment in --outputs)",
    ),
    compare: bool = typer.Option(
        False, "--compare", help="the folders side by side, a column per run, seed summary or study cell"
    ),
    outputs: Path = typer.Option(
        Path("outputs"), "--outputs", metavar="DIR", help="where run folders are looked for"
    ),
    to: Path | None = typer.Option(
        None, "--to", metavar="DIR", help="folder the report is written to  [default: OUTPUTS/report]"
    ),
) -> None:
    """Write report.md and a self-contained report.html from run folders (or compare them).
    A missing or broken folder is named in the report and in the exit code (3)."""
    from atml.report import build, document, sources
    from atml.runs import atomic_write_text

    to = to or outputs / "report"
    if not runs and not compare and not outputs.is_dir():
        raise UserError(f"--outputs {shorten(str(outputs))} is not a folder of runs")
    if compare:
        blocks, stem, problems = _compare(runs or []), "compare", []
    else:
        entries: dict[str, list[sources.Source | sources.Skipped]] = {}
        unreadable, studies = [], []
        for folder in runs or ():
            if (folder / "study.json").is_file():
                studies += build.study_section(folder)
                continue
            entry = sources.read(folder)
            if isinstance(entry, sources.Source):
                entries.setdefault(entry.experiment, []).append(entry)
            else:
                unreadable.append(entry)
        if not runs:
            entries = {name: sources.latest(outputs, name) for name in experiments.EXPERIMENTS}
            entries = {name: found for name, found in entries.items() if found}
        blocks, problems = build.study_report(entries, unreadable, explicit=bool(runs))
        blocks += studies
        stem = "report"
    try:
        to.mkdir(parents=True, exist_ok=True)
        atomic_write_text(to / f"{stem}.md", document.to_markdown(blocks, to))
        atomic_write_text(to / f"{stem}.html", document.to_html(blocks, f"atml {stem}"))
    except OSError as exc:
        raise OutputWriteError(f"could not write the report to {to}: {exc.strerror or exc}") from None
    log.info(f"atml: wrote {to / f'{stem}.md'} and {to / f'{stem}.html'}")
    if problems:
        raise DamagedFileError("; ".join(problems))


def _compare(folders: list[Path]) -> list:
    """The comparison's blocks: a column per run or seed summary, and per finished cell of a study;
    a folder that cannot be read is exit 3 naming it."""
    from atml.report import build, sources

    columns, empty = {}, []
    try:
        for folder in folders:
            if (folder / "study.json").is_file():
                cells, none_done = sources.study_cells(folder)
                entries = [(f"{folder}, cell {what}", cell) for what, cell in cells]
                empty += [f"{folder}, cell {what}" for what in none_done]
            else:
                entries = [(str(folder), sources.load(folder))]
            for what, source in entries:
                columns[_column_name(len(columns))] = (what, source)
    except sources.BrokenSource as exc:
        raise DamagedFileError(str(exc)) from None
    if len(columns) < 2:
        raise UserError(
            f"--compare needs two or more runs, seed summaries or finished study cells; got {len(columns)}"
        )
    return build.compare_report(columns, not_shown=[f"{what}: no job of it finished" for what in empty])


def _column_name(index: int) -> str:
    """A, B, …, Z, AA, AB, …"""
    return (_column_name(index // 26 - 1) if index >= 26 else "") + chr(ord("A") + index % 26)


@app.command("list")
def list_() -> None:
    """The experiments, their parts, presets and flags."""
    for name in experiments.EXPERIMENTS:
        exp = experiments.get(name)
        print(f"{name}: {exp.title}\n  parts: {', '.join(exp.part_names)}")
        print(f"  presets (--preset): {', '.join(presets(name)) or 'none yet'}")
        print(
            "  flags: "
            + ("none" if not exp.flags else "\n    " + "\n    ".join(f.describe() for f in exp.flags))
        )


@app.command("config", context_settings=EXPERIMENT_FLAGS)
def config_(
    ctx: typer.Context,
    experiment: str = typer.Argument(
        ..., metavar="EXPERIMENT", help="resnet | vit | gan | vae | clip", autocompletion=complete_experiment
    ),
    config: Path | None = typer.Option(
        None, "--config", metavar="FILE", help="YAML merged over the defaults"
    ),
    set_: list[str] | None = typer.Option(None, "--set", metavar="KEY=VALUE", help="override (repeatable)"),
    preset: str | None = typer.Option(None, "--preset", metavar="NAME", help="a shipped settings preset"),
    smoke: bool = typer.Option(False, "--smoke", help="with the smoke override"),
) -> None:
    """Print the resolved config of an experiment as YAML (takes the experiment's flags too)."""
    exp = experiments.get(experiment)
    flags = experiments.parse_flags(exp, ctx.args, _options(ctx))
    raw, _ = resolve(
        exp.name, exp.config, preset=preset, config_file=config, smoke=smoke, flags=flags, sets=set_ or ()
    )
    print(yaml.safe_dump(raw, sort_keys=False), end="")


def _dataset(name: str) -> str:
    from atml.data.images import NAMES

    if name not in NAMES:
        raise UserError(f"unknown dataset '{name}'; accepted: {', '.join(NAMES)}")
    return name


FOR_HELP = "what `atml run EXP` (or `all`) with these settings will read"


def _plans_for(experiment: str, preset: str | None, sets: list[str], smoke: bool, parts: list[str] | None):
    """The resolved run requests of `atml run EXPERIMENT` with these settings (atml.plan), whose
    needs `data check/fetch --for` lists."""
    exp = experiments.get(experiment if experiment != ALL else next(iter(experiments.EXPERIMENTS)))
    if experiment == ALL and parts:
        raise UserError("`--for all` covers every experiment with its own parts; drop --part")
    request = plan.RunRequest(
        experiment=exp,
        parts=plan.select_parts(exp, parts),
        flags={},
        sets=sets,
        config_file=None,
        smoke=smoke,
        seeds=[None],
        summarise=False,
        out=Path("outputs"),
        label="fetch",
        device="cpu",
        preset=preset,
    )
    return plan.plan_all(request) if experiment == ALL else [plan.resolved(request)]


def _needs(for_: str, root: Path | None, preset: str | None, set_: list[str] | None, smoke: bool, part):
    from atml.prefetch import needs_of

    sets = [*(set_ or []), *([f"data.root={root}"] if root is not None else [])]
    return needs_of(_plans_for(for_, preset, sets, smoke, part))


@data_app.command("check")
def data_check(
    root: Path | None = typer.Option(
        None, metavar="DIR", help="data root to look in (torchvision layout)  [default: data]"
    ),
    for_: str | None = typer.Option(
        None, "--for", metavar="EXP", help=f"EXP | all: {FOR_HELP} (exit 3 if any is missing)"
    ),
    preset: str | None = typer.Option(None, "--preset", metavar="NAME", help="with --for: the run's preset"),
    set_: list[str] | None = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="with --for: the run's key=value overrides"
    ),
    smoke: bool = typer.Option(False, "--smoke", help="with --for: the run's --smoke"),
    part: list[str] | None = typer.Option(None, "--part", metavar="PART", help="with --for: the run's parts"),
) -> None:
    """Where each dataset and each pretrained weights file is found, or what is missing; with
    --for, exactly what one command will read, looked up as the run looks it up (no download)."""
    if for_ is not None:
        from atml.prefetch import check

        rows = [check(need) for need in _needs(for_, root, preset, set_, smoke, part)]
        for row in rows:
            print(row.line())
        missing = sum(not row.ok and not row.damaged for row in rows)
        damaged = sum(row.damaged for row in rows)
        print(
            f"{sum(row.ok for row in rows)} of {len(rows)} present"
            + (f"; {missing} missing" if missing else "")
            + (f"; {damaged} damaged" if damaged else "")
        )
        if missing or damaged:
            raise SystemExit(3)
        return
    if preset or set_ or smoke or part:
        raise UserError("--preset, --set, --smoke and --part go with --for")
    from atml.data.files import is_fake
    from atml.data.images import NAMES, SPLITS, verify, where

    root = root or Path("data")
    damaged = 0
    for name in NAMES:
        for split in SPLITS:
            try:
                found, looked = where(name, split, root)
                verify(name, split, root)
            except DataCorruptError as exc:
                print(f"{name:14s} {split:5s} DAMAGED: {exc}")
                damaged += 1
                continue
            if found:
                fake = " (FAKE data, written by `atml data fake`)" if is_fake(found) else ""
                state = f"found: {found}{fake}, read as a run reads it"
            else:
                state = "MISSING (looked in " + ", ".join(map(str, looked)) + ")"
            print(f"{name:14s} {split:5s} {state}")
    files = [row for name in experiments.EXPERIMENTS for row in experiments.get(name).weights_files()]
    for weights, path, present in files:
        print(
            f"{weights:30s} "
            + (f"cached: {path}" if present else f"not cached (downloaded to {path} when allowed)")
        )
    if damaged:
        raise SystemExit(3)


@data_app.command("fake")
def data_fake(
    dataset: str = typer.Argument(
        ..., metavar="DATASET", help="mnist | fashion-mnist | cifar10 | cifar100 | stl10"
    ),
    root: Path = typer.Option(..., metavar="DIR", help="data root to write into (torchvision layout)"),
    n_train: int = typer.Option(2000, min=10, max=100_000, metavar="N", help="training images"),
    n_test: int = typer.Option(500, min=10, max=100_000, metavar="N", help="test images"),
    gzip: bool = typer.Option(
        False, help="IDX datasets: write .gz files, as the download mirrors serve them"
    ),
    seed: int = typer.Option(0, min=0, metavar="N", help="the fake images' seed"),
    force: bool = typer.Option(
        False, "--force", help="replace files already in the dataset's folder (perhaps the real ones)"
    ),
) -> None:
    """Write a format-true fake dataset (the real files and layout, synthetic class-dependent images)
    into a folder that holds no files yet, marked as fake for `atml data check` and every run."""
    from atml.data.fake import write_fake_dataset

    try:
        folder = write_fake_dataset(
            _dataset(dataset), root, n_train, n_test, gzip=gzip, seed=seed, force=force
        )
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise OutputWriteError(
            f"could not write fake {dataset} under {root}{where}: {exc.strerror or exc}"
        ) from None
    log.info(f"wrote fake {dataset} ({n_train} train, {n_test} test) to {folder}")


@data_app.command("fetch")
def data_fetch(
    dataset: str | None = typer.Argument(
        None, metavar="DATASET", help="mnist | fashion-mnist | cifar10 | cifar100 | stl10"
    ),
    root: Path | None = typer.Option(None, metavar="DIR", help="data root to download into  [default: data]"),
    for_: str | None = typer.Option(None, "--for", metavar="EXP", help=f"EXP | all: download {FOR_HELP}"),
    preset: str | None = typer.Option(None, "--preset", metavar="NAME", help="with --for: the run's preset"),
    set_: list[str] | None = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="with --for: the run's key=value overrides"
    ),
    smoke: bool = typer.Option(False, "--smoke", help="with --for: the run's --smoke"),
    part: list[str] | None = typer.Option(None, "--part", metavar="PART", help="with --for: the run's parts"),
) -> None:
    """Download a dataset (both splits), or with --for every dataset split and weights file that
    command will read, into the places the run looks (data root, torch hub's and Hugging Face's
    caches): fetch on a machine with internet, run where there is none."""
    if (dataset is None) == (for_ is None):
        raise UserError("give a DATASET or --for EXP|all (what one command will read), one of them")
    if for_ is None:
        if preset or set_ or smoke or part:
            raise UserError("--preset, --set, --smoke and --part go with --for")
        from atml.data.images import fetch, where

        root = root or Path("data")
        fetch(_dataset(dataset), root)
        log.info(f"{dataset} is in {where(dataset, 'train', root)[0]}")
        return
    from atml.prefetch import fetch as fetch_need

    needs = _needs(for_, root, preset, set_, smoke, part)
    total = 0
    for need in needs:
        found = fetch_need(need)
        total += sum(f.stat().st_size for f in found.files)
        print(found.line())
    print(f"{len(needs)} present, {total / 1e6:.1f} MB in all")


def _is(exc: BaseException, class_name: str) -> bool:
    """Whether exc is an instance of click's class of this name. Matched by name because typer
    ≥ 0.26 vendors click privately and older typer uses click itself: neither is importable as one
    public class (typer's own rich_utils checks NoArgsIsHelpError the same way)."""
    return any(cls.__name__ == class_name for cls in type(exc).__mro__)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM before a run (or between runs) ends like Ctrl-C: one line, 130


@cache_app.command("info")
def cache_info() -> None:
    """Each cache's folder, files and size, and the cap."""
    cap = cache.max_bytes()
    print(f"atml's caches under {cache.root()} (ATML_CACHE_DIR):")
    used = cache.usage()
    for u in used:
        print(f"  {u.kind:<12} {u.files:>6} files  {u.bytes / 1e6:>10,.1f} MB  {cache.cache_dir(u.kind)}")
    total = sum(u.bytes for u in used)
    limit = f"cap {cap / 1e9:g} GB (ATML_CACHE_MAX_GB)" if cap else "no cap (set ATML_CACHE_MAX_GB)"
    print(f"  total {total / 1e6:,.1f} MB; {limit}")
    print("Pretrained weights are kept by their libraries (torch hub, Hugging Face): see atml data check.")


@cache_app.command("clear")
def cache_clear(
    kinds: list[str] | None = typer.Argument(
        None, metavar="[CACHE]...", help=f"{' | '.join(cache.KINDS)} (default: all of them)"
    ),
    older_than: float | None = typer.Option(
        None, "--older-than", metavar="DAYS", min=0, help="only files not used for this many days"
    ),
) -> None:
    """Delete cache files; each is computed again when a run next needs it."""
    freed = cache.clear(kinds or [], older_than)
    print(f"atml: deleted {freed.files} files ({freed.bytes / 1e6:,.1f} MB) of {freed.kind}")


def main() -> None:
    logs.setup()
    signal.signal(signal.SIGTERM, _terminate)
    code, _ = execute(None)
    if code:
        raise SystemExit(code)


def execute(args: list[str] | None) -> tuple[int, str]:
    """One atml command line (None: sys.argv) in this process: its exit code and the one line said
    for a failure (also logged). A study's local launcher runs its jobs through this."""
    try:
        code = app(args, standalone_mode=False)
        # typer ≥ 0.26 turns a KeyboardInterrupt outside a run (Ctrl-C, SIGTERM) into a returned 130
        if code == 130:
            raise KeyboardInterrupt
        return (code if isinstance(code, int) else 0), ""
    except UserError as exc:
        return _failed(exc.exit_code, f"atml: error: {shorten(str(exc), MESSAGE_LIMIT)}")
    except TrainingDivergedError as exc:
        return _failed(exc.exit_code, f"atml: {exc}")
    except (typer.Abort, KeyboardInterrupt):
        return _failed(130, "atml: interrupted")
    except SystemExit as exc:  # a run's own exit (interrupted: 130, `run all`: its first failure)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, "" if code == 0 else f"atml: exit {code}"
    except Exception as exc:
        if _is(exc, "NoArgsIsHelpError"):
            print(exc.ctx.get_help() if exc.ctx else str(exc))
            return 0, ""
        if _is(exc, "UsageError"):
            return _failed(2, f"atml: error: {exc.format_message()}")
        if _is(exc, "Abort"):
            return _failed(130, "atml: interrupted")
        error = exc if isinstance(exc, UnexpectedError) else unexpected(exc, "atml", None)
        return _failed(error.exit_code, f"atml: error: {error}")


def _failed(code: int, line: str) -> tuple[int, str]:
    log.error(line)
    return code, line
