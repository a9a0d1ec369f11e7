"""A sweep: `--sweep key=[v1,v2]` axes (their product is the grid), every cell resolved and checked
as `atml run` would resolve it, before any job starts; and the jobs a cell runs as."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, replace
from typing import Any

import yaml

from atml.config import split_set
from atml.errors import UserError, shorten
from atml.plan import RunRequest, resolved

PRESET = "preset"  # the axis that picks a shipped preset; `default` is atml's own settings
DEFAULT_PRESET = "default"
MAX_CELLS = 1000


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple


def parse_sweep(text: str) -> Axis:
    """`train.lr_g=[1e-4, 2e-4]` → Axis('train.lr_g', (0.0001, 0.0002)); values read as --set reads them."""
    key, value = split_set(text)
    if not isinstance(value, list) or not value:
        raise UserError(f"--sweep {shorten(text)}: give a non-empty list, e.g. {key}=[1, 2]")
    shown = [json.dumps(v, sort_keys=True, default=str) for v in value]
    if len(set(shown)) < len(shown):
        raise UserError(f"--sweep {shorten(text)}: a value is listed twice")
    return Axis(key, tuple(value))


def check_axes(axes: list[Axis]) -> None:
    keys = [a.key for a in axes]
    if len(set(keys)) < len(keys):
        raise UserError(f"--sweep: the key {next(k for k in keys if keys.count(k) > 1)} is swept twice")
    count = 1
    for axis in axes:
        count *= len(axis.values)
    if count > MAX_CELLS:
        raise UserError(f"--sweep makes {count:,} cells; at most {MAX_CELLS:,}")


@dataclass(frozen=True)
class Cell:
    index: int
    assignments: dict[str, Any]  # swept key → this cell's value
    request: RunRequest  # resolved: one config per seed

    @property
    def name(self) -> str:
        return cell_name(self.index, self.assignments)


def cell_name(index: int, assignments: dict[str, Any]) -> str:
    """c03-lr_d=0.001-loss=bce: a folder name (letters, digits, '.', '_', '-'), at most 90 characters."""
    words = [f"{key.rsplit('.', 1)[-1]}={_yaml(value)}" for key, value in assignments.items()]
    text = re.sub(r"[^A-Za-z0-9._=-]+", "_", "-".join(words)).replace("=", "_")
    return f"c{index:02d}" + (f"-{text}"[:86] if text else "")


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def cells(base: RunRequest, axes: list[Axis]) -> list[Cell]:
    """Every cell of the grid, resolved (each seed's config checked); a bad cell is a UserError
    naming it, and nothing has started."""
    check_axes(axes)
    out = []
    for index, values in enumerate(itertools.product(*(a.values for a in axes))):
        assignments = dict(zip((a.key for a in axes), values))
        preset = assignments.get(PRESET, base.preset)
        sets = [f"{k}={_yaml(v)}" for k, v in assignments.items() if k != PRESET]
        request = replace(
            base,
            preset=None if preset == DEFAULT_PRESET else preset,
            sets=[*base.sets, *sets],
            label=cell_name(index, assignments),
        )
        try:
            out.append(Cell(index, assignments, resolved(request)))
        except UserError as exc:
            shown = ", ".join(f"{k}={_yaml(v)}" for k, v in assignments.items())
            raise type(exc)(f"cell {shorten(shown, 200)}: {exc}") from None
    return out


def job_seeds(cell: Cell) -> list[list[int]]:
    """The seeds of each job of a cell: all together where the experiment stacks them (the GAN,
    the VAE: one model of N copies), else one job per seed."""
    seeds = [c.seed for c in cell.request.configs]
    return [seeds] if cell.request.experiment.stacks_seeds else [[s] for s in seeds]
