"""The experiment registry. Each experiment is a package of two modules:

- `atml/experiments/NAME/__init__.py` defines `EXPERIMENT = Experiment(...)`: its name, config
  schema, flags, what `atml report` sets beside the original's numbers (headlines: a checked path
  into metrics.json), and its parts in run order, each one `Part(...)` declaration: name, typed
  result (atml/results.py), runner, summary rows (from that result), figures (with captions), what
  it adds to `prepare` and which data and weights it reads. It imports no torch, torchvision or
  matplotlib: `atml list`, `atml config` and every mistake in a command line are answered from it
  alone, at once.
- `atml/experiments/NAME/parts.py` (its `code`) holds `prepare(cfg, device, parts)` (loads what
  every part uses and returns the run's context), each part's preparation (`preparation(part,
  ctx) -> None`: loads what only that part uses and checks its settings) and its runner
  (`runner(part, ctxs, runs) -> [Result]`, one result per seed; `per_seed` adapts a function of
  one context and run). It is imported the first time a run needs it, once its config is known
  to be valid; everything a run prepares is checked before any run folder exists.

`get(name)` imports the package and checks that it holds an Experiment.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from atml.config import CONFIG_PACKAGES, has_key
from atml.errors import UserError, did_you_mean, shorten
from atml.needs import Need
from atml.results import Result, key_matches, path_problem, read
from atml.tables import number

if TYPE_CHECKING:
    from atml.seeding import Seeds


@dataclass(frozen=True)
class Flag:
    """`--name VALUE` (or a bare `--name` switch for type bool) sets config key `key`."""

    name: str
    key: str
    help: str
    type: type = str

    def describe(self) -> str:
        shown = self.name if self.type is bool else f"{self.name} {self.type.__name__.upper()}"
        return f"{shown}  → {self.key}: {self.help}"


@dataclass(frozen=True)
class Headline:
    """A number the report sets beside the original's. `path` is its place in metrics.json, one
    key per level (keys may hold dots or spaces); a `*` in a key matches within keys named after
    config values (fnmatch), `a|b` either. The first key is the part (or a pattern of parts)."""

    label: str
    path: tuple[str, ...]
    original: str
    skipped_at: tuple[str, ...] = ()  # where a run records why it has no such number (e.g. no prompts)

    def find(self, metrics: Mapping) -> tuple[str, ...] | None:
        """The concrete keys of the first number the path reaches in `metrics`, or None."""

        def walk(tree: Any, rest: tuple[str, ...], taken: tuple[str, ...]):
            if not rest:
                ok = isinstance(tree, int | float) and not isinstance(tree, bool)
                return taken if ok else None
            if not isinstance(tree, Mapping):
                return None
            for key in tree:
                if key_matches(str(key), rest[0]):
                    found = walk(tree[key], rest[1:], (*taken, str(key)))
                    if found is not None:
                        return found
            return None

        return walk(metrics, self.path, ())

    def skip_reason(self, metrics: Mapping) -> str | None:
        """The reason the run recorded for not having this number, if it did."""
        tree: Any = metrics
        for key in self.skipped_at or (None,):
            if key is None or not isinstance(tree, Mapping) or key not in tree:
                return None
            tree = tree[key]
        return tree if isinstance(tree, str) else None


@dataclass(frozen=True)
class Reading:
    """A sentence of the report's read-out of a run, filled from its numbers: `{a/b/c}` is the
    number at that path of metrics.json (keys between slashes; `*` and `a|b` match as in Headline),
    shown to 4 significant digits. A sentence whose numbers the run lacks is left out, so the text
    never outlives the numbers it reads."""

    template: str

    def paths(self) -> list[str]:
        return _FIELD.findall(self.template)

    def fill(self, value_at: Callable[[tuple[str, ...]], float | None]) -> str | None:
        """`value_at(keys)`: the run's number at a path pattern (a seed summary's mean), or None."""
        found = {path: value_at(tuple(path.split("/"))) for path in self.paths()}
        if any(v is None for v in found.values()):
            return None
        return _FIELD.sub(lambda m: number(found[m.group(1)]), self.template)


_FIELD = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class RunContext:
    """What `prepare` hands every part of one run: the validated config, the device and the parts.
    Experiments extend it with what they load once per run (data draws, frozen models)."""

    cfg: Any
    device: Any
    parts: tuple[str, ...]

    @property
    def seed(self) -> int:
        return self.cfg.seed

    @property
    def seeds(self) -> Seeds:
        """The run's random streams, one per purpose (atml.seeding), with the purposes the config's
        `fixed_seeds` gives outright (an experiment without that section has none)."""
        from atml.seeding import Seeds

        fixed = getattr(self.cfg, "fixed_seeds", None)
        return Seeds(self.cfg.seed, fixed.given() if fixed else {})


@dataclass(frozen=True)
class Figure:
    """A figure a part draws, as plots/NAME.png: `caption` says what it shows (the report's
    caption); `key`: the report shows it by default."""

    name: str
    caption: str
    key: bool = False


@dataclass(frozen=True)
class Part:
    """One part of an experiment, whole: its name, the type its runner returns, the runner and
    preparation (names of functions in the experiment's code module), the summary rows it adds to
    a run's table (read from its typed result), the figures it may draw, what it reads (data
    splits and weights, for `atml data check` and the prefetch) and the training checkpoints of
    earlier parts it continues from (`reuses`, fnmatch patterns of their keys: kept until it has run;
    every other checkpoint is deleted once its part is done, unless --keep-checkpoints)."""

    name: str
    result: type[Result]
    runner: str
    summary: Callable[[Any], list[dict]] = lambda result: []
    figures: tuple[Figure, ...] = ()
    prepare: str | None = None
    needs: Callable[[Any], list[Need]] = lambda cfg: []
    reuses: tuple[str, ...] = ()


def per_seed(runner: Callable[[Any, Any], Result]) -> Callable[[str, list, list], list[Result]]:
    """The runner contract, `runner(part, ctxs, runs) -> [Result]`, for a part that runs each seed
    on its own: `runner(ctx, run) -> Result` once per seed."""

    @functools.wraps(runner)
    def each(part: str, ctxs: list, runs: list) -> list[Result]:
        return [runner(ctx, run) for ctx, run in zip(ctxs, runs)]

    return each


@dataclass(frozen=True)
class Experiment:
    """One experiment, whole. Built at import of its module, and checked then: a missing or
    inconsistent piece fails there with the experiment's name, not at report time."""

    name: str
    title: str
    parts: tuple[Part, ...]
    config: type[BaseModel]
    code: str  # the module of `prepare` and the parts' runners, imported when a run needs it
    headlines: tuple[Headline, ...] = ()
    readings: tuple[Reading, ...] = ()  # the report's read-out of a run, sentence by sentence
    flags: tuple[Flag, ...] = ()
    # config keys (fnmatch patterns) that change no result (logging, figures): left out when the
    # report lists a run's settings that differ from the original preset's
    non_result_keys: tuple[str, ...] = ()
    # True: the runners train the seeds of a run together (atml.models.stacked), so a run's seeds
    # are one group (one `prepare`, one runner call per part); else each seed is a group of its own
    stacks_seeds: bool = False
    # `atml data check`: (weights name, cache file, present?) of the default config's pretrained weights
    weights_files: Callable[[], list[tuple[str, Any, bool]]] = list
    # the dataset splits and weights every run reads, whatever its parts (atml.needs)
    needs_always: Callable[[Any], list[Need]] = lambda cfg: []

    @property
    def order(self) -> int:
        """Where it comes in `atml list`, `atml run all` and the report: the N of its title's
        "Experiment N:" (the assignment's order); an experiment without one comes after, by name."""
        numbered = re.match(r"Experiment (\d+):", self.title)
        return int(numbered.group(1)) if numbered else 1_000_000

    def __post_init__(self):
        where = f"experiment '{self.name}'"
        if not self.parts or not all(isinstance(p, Part) for p in self.parts):
            raise TypeError(f"{where}: parts must be a non-empty tuple of Part")
        if len(set(self.part_names)) != len(self.parts):
            raise TypeError(f"{where}: two parts share a name")
        if not (isinstance(self.config, type) and issubclass(self.config, BaseModel)):
            raise TypeError(f"{where}: config must be a pydantic model class")
        figures = [f.name for p in self.parts for f in p.figures]
        if len(set(figures)) != len(figures):
            raise TypeError(f"{where}: two figures share a name")
        for part in self.parts:
            if not (isinstance(part.result, type) and issubclass(part.result, Result)):
                raise TypeError(f"{where}: part {part.name}'s result is not a Result type")
            if not callable(part.summary) or not callable(part.needs):
                raise TypeError(f"{where}: part {part.name}'s summary and needs must be callable")
        checked = [(f"headline '{h.label}'", h.path) for h in self.headlines]
        checked += [(f"reading {{{p}}}", tuple(p.split("/"))) for r in self.readings for p in r.paths()]
        for what, path in checked:
            if not isinstance(path, tuple) or not path or not self.parts_matching(path[0]):
                raise TypeError(f"{where}: {what} path {path!r} does not start with a part")
            for part in self.parts_matching(path[0]):
                problem = path_problem(self.part(part).result, path[1:])
                if problem:
                    raise TypeError(f"{where}: {what} ({part}): {problem}")
        for flag in self.flags:
            if not has_key(self.config, flag.key):
                raise TypeError(f"{where}: flag {flag.name} sets unknown config key {flag.key}")

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts)

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def caption(self, figure: str) -> str:
        """What a figure (plots/FIGURE.png) shows, as its part declares it; a figure no part
        declares (one an older atml drew) by its name."""
        for part in self.parts:
            for declared in part.figures:
                if declared.name == figure:
                    return f"{self.name} {part.name}: {declared.caption}"
        return f"{self.name}: {figure.replace('_', ' ')}"

    @property
    def key_figures(self) -> tuple[str, ...]:
        return tuple(f.name for p in self.parts for f in p.figures if f.key)

    @cached_property
    def _checked_code(self) -> ModuleType:
        """The `code` module, checked at first use as the rest is at build: `prepare`, and every
        runner and preparation a part names."""
        module = importlib.import_module(self.code)
        where = f"experiment '{self.name}' ({self.code})"
        if not callable(getattr(module, "prepare", None)):
            raise TypeError(f"{where}: prepare is missing or not callable")
        for part in self.parts:
            for role, name in (("runner", part.runner), ("preparation", part.prepare)):
                if name is not None and not callable(getattr(module, name, None)):
                    raise TypeError(f"{where}: the {role} of {part.name}, {name}, is missing or not callable")
        return module

    def prepare(self, cfg: Any, device: Any, parts: Iterable[str]) -> RunContext:
        """The run's context: what every part uses, then what each chosen part adds and checks."""
        parts = list(parts)
        ctx = self._checked_code.prepare(cfg, device, parts)
        for name in parts:
            if self.part(name).prepare:
                getattr(self._checked_code, self.part(name).prepare)(name, ctx)
        return ctx

    def runner(self, part: str) -> Callable[[str, list, list], list]:
        return getattr(self._checked_code, self.part(part).runner)

    def needs(self, cfg: Any, parts: Iterable[str]) -> list[Need]:
        """The dataset splits and weights a run of these parts with this config reads."""
        return [*self.needs_always(cfg), *(need for p in parts for need in self.part(p).needs(cfg))]

    def summary(self, metrics: dict) -> list[dict]:
        """A run's table: each part's rows, read from its typed result (an AttributeError where a
        run of an older atml lacks a number a summary shows)."""
        return [
            {"part": part, **row}
            for part, values in metrics.items()
            for row in self.part(part).summary(read(self.part(part).result, values))
        ]

    def parts_matching(self, pattern: str) -> list[str]:
        return [p for p in self.part_names if key_matches(p, pattern)]

    def metrics_problem(self, metrics: dict) -> str | None:
        """Why a run's metrics.json is not what this experiment writes (a hand-edited or foreign
        file), or None: checked against the parts' result types before anything reads it. A key
        missing is no problem: runs made before a number existed stay readable."""
        for part, value in metrics.items():
            if part not in self.part_names:
                return f"it records '{shorten(str(part), 60)}', not a part of {self.name}"
            try:
                self.part(part).result.model_validate(value)
            except ValidationError as exc:
                wrong = [e for e in exc.errors() if e["type"] != "missing"]
                if wrong:
                    where = ".".join(str(p) for p in (part, *wrong[0]["loc"]))
                    return f"'{shorten(where, 100)}' is not what {self.name} writes ({wrong[0]['msg']})"
        return None

    def run_part(self, part: str, ctxs: list[RunContext], runs: list) -> list[dict]:
        """The part's result for each run (one per seed), as metrics.json holds it; its figures and
        curves written into the run's folder. A result of another type, another number of them, or
        a figure the part does not declare is a bug."""
        expected = self.part(part).result
        results = self.runner(part)(part, ctxs, runs)
        if not isinstance(results, list) or len(results) != len(runs):
            raise TypeError(f"{self.name}/{part} returned {type(results).__name__}, not {len(runs)} results")
        for result in results:
            if not isinstance(result, expected):
                raise TypeError(
                    f"{self.name}/{part} returned {type(result).__name__}, not {expected.__name__}"
                )
        declared = {f.name for f in self.part(part).figures}
        for result, run in zip(results, runs):
            undeclared = set(result.figures) - declared
            if undeclared:
                raise TypeError(f"{self.name}/{part} drew {min(undeclared)}, a figure it does not declare")
            for name, rows in result.curves.items():
                run.write_history(name, rows)
            for name, png in result.figures.items():
                run.write_figure(name, png)
        return [result.to_json() for result in results]


