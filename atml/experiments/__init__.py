"""The experiment registry. Each experiment is a package of two modules:

- `atml/experiments/NAME/__init__.py` defines `EXPERIMENT = Experiment(...)`: its name, parts (in run
  order), config schema, the typed result of each part (atml/results.py), `summary(metrics) -> table
  rows`, what `atml report` shows (headlines: a checked path into metrics.json beside the original's
  number; key figures) and its flags. It imports no torch, torchvision or matplotlib: `atml list`,
  `atml config` and every mistake in a command line are answered from it alone, at once.
- `atml/experiments/NAME/parts.py` (its `code`) holds `prepare(cfg, device, parts)` (loads the data
  and the models, checks every setting against them before any run folder exists, and returns the
  run's context) and `RUNNERS`, one per part (`runner(ctx, run) -> Result`). It is imported the
  first time a run needs it, once its config is known to be valid.

`get(name)` imports the package and checks that it holds an Experiment.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError

from atml.config import CONFIG_PACKAGES, has_key
from atml.errors import UserError, did_you_mean, shorten
from atml.needs import Need
from atml.results import Result, key_matches, path_problem


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
class RunContext:
    """What `prepare` hands every part of one run: the validated config, the device and the parts.
    Experiments extend it with what they load once per run (data draws, frozen models)."""

    cfg: Any
    device: Any
    parts: tuple[str, ...]

    @property
    def seed(self) -> int:
        return self.cfg.seed


Runner = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Experiment:
    """One experiment, whole. Built at import of its module, and checked then: a missing or
    inconsistent piece fails there with the experiment's name, not at report time."""

    name: str
    title: str
    parts: tuple[str, ...]
    config: type[BaseModel]
    code: str  # the module of `prepare` and `RUNNERS`, imported when a run needs it
    results: Mapping[str, type[Result]]  # part → the type its runner returns
    summary: Callable[[dict], list[dict]]
    headlines: tuple[Headline, ...] = ()
    key_figures: tuple[str, ...] = ()
    flags: tuple[Flag, ...] = ()
    # config keys (fnmatch patterns) that change no result (logging, figures): left out when the
    # report lists a run's settings that differ from the original preset's
    non_result_keys: tuple[str, ...] = ()
    # True: a runner takes every seed's context and run at once, `runner(ctxs, runs) -> [Result]`,
    # and trains the seeds together (atml.models.stacked); else `runner(ctx, run) -> Result`
    stacks_seeds: bool = False
    # `atml data check`: (weights name, cache file, present?) of the default config's pretrained weights
    weights_files: Callable[[], list[tuple[str, Any, bool]]] = list
    # the dataset splits and weights a run of these parts with this config reads (atml.needs)
    needs: Callable[[Any, tuple[str, ...]], list[Need]] = lambda cfg, parts: []

    @property
    def order(self) -> int:
        """Where it comes in `atml list`, `atml run all` and the report: the N of its title's
        "Experiment N:" (the assignment's order); an experiment without one comes after, by name."""
        numbered = re.match(r"Experiment (\d+):", self.title)
        return int(numbered.group(1)) if numbered else 1_000_000

    def __post_init__(self):
        where = f"experiment '{self.name}'"
        if not self.parts:
            raise TypeError(f"{where}: no parts")
        if not (isinstance(self.config, type) and issubclass(self.config, BaseModel)):
            raise TypeError(f"{where}: config must be a pydantic model class")
        if not callable(self.summary):
            raise TypeError(f"{where}: summary is not callable")
        if set(self.results) != set(self.parts) or not all(
            issubclass(r, Result) for r in self.results.values()
        ):
            raise TypeError(f"{where}: results must map every part to its Result type")
        for h in self.headlines:
            if not isinstance(h.path, tuple) or not h.path or not self.parts_matching(h.path[0]):
                raise TypeError(f"{where}: headline '{h.label}' path {h.path!r} does not start with a part")
            for part in self.parts_matching(h.path[0]):
                problem = path_problem(self.results[part], h.path[1:])
                if problem:
                    raise TypeError(f"{where}: headline '{h.label}' ({part}): {problem}")
        for flag in self.flags:
            if not has_key(self.config, flag.key):
                raise TypeError(f"{where}: flag {flag.name} sets unknown config key {flag.key}")

    @cached_property
    def _checked_code(self) -> ModuleType:
        """The `code` module, checked at first use as the rest is at build: `prepare` and one
        runner per part."""
        module = importlib.import_module(self.code)
        prepare, runners = getattr(module, "prepare", None), getattr(module, "RUNNERS", None)
        where = f"experiment '{self.name}' ({self.code})"
        if not callable(prepare):
            raise TypeError(f"{where}: prepare is missing or not callable")
        if not isinstance(runners, Mapping) or set(runners) != set(self.parts):
            found = sorted(runners) if isinstance(runners, Mapping) else runners
            raise TypeError(f"{where}: RUNNERS {found} do not match parts {list(self.parts)}")
        for part, runner in runners.items():
            if not callable(runner):
                raise TypeError(f"{where}: the runner of {part} is not callable")
        return module

    @property
    def prepare(self) -> Callable[..., RunContext]:
        return self._checked_code.prepare

    @property
    def runners(self) -> Mapping[str, Runner]:
        return self._checked_code.RUNNERS

    def parts_matching(self, pattern: str) -> list[str]:
        return [p for p in self.parts if key_matches(p, pattern)]

    def metrics_problem(self, metrics: dict) -> str | None:
        """Why a run's metrics.json is not what this experiment writes (a hand-edited or foreign
        file), or None: checked against the parts' result types before anything reads it. A key
        missing is no problem: runs made before a number existed stay readable."""
        for part, value in metrics.items():
            if part not in self.results:
                return f"it records '{shorten(str(part), 60)}', not a part of {self.name}"
            try:
                self.results[part].model_validate(value)
            except ValidationError as exc:
                wrong = [e for e in exc.errors() if e["type"] != "missing"]
                if wrong:
                    where = ".".join(str(p) for p in (part, *wrong[0]["loc"]))
                    return f"'{shorten(where, 100)}' is not what {self.name} writes ({wrong[0]['msg']})"
        return None

    def run_part(self, part: str, ctxs: list[RunContext], runs: list) -> list[dict]:
        """The part's result for each run (one per seed), as metrics.json holds it; the seeds
        together where the experiment stacks them, else one after another. A result of another type
        is a bug."""
        runner = self.runners[part]
        if self.stacks_seeds:
            results = runner(ctxs, runs)
            if not isinstance(results, list):
                raise TypeError(
                    f"{self.name}/{part} returned {type(results).__name__}, not a list of "
                    f"{self.results[part].__name__}"
                )
        else:
            results = [runner(ctx, run) for ctx, run in zip(ctxs, runs)]
        for result in results:
            if not isinstance(result, self.results[part]):
                raise TypeError(
                    f"{self.name}/{part} returned {type(result).__name__}, not {self.results[part].__name__}"
                )
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
