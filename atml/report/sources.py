"""Run folders and seed-summary folders, read for a report: what was run, how, and how far its
numbers can be trusted (smoke settings, random weights, settings other than the original's, one seed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from atml import experiments
from atml.errors import DamagedFileError, first_line
from atml.experiments import Headline
from atml.report import original
from atml.runs import read_record
from atml.seed_summary import numeric_leaves

RUN_SETTINGS = ("smoke", "preset", "parts", "device", "device_name")  # a seed summary's, from its runs


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

    @property
    def parts(self) -> list[str]:
        return list(self.env.get("parts") or self.metrics)

    def value(self, headline: Headline) -> str | None:
        """The headline's number: one run's value, or mean ± std (n) over seeds; None where the
        metrics hold no number at its path."""
        keys = headline.find(self.metrics)
        if keys is None:
            return None
        if self.numbers is not None:
            v = self.numbers.get(".".join(keys))
            return None if v is None else f"{v['mean']:.4g} ± {v['std']:.2g} (n={v['n']})"
        return f"{self._leaves['.'.join(keys)]:.4g}"

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
                    "settings that differ from the original: " + "; ".join(map(str, self.differences)),
                )
            )
        if not self.is_summary:
            out.append(("1 seed", "a single seed (no spread measured)"))
        return out


def _read(path: Path, parse, what: str) -> dict:
    if not path.is_file():
        raise BrokenSource(f"{path.parent} has no {path.name}: not a finished {what}")
    try:
        return read_record(path, parse, f"not a readable {what}")
    except DamagedFileError as exc:
        raise BrokenSource(str(exc)) from None


def load(folder: Path) -> Source:
    """A run folder or a seed-summary folder; BrokenSource says what is wrong with any other."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BrokenSource(f"{folder} does not exist")
    env = _read(folder / "env.json", json.loads, "run")
    config = _read(folder / "config.yaml", yaml.safe_load, "run")
    name = env.get("experiment")
    if name not in experiments.EXPERIMENTS:
        raise BrokenSource(f"{folder}/env.json names no known experiment ({name!r})")
    if env.get("kind") == "seed-summary":
        summary = _read(folder / "summary.json", json.loads, "seed summary")
        runs = [Path(p) for p in summary.get("runs", {}).values()]
        if not runs:
            raise BrokenSource(f"{folder}/summary.json lists no runs")
        missing = [run for run in runs if not run.is_dir()]
        if len(missing) == len(runs):
            gone = ", ".join(map(str, runs))
            raise BrokenSource(f"{folder}: every seed folder it summarises is gone ({gone})")
        first = load(next(run for run in runs if run not in missing))
        env = {k: first.env[k] for k in RUN_SETTINGS if k in first.env} | env  # older summaries lack them
        return Source(
            name,
            folder,
            config,
            env,
            first.metrics,
            summary.get("rows", []),
            summary.get("numbers", {}),
            first.plots,
            missing,
        )
    metrics = _read(folder / "metrics.json", json.loads, "run (no part finished)")
    problem = experiments.get(name).metrics_problem(metrics)
    if problem:
        raise BrokenSource(f"{folder}/metrics.json is damaged: {problem}")
    try:
        rows = experiments.get(name).summary(metrics)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # an older run's missing keys
        reason = first_line(exc)
        raise BrokenSource(f"{folder}/metrics.json lacks what {name}'s summary needs ({reason})") from None
    return Source(name, folder, config, env, metrics, rows, None, folder / "plots")


def read(folder: Path) -> Source | str:
    """The folder's Source, or the reason it cannot be read (a report names it and goes on)."""
    try:
        return load(folder)
    except BrokenSource as exc:
        return str(exc)


def latest(outputs: Path, experiment: str) -> list[Path]:
    """The newest run or seed-summary folder of an experiment for each preset it was run with
    (the original's first, then atml's own settings; folder names start with a timestamp)."""
    root = Path(outputs) / experiment
    folders = (
        sorted((f for f in root.iterdir() if f.is_dir() and (f / "env.json").is_file()), key=lambda f: f.name)
        if root.is_dir()
        else []
    )
    newest: dict[str | None, Path] = {}
    for folder in folders:
        newest[_preset_of(folder)] = folder
    return [newest[p] for p in sorted(newest, key=lambda p: (p != original.ORIGINAL, p is not None, p or ""))]


def _preset_of(folder: Path) -> str | None:
    try:
        return json.loads((folder / "env.json").read_text()).get("preset")
    except (OSError, ValueError, AttributeError):
        return None  # an unreadable folder is named when the report reads it
