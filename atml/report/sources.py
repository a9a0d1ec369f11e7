"""Run folders and seed-summary folders, read for a report: what was run, how, and how far its
numbers can be trusted (smoke settings, random weights, settings other than the original's, one seed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from atml import experiments, records
from atml.config import upgrade
from atml.errors import DamagedFileError, first_line, shorten
from atml.experiments import Headline
from atml.report import original
from atml.seed_summary import numeric_leaves

MAX_FIGURES = 6
RUN_SETTINGS = ("smoke", "preset", "parts", "device", "device_name")  # a seed summary's, from its runs


def png_problem(path: Path) -> str | None:
    """Why a figure file is not a readable PNG image, or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                return f"a {image.format} image, not a PNG"
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return f"not a readable PNG ({first_line(exc)[:120]})"
    return None


class BrokenSource(Exception):
    """A folder that is not a readable run or seed summary; the message says why."""


@dataclass
class Source:
    experiment: str
    folder: Path
    config: dict
    env: dict
    metrics: dict  # a run's metrics.json; for a seed summary, its first seed's
    rows: list[dict]  # the experiment's summary table (across seeds for a summary)
    numbers: dict[str, dict] | None = None  # a seed summary's {path: mean, std, n, values}
    plots: Path = field(default_factory=Path)
    missing_runs: list[Path] = field(default_factory=list)  # a seed summary's seed folders that are gone

    @property
    def seeds(self) -> list[int]:
        return list(self.env.get("seeds", [self.env.get("seed")]))

    @property
    def is_summary(self) -> bool:
        return self.numbers is not None

    @cached_property
    def _leaves(self) -> dict:
        return self.numbers if self.numbers is not None else numeric_leaves(self.metrics)

    @cached_property
    def means(self) -> dict[str, float]:
        """Every number: one run's, or a seed summary's mean over its seeds."""
        return {path: n["mean"] for path, n in self.numbers.items()} if self.is_summary else self._leaves

    @property
    def parts(self) -> list[str]:
        return list(self.env.get("parts") or self.metrics)

    def number(self, headline: Headline) -> tuple[float, float, int] | None:
        """The headline's number as (mean, sample std, n seeds): one run's is (value, 0, 1); None
        where the metrics hold no number at its path."""
        keys = headline.find(self.metrics)
        if keys is None:
            return None
        if self.numbers is not None:
            v = self.numbers.get(".".join(keys))
            return None if v is None else (v["mean"], v["std"], v["n"])
        return self._leaves[".".join(keys)], 0.0, 1

    def value(self, headline: Headline) -> str | None:
        """The headline's number as the report shows it: one run's value, or mean ± std (n)."""
        number = self.number(headline)
        if number is None:
            return None
        mean, std, n = number
        return f"{mean:.4g} ± {std:.2g} (n={n})" if self.is_summary else f"{mean:.4g}"

    @property
    def unfinished(self) -> list[str]:
        """The parts the run was started with that have no numbers (a seed summary is written last)."""
        return [] if self.is_summary else [p for p in self.parts if p not in self.metrics]

    @property
    def complete(self) -> bool:
        return not self.unfinished

    @cached_property
    def figures(self) -> list[Path]:
        """The experiment's key figures this run drew (else its first few), readable ones only."""
        return [f for f in self._chosen_figures if f not in self.broken_figures]

    @cached_property
    def broken_figures(self) -> dict[Path, str]:
        """The chosen figures that are not readable PNGs, and why."""
        return {f: why for f in self._chosen_figures if (why := png_problem(f))}

    @cached_property
    def _chosen_figures(self) -> list[Path]:
        drawn = {p.stem: p for p in sorted(self.plots.glob("*.png"))} if self.plots.is_dir() else {}
        key = [name for name in experiments.get(self.experiment).key_figures if name in drawn]
        return [drawn[name] for name in key or list(drawn)[:MAX_FIGURES]]

    @property
    def preset(self) -> str | None:
        return self.env.get("preset")

    @property
    def label(self) -> str:
        """The report's name for this source's column."""
        return f"atml --preset {self.preset}" if self.preset else "atml (its own settings)"

    @cached_property
    def differences(self) -> list[original.Difference] | None:
        return original.differences(self.experiment, self.config)

    def marks(self) -> list[tuple[str, str]]:
        """Why a reader should not take these numbers as the original's setting: (tag, explanation)."""
        out = []
        if self.unfinished:
            out.append(
                ("incomplete", f"an unfinished run (part(s) {', '.join(self.unfinished)} have no numbers)")
            )
        if self.env.get("smoke"):
            out.append(("smoke", "smoke settings (tiny data and epochs)"))
        if (self.config.get("model") or {}).get("weights") == "none":
            out.append(("random weights", "random weights (no pretrained weights)"))
        if self.differences is None:
            out.append(
                (
                    "not compared",
                    f"atml's settings, not compared with the original's ({self.experiment} has no "
                    "--preset original yet)",
                )
            )
        elif self.differences:
            n = len(self.differences)
            out.append(
                (
                    f"{n} setting{'s differ' if n > 1 else ' differs'}",
                    f"{n} setting{'s that differ' if n > 1 else ' that differs'} from the original "
                    "(listed below)",
                )
            )
        if not self.is_summary:
            out.append(("1 seed", "a single seed (no spread measured)"))
        return out


@dataclass
class Skipped:
    """A folder the report names instead of showing: `broken` (a damaged or unreadable record:
    exit 3) or only passed over (a newer incomplete run, a run filed under another experiment)."""

    reason: str
    broken: bool = True


def _record(path: Path, what: str) -> dict:
    if not path.is_file():
        raise BrokenSource(f"{path.parent} has no {path.name}: not a {what}")
    try:
        return records.read_mapping(path, f"not a readable {what}")
    except DamagedFileError as exc:
        raise BrokenSource(str(exc)) from None


