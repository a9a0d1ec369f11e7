"""Every random draw's seed comes from here: the run seed, set afresh before each part (so a
part's numbers are the same alone or inside a full run), and generators for draws that must not
touch the global stream (data order, fixed noise, masks).

Why not a seed per run name: a part's runs (a pathology and its mitigation, the β schedules)
deliberately start from the same initial weights and batches, so that what differs between them
is the setting alone (common random numbers); and the published numbers stay reproducible.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Python's, numpy's (mod 2**32) and torch's global generators, all from `seed`."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_torch(seed: int) -> None:
    """Torch's global generator alone: weight initialisation and dropout draw from it."""
    torch.manual_seed(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU generator of its own, for a draw that must not move the global stream."""
    return torch.Generator().manual_seed(seed)
