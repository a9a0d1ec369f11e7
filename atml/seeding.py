"""The seed policy, in one place: every random draw atml makes takes its generator from `Seeds`,
by purpose. A run has one seed (the config's `seed`); each purpose below draws from a stream of
its own, derived from the seed and the purpose's name (numpy's SeedSequence), so two purposes
never share numbers and adding a purpose moves no other. Data draws are seeded by their data
settings (`data.subset_seed`, `data.heldout_seed`), not by the run seed: every seed of a study
sees the same images. A config's `fixed_seeds` may give a purpose's seed outright (the original
presets: the notebooks' random_state 42 for maps, splits and the probe's solver).

Torch's and numpy's global streams are neither seeded nor drawn from. Weight initialisation,
whose torch functions take no generator, runs inside `Seeds.initialising()`: the global stream
forked, seeded for the purpose and restored after (tests/test_seeding.py checks that a run leaves
the global streams as it found them).

Why one seed for all of a part's runs, not a seed per run: a part's runs (a pathology and its
mitigation, the β schedules) deliberately start from the same initial weights and batches, so
that what differs between them is the setting alone (common random numbers). And a part's draws
depend on the run seed and the purpose only, so a part gives the same numbers alone or inside a
full run, and a seed trained in a stack the numbers it gives alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PURPOSES = {
    "init": "a network's initial weights (drawn inside Seeds.initialising)",
    "batches": "the order of a training's batches",
    "training": "a training's own draws: a GAN's latents, dropout masks, a VAE's reparameterisation, flips",
    "grid": "the fixed latents behind a GAN's sample grids, the same at every epoch",
    "samples": "fresh latents at evaluation: a GAN's judged samples, a VAE's generations",
    "evaluation": "a loss's noise at evaluation (a VAE's validation and test losses; the same every epoch)",
    "estimates": "Monte Carlo estimates at evaluation (a VAE's mutual information)",
    "masking": "which image patches are masked, and the noise that fills them",
    "subset": "a random subset of a held-out draw (the images of ResNet's feature maps)",
    "split": "a fit/score split (a probe's, CLIP's Procrustes rotation) or a cross-validation's folds",
    "solver": "an estimator's own randomness (scikit-learn's random_state)",
    "projection": "a 2-D map's t-SNE, UMAP or PCA",
    "train split": "the examples drawn from a dataset's train split (or made, for fake data)",
    "test split": "the examples drawn from a dataset's test split (or made, for fake data)",
    "held-out": "the one shuffle that picks held-out and subset images (seeded by data.heldout_seed)",
}


@dataclass(frozen=True)
class Seeds:
    """The streams of one seed, one per purpose of PURPOSES; `fixed`: purposes whose seed a config
    gives outright (`fixed_seeds`: the original notebooks' random_state 42)."""

    seed: int
    fixed: Mapping[str, int] = field(default_factory=dict)

    def value(self, purpose: str) -> int:
        """The purpose's seed: a 32-bit integer (for numpy, scikit-learn, UMAP and torch alike)."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown seed purpose {purpose!r}; atml.seeding.PURPOSES lists them")
        if purpose in self.fixed:
            return self.fixed[purpose]
        return int(np.random.SeedSequence([self.seed, zlib.crc32(purpose.encode())]).generate_state(1)[0])

    def generator(self, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
        """A torch generator of the purpose's stream, on `device` (a CUDA draw needs a CUDA one)."""
        import torch  # here: the fake-data writer (atml.data.fake) uses this module without torch

        return torch.Generator(device=device).manual_seed(self.value(purpose))

    @contextmanager
    def initialising(self) -> Iterator[None]:
        """Build networks inside (on the CPU, where torch initialises them): their initial weights
        come from the "init" stream, and torch's global generator is as it was afterwards."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.value("init"))
            yield