def _typed(read, *args):
    try:
        return read(*args)
    except DamagedFileError as exc:
        raise BrokenSource(str(exc)) from None


def load(folder: Path) -> Source:
    """A run folder or a seed-summary folder, every record typed; BrokenSource says what is wrong
    with any other. A run whose parts have not all finished loads, with `complete` False."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BrokenSource(f"{folder} does not exist")
    env = _record(folder / "env.json", "run")
    env_record = _typed(records.checked, folder / "env.json", env, records.RunEnv, "not a readable run")
    name = env_record.experiment
    if name not in experiments.EXPERIMENTS:
        raise BrokenSource(f"{folder / 'env.json'} names no known experiment ({shorten(name, 60)!r})")
    exp = experiments.get(name)
    config = upgrade(_record(folder / "config.yaml", "run"), exp.config)
    _typed(records.check_config, folder, exp, config, "not a readable run")
    if env_record.kind == "seed-summary":
        summary_data = _record(folder / "summary.json", "finished seed summary")
        summary = _typed(records.check_summary, folder, summary_data, "not a readable seed summary")
        runs = [Path(p) for p in summary.runs.values()]
        missing = [run for run in runs if not run.is_dir()]
        if len(missing) == len(runs):
            gone = ", ".join(map(str, runs))
            raise BrokenSource(f"{folder}: every seed folder it summarises is gone ({gone})")
        first = load(next(run for run in runs if run not in missing))
        env = {k: first.env[k] for k in RUN_SETTINGS if k in first.env} | env  # older summaries lack them
        numbers = {path: n.model_dump() for path, n in summary.numbers.items()}
        return Source(name, folder, config, env, first.metrics, summary.rows, numbers, first.plots, missing)
    metrics = {}
    if (folder / "metrics.json").is_file():
        metrics = _record(folder / "metrics.json", "run")
        _typed(records.check_metrics, folder, exp, metrics, "not a readable run")
    try:
        rows = exp.summary(metrics)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # an older run's missing keys
        reason = first_line(exc)
        raise BrokenSource(f"{folder}/metrics.json lacks what {name}'s summary needs ({reason})") from None
    return Source(name, folder, config, env, metrics, rows, None, folder / "plots")


def study_cells(folder: Path) -> tuple[list[tuple[str, Source]], list[str]]:
    """A study's cells as seed summaries of their finished runs, each with its swept values (its
    figures are its first seed's, as a seed summary's are), and the cells with no finished run."""
    from atml.seed_summary import aggregate
    from atml.study import record

    study = _typed(record.load, folder)
    cells, empty = [], []
    for index, assignments in enumerate(study.cells):
        what = ", ".join(f"{key}={json.dumps(value)}" for key, value in assignments.items())
        runs = [load(Path(run)) for job in study.cell_jobs(index) if job.state == "done" for run in job.runs]
        if not runs:
            empty.append(what)
            continue
        first = runs[0]
        env = {**first.env, "seeds": [run.seeds[0] for run in runs]}
        numbers = aggregate({run.seeds[0]: run.metrics for run in runs})
        source = Source(
            study.experiment, Path(folder), first.config, env, first.metrics, [], numbers, first.plots
        )
        cells.append((what, source))
    return cells, empty


def read(folder: Path) -> Source | Skipped:
    """The folder's Source, or why it cannot be read (a report names it and goes on)."""
    try:
        return load(folder)
    except BrokenSource as exc:
        return Skipped(str(exc))


def latest(outputs: Path, experiment: str) -> list[Source | Skipped]:
    """Per preset the experiment was run with (the original's first, then atml's own settings),
    its newest complete run or seed summary, and every newer folder of that preset that was passed
    over, named: broken, not finished, or another experiment's run filed here. Where no run of a
    preset finished, its newest readable one is shown (marked incomplete)."""
    root = Path(outputs) / experiment
    folders = (
        sorted((f for f in root.iterdir() if f.is_dir() and (f / "env.json").is_file()), key=lambda f: f.name)
        if root.is_dir()
        else []
    )
    by_preset: dict[str | None, list[Path]] = {}
    for folder in reversed(folders):  # newest first
        by_preset.setdefault(_preset_of(folder), []).append(folder)
    out: list[Source | Skipped] = []
    for preset in sorted(by_preset, key=lambda p: (p != original.ORIGINAL, p is not None, p or "")):
        shown, passed = _newest_complete(by_preset[preset], root)
        out += ([shown] if shown else []) + passed
    return out


def _newest_complete(folders: list[Path], root: Path) -> tuple[Source | None, list[Skipped]]:
    """The first complete run of `folders` (newest first), and the newer ones passed over."""
    passed: list[Skipped] = []
    unfinished: list[Source] = []
    for folder in folders:
        entry = read(folder)
        if isinstance(entry, Skipped):
            passed.append(entry)
        elif entry.experiment != root.name:
            reason = f"{folder} is a {entry.experiment} run filed under {root}: not shown here"
            passed.append(Skipped(reason, broken=False))
        elif not entry.complete:
            unfinished.append(entry)
        else:
            return entry, passed + [_not_finished(u, entry) for u in unfinished]
    return (unfinished[0] if unfinished else None), passed


def _not_finished(source: Source, shown: Source) -> Skipped:
    return Skipped(
        f"{source.folder} is newer, but part(s) {', '.join(source.unfinished)} did not finish "
        f"(interrupted, failed or still running): the report shows {shown.folder}",
        broken=False,
    )


def _preset_of(folder: Path) -> str | None:
    try:
        return json.loads((folder / "env.json").read_text()).get("preset")
    except (OSError, ValueError, AttributeError):
        return None  # an unreadable folder is named when the report reads it
