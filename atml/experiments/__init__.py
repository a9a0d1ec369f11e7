"""The experiment registry. Each experiment is one module exposing:

NAME, PARTS (in run order), FLAGS (a tuple of Flag: its own command-line flags, each setting one
config key), Config (pydantic schema), prepare(cfg, device, parts) (loads the data and checks every
setting against it, so a bad value or missing dataset fails before any run folder exists),
run_part(part, cfg, run, device) -> metrics dict, and summary(metrics) -> table rows.
For `atml report`: HEADLINES (Headline: a metrics path beside the original report's number),
ORIGINAL_DATA (config key → the original's value; other values are marked as stand-in data)
and KEY_FIGURES (plot names, in the order the report shows them).

Experiment modules import heavy libraries (timm, open_clip, umap) inside the functions that use
them: `atml list` and `atml run --help` import every module here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from atml.errors import UserError

EXPERIMENTS = {
    "resnet": "atml.experiments.resnet",
    "vit": "atml.experiments.vit",
    "gan": "atml.experiments.gan",
    "vae": "atml.experiments.vae",
    "clip": "atml.experiments.clip",
}


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
    """A number the report sets beside the original's: `path` is its dotted place in
    metrics.json (part.key.…; `*` matches within a key named after config values)."""

    label: str
    path: str
    original: str


def get(name: str) -> ModuleType:
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment '{name}'; accepted: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


def parse_flags(exp: ModuleType, args: list[str]) -> dict[str, Any]:
    """The experiment's flags among `args` as {config key: value}; anything else is a UserError
    naming the experiment's flags."""
    flags = {f.name: f for f in exp.FLAGS}
    accepted = ", ".join(flags) or "none"
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(args):
        name, sep, value = args[i].partition("=")
        flag = flags.get(name)
        if flag is None:
            what = f"option {name}" if name.startswith("-") else f"argument '{args[i]}'"
            raise UserError(
                f"unknown {what} for {exp.NAME}; its own flags: {accepted} (common options: atml run --help)"
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
        flags = get(name).FLAGS
        lines.append(f"  {name}:" + ("" if flags else " none"))
        lines.extend(f"    {f.describe()}" for f in flags)
    return "\n".join(lines)
