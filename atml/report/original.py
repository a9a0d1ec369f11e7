"""How a run's settings differ from the original's: its resolved config against the experiment's
resolved `original` preset (its configs/original.yaml), key by key, leaving out keys that change no
result (paths, logging, figure sizes: the common ones here, each experiment's in `non_result_keys`).

The comparison is of the configs as written, not of what each run ends up with: the same effective
setting spelt in another place (a base key instead of a part's override) is marked too. It can
over-mark, never under-mark."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cache

import yaml
from pydantic import ValidationError

from atml import experiments
from atml.config import presets, resolve

ORIGINAL = "original"
# The seed is shown beside every number (and varies across --seeds by design), so it is no mark.
COMMON_NON_RESULT_KEYS = ("seed", "data.root", "data.download")
_ABSENT = object()


@dataclass(frozen=True)
class Difference:
    key: str
    value: object
    original: object

    def __str__(self) -> str:
        return f"{self.key} = {_shown(self.value)} (original: {_shown(self.original)})"

    def row(self, limit: int = 60) -> dict:
        """A table row: key, atml's value, the original's, each cut at `limit` characters with its
        whole length said (an index list of 100 numbers stays one line)."""
        return {
            "key": self.key,
            "this run": _cut(_shown(self.value), limit),
            "original": _cut(_shown(self.original), limit),
        }


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def _shown(value: object) -> str:
    if value is _ABSENT:
        return "not set"
    return (
        yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("...").strip()
    )


@cache
def _original(experiment: str) -> dict | None:
    if ORIGINAL not in presets(experiment):
        return None
    exp = experiments.get(experiment)
    _, cfg = resolve(experiment, exp.config, preset=ORIGINAL)
    return cfg.model_dump(mode="json")


def complete_config(experiment: str, config: dict) -> dict:
    """The run's config with every default filled in, as the original's is; a folder written by
    an older atml whose config no longer validates is compared as it stands."""
    try:
        return experiments.get(experiment).config.model_validate(config).model_dump(mode="json")
    except ValidationError:
        return config


def _walk(run, original, key: str):
    if isinstance(run, dict) and isinstance(original, dict):
        for k in dict.fromkeys([*run, *original]):
            yield from _walk(run.get(k, _ABSENT), original.get(k, _ABSENT), f"{key}.{k}" if key else str(k))
    elif run != original:
        yield Difference(key, run, original)


def differences(experiment: str, config: dict) -> list[Difference] | None:
    """Every result-affecting key whose value differs from the original preset's; None when the
    experiment has no original preset to compare with."""
    original = _original(experiment)
    if original is None:
        return None
    ignored = (*COMMON_NON_RESULT_KEYS, *experiments.get(experiment).non_result_keys)
    return [
        d
        for d in _walk(complete_config(experiment, config), original, "")
        if not any(fnmatch.fnmatchcase(d.key, pattern) for pattern in ignored)
    ]
