"""MNIST-family splits as tensors: a whole split, or the training and held-out images an experiment
uses (the datasets themselves are described in atml.data.mnist)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from atml.data.files import describe_source
from atml.data.mnist import DATASETS, ImageDataConfig, download, locate, missing_message, read_split
from atml.errors import DataNotFoundError, UserError
from atml.seeding import Seeds


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 [N, 28, 28]
    labels: torch.Tensor  # int64 [N]
    source: str


def load_split(name: str, split: str, root: str | Path, allow_download: bool) -> ImageSet:
    dataset = DATASETS[name]
    files = locate(dataset, split, root)
    if files is None:
        if not allow_download:
            raise DataNotFoundError(missing_message(dataset, split, root, "download not allowed"))
        download(dataset, split, root)
        files = locate(dataset, split, root)
        if files is None:
            raise DataNotFoundError(missing_message(dataset, split, root, "download left no files"))
    images, labels = read_split(dataset, files)
    return ImageSet(
        images=torch.from_numpy(images.copy()),
        labels=torch.from_numpy(labels.astype("int64")),
        source=describe_source(
            f"{dataset.name} {split} split from {files[0].parent} ({len(images)} images)", files[0].parent
        ),
    )


@dataclass
class TrainHeldout:
    """The training images an experiment fits on, and disjoint held-out images for evaluation."""

    train: ImageSet
    heldout: ImageSet
    description: str


def load_train_heldout(name: str, cfg: ImageDataConfig) -> TrainHeldout:
    """Shuffle the configured split once with `heldout_seed` (MNIST's files are ordered by writer
    group, so a slice of the file would differ in kind from the rest), hold out the first
    `heldout` images, optionally keep one class, and train on the first `train_subset` of the rest.
    With `train_range`/`heldout_range`, those slices of the file replace the shuffle (the original
    notebook's choice); class and subset apply to them alike."""
    full = load_split(name, cfg.train_split, cfg.root, cfg.download)
    n = len(full.labels)
    if cfg.train_range is not None:
        train_idx = _index_range(cfg.train_range, n, "data.train_range")
        heldout_idx = _index_range(cfg.heldout_range, n, "data.heldout_range")
        drawn = f"file indices {_shown(cfg.train_range)} trained on, {_shown(cfg.heldout_range)} held out"
    else:
        if cfg.heldout >= n:
            raise UserError(f"data.heldout={cfg.heldout} leaves no training images out of {n}")
        order = torch.randperm(n, generator=Seeds(cfg.heldout_seed).generator("held-out"))
        heldout_idx, train_idx = order[: cfg.heldout], order[cfg.heldout :]
        drawn = f"a random draw, seed {cfg.heldout_seed}"
    what = "images"
    if cfg.train_class is not None:
        train_idx = train_idx[full.labels[train_idx] == cfg.train_class]
        heldout_idx = heldout_idx[full.labels[heldout_idx] == cfg.train_class]
        what = f"images of class {cfg.train_class}"
        if len(train_idx) == 0 or (cfg.heldout and len(heldout_idx) == 0):
            raise UserError(f"data.train_class={cfg.train_class} leaves no training or held-out images")
    if cfg.train_subset:
        train_idx = train_idx[: cfg.train_subset]
    train = ImageSet(full.images[train_idx], full.labels[train_idx], full.source)
    heldout = ImageSet(full.images[heldout_idx], full.labels[heldout_idx], full.source)
    description = f"{full.source}: trained on {len(train_idx)} {what}, {len(heldout_idx)} held out ({drawn})"
    if cfg.train_split == "test":
        description += " — the TEST split used as training set (a stand-in, not a full-MNIST result)"
    return TrainHeldout(train, heldout, description)


def _shown(bounds: tuple[int, int]) -> str:
    return f"{bounds[0]}–{bounds[1] - 1}"


def _index_range(bounds: tuple[int, int], n: int, key: str) -> torch.Tensor:
    if bounds[1] > n:
        raise UserError(f"{key} [{bounds[0]}, {bounds[1]}) reaches past the split's {n} images")
    return torch.arange(*bounds)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] → float [N, 1, 28, 28] in [0, 1]."""
    return images.unsqueeze(1).float().div_(255.0)


def to_signed_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] → float [N, 1, 28, 28] in [-1, 1], as a tanh generator outputs."""
    return to_unit_range(images).mul_(2.0).sub_(1.0)
