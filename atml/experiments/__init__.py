"""The experiment registry. Each experiment is one module exposing:

NAME, PARTS (in run order), FLAGS ({cli flag: config key}), Config (pydantic schema),
prepare(cfg, device) (loads data, so a missing dataset fails before any run folder exists),
run_part(part, cfg, run, device) -> metrics dict, and summary(metrics) -> table rows.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from atml.errors import UserError

EXPERIMENTS = {
    "gan": "atml.experiments.gan",
    "vae": "atml.experiments.vae",
}


def get(name: str) -> ModuleType:
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment '{name}'; accepted: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])