def _discover() -> dict[str, str]:
    """Every experiment's name → its module, in order (see Experiment.order): each subpackage of
    atml.experiments, and each module an installed package registers under the entry-point group
    `atml.experiments` (docs/development.md)."""
    modules = [f"{__name__}.{found.name}" for found in pkgutil.iter_modules(__path__) if found.ispkg]
    modules += [entry.value for entry in entry_points(group="atml.experiments")]
    declared = []
    for module in modules:
        experiment = getattr(importlib.import_module(module), "EXPERIMENT", None)
        if not isinstance(experiment, Experiment):
            raise TypeError(f"{module} must define EXPERIMENT = Experiment(...)")
        declared.append((experiment.order, experiment.name, module))
    return {name: module for _, name, module in sorted(declared)}


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        hint = did_you_mean(name, EXPERIMENTS)
        raise UserError(f"unknown experiment '{name}'{hint}; accepted: {', '.join(EXPERIMENTS)}")
    module = importlib.import_module(EXPERIMENTS[name])
    experiment = getattr(module, "EXPERIMENT", None)
    if not isinstance(experiment, Experiment) or experiment.name != name:
        raise TypeError(f"{module.__name__} must define EXPERIMENT = Experiment(name='{name}', ...)")
    return experiment


def parse_flags(exp: Experiment, args: list[str], common: Iterable[str] = ()) -> dict[str, Any]:
    """The experiment's flags among `args` as {config key: value}; anything else is a UserError
    naming the experiment's flags (and the closest of them or of `common`, atml run's options)."""
    flags = {f.name: f for f in exp.flags}
    accepted = ", ".join(flags) or "none"
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(args):
        name, sep, value = args[i].partition("=")
        flag = flags.get(name)
        if flag is None:
            if name.startswith("-"):
                names = [option.lstrip("-") for option in (*flags, *common)]  # the dashes match anything
                what = f"option {name}{did_you_mean(name.lstrip('-'), names, prefix='--')}"
            else:  # key=value is Hydra's way; atml's is --set key=value
                what = f"argument '{args[i]}'" + (f" (to set a config key: --set {args[i]})" if sep else "")
            raise UserError(
                f"unknown {what} for {exp.name}; its own flags: {accepted} (common options: atml run --help)"
            )
        if flag.type is bool:
            if sep:
                raise UserError(f"{name} is a switch and takes no value")
            overrides[flag.key] = True
        else:
            if not sep:
                if i + 1 >= len(args) or args[i + 1].startswith("--"):
                    raise UserError(f"{name} needs a value: {flag.help}")
                i += 1
                value = args[i]
            try:
                overrides[flag.key] = flag.type(value)
            except ValueError:
                raise UserError(f"{name} expects {flag.type.__name__}, got '{value}'") from None
        i += 1
    return overrides


def flags_help() -> str:
    lines = []
    for name in EXPERIMENTS:
        flags = get(name).flags
        lines.append(f"  {name}:" + ("" if flags else " none"))
        lines.extend(f"    {f.describe()}" for f in flags)
    return "\n".join(lines)


EXPERIMENTS = _discover()  # last: the experiments' packages import this module's classes
CONFIG_PACKAGES.update(EXPERIMENTS)
