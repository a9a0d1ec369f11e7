"""Any dataset's split as uint8 [N, C, H, W] tensors, and the fixed random draws the pretrained-model
experiments train and score on (the datasets are described in atml.data.images)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from atml.data import mnist, mnist_sets
from atml.data.files import describe_source
from atml.data.images import DATASETS, NAMES, SPLITS
from atml.errors import DataCorruptError, DataNotFoundError, UserError
from atml.seeding import Seeds


@dataclass
class LabelledImages:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]
    classes: tuple[str, ...]
    source: str


def load_images(name: str, split: str, root: str | Path, allow_download: bool) -> LabelledImages:
    """One split of a dataset, decoded once into uint8 [N, C, H, W] and int64 labels."""
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; accepted: {', '.join(SPLITS)}")
    if name in mnist.DATASETS:
        idx = mnist_sets.load_split(name, split, root, allow_download)
        return LabelledImages(idx.images.unsqueeze(1), idx.labels, mnist.DATASETS[name].classes, idx.source)
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; accepted: {', '.join(NAMES)}")
    spec = DATASETS[name]
    folder = spec.locate(split, root)
    if folder is None:
        if not allow_download:
            raise DataNotFoundError(spec.missing_message(split, root, "download not allowed"))
        spec.fetch(split, root)
        folder = spec.locate(split, root)
        if folder is None:
            raise DataNotFoundError(spec.missing_message(split, root, "download left no files"))
    images, labels, classes = spec.decode(folder, split)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataCorruptError(
            f"{folder}: labels run {labels.min()}…{labels.max()} but {name} has {len(classes)} classes"
        )
    return LabelledImages(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        classes,
        describe_source(f"{name} {split} split from {folder} ({len(labels)} images)", folder),
    )


@dataclass
class Draw:
    """A fixed random draw of a split: what the pretrained-model experiments train and score on."""

    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor
    indices: torch.Tensor  # positions in the split, for cache keys
    classes: tuple[str, ...]
    source: str

    def head(self, n: int) -> Draw:
        return self.at(torch.arange(min(n, len(self.labels))))

    def sample(self, n: int, generator: torch.Generator) -> Draw:
        """`n` of the draw's images in a random order drawn from `generator`."""
        return self.at(torch.randperm(len(self.labels), generator=generator)[:n])

    def at(self, positions: torch.Tensor) -> Draw:
        return Draw(
            self.images[positions], self.labels[positions], self.indices[positions], self.classes, self.source
        )


def draw(name: str, split: str, root: str, allow_download: bool, n: int | None, seed: int) -> Draw:
    """`n` images of a split in a random order fixed by `seed` (all of them when n is None); each
    split has a stream of its own (atml.seeding: "train split", "test split")."""
    full = load_images(name, split, root, allow_download)
    order = torch.randperm(len(full.labels), generator=Seeds(seed).generator(f"{split} split"))
    indices = order[:n] if n else torch.arange(len(full.labels))
    return Draw(
        full.images[indices],
        full.labels[indices],
        indices,
        full.classes,
        f"{full.source}, {len(indices)} used",
    )


def train_test_draws(
    name: str, root: str, allow_download: bool, n_train: int | None, n_test: int | None, seed: int
) -> tuple[Draw, Draw]:
    """Fixed draws of both splits: what a probe or head is fitted on and what it is scored on."""
    return (
        draw(name, "train", root, allow_download, n_train, seed),
        draw(name, "test", root, allow_download, n_test, seed),
    )
