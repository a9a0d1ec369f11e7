"""MNIST and FashionMNIST: one IDX format, two datasets.

Resolution order for a split: the configured data root in torchvision's layout
(<root>/<Folder>/raw/<prefix>-images-idx3-ubyte[.gz]), known locations (Debian's
dataset-fashion-mnist package; the project machines' ../shared/datasets), then torchvision's
download when allowed. Otherwise one error
that names the files and where to put them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field, model_validator

from atml import seeding
from atml.config import Seed, Strict
from atml.data.files import describe_source, find_split, system_dirs
from atml.data.idx import read_idx
from atml.errors import DataCorruptError, DataNotFoundError, UserError, first_line


@dataclass(frozen=True)
class IdxDataset:
    name: str
    folder: str  # torchvision's folder name under the data root
    system_dirs: tuple[str, ...]
    classes: tuple[str, ...]

    def torchvision_class(self):
        import torchvision.datasets as tvd

        return getattr(tvd, self.folder)


DATASETS = {
    # ../shared/datasets: the shared data folder beside a checkout on the project's own machines
    "mnist": IdxDataset(
        "mnist", "MNIST", ("../shared/datasets/MNIST/raw",), tuple(str(i) for i in range(10))
    ),
    "fashion-mnist": IdxDataset(
        "fashion-mnist",
        "FashionMNIST",
        ("/usr/share/datasets/fashion-mnist",),
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
IMAGE_SHAPE = (28, 28)


Index = Annotated[int, Field(ge=0)]


class ImageDataConfig(Strict):
    """The data section shared by experiments on MNIST-family datasets."""

    root: str = "data"
    download: bool = True
    train_split: str = Field("train", pattern="^(train|test)$")
    train_subset: int | None = Field(None, ge=1, description="train on N images only (a fixed random draw)")
    train_class: int | None = Field(
        None, ge=0, le=9, description="use only images of this class (held-out ones too)"
    )
    heldout: int = Field(
        1000, ge=1, description="images held out of the split for evaluation (a random draw)"
    )
    heldout_seed: Seed = Field(0, description="seed of the one shuffle that picks held-out and subset images")
    train_range: tuple[Index, Index] | None = Field(
        None, description="train on images [start, stop) of the split in file order, instead of a random draw"
    )
    heldout_range: tuple[Index, Index] | None = Field(
        None, description="hold out images [start, stop) in file order (with train_range; replaces `heldout`)"
    )

    @model_validator(mode="after")
    def _ranges(self) -> ImageDataConfig:
        ranges = {"train_range": self.train_range, "heldout_range": self.heldout_range}
        if (self.train_range is None) != (self.heldout_range is None):
            raise ValueError("train_range and heldout_range go together: set both or neither")
        for key, r in ranges.items():
            if r is not None and r[0] >= r[1]:
                raise ValueError(f"{key} [{r[0]}, {r[1]}) holds no image: start must be below stop")
        if self.train_range and max(self.train_range[0], self.heldout_range[0]) < min(
            self.train_range[1], self.heldout_range[1]
        ):
            raise ValueError("train_range and heldout_range overlap: held-out images would be trained on")
        return self


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 [N, 28, 28]
    labels: torch.Tensor  # int64 [N]
    source: str


def split_files(split: str) -> tuple[str, str]:
    prefix = SPLIT_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def candidate_dirs(dataset: IdxDataset, root: str | Path) -> list[Path]:
    return [Path(root).expanduser() / dataset.folder / "raw", *system_dirs(dataset.system_dirs)]


def locate(dataset: IdxDataset, split: str, root: str | Path) -> tuple[Path, Path] | None:
    """The (images, labels) files of the first candidate folder holding both, or None."""
    found = find_split(candidate_dirs(dataset, root), split_files(split), ("", ".gz"))
    return (found[0], found[1]) if found else None


def download(dataset: IdxDataset, split: str, root: str | Path) -> None:
    try:
        dataset.torchvision_class()(str(Path(root).expanduser()), train=(split == "train"), download=True)
    except Exception as exc:  # torchvision raises URLError, RuntimeError or OSError depending on the failure
        reason = first_line(exc)
        raise DataNotFoundError(
            _missing_message(dataset, split, root, f"download failed: {reason}")
        ) from None


def _missing_message(dataset: IdxDataset, split: str, root: str | Path, why: str) -> str:
    images, labels = split_files(split)
    looked = ", ".join(str(d) for d in candidate_dirs(dataset, root))
    remedy = (
        "or run where there is internet"
        if why.startswith("download failed")
        else "or set data.download=true where there is internet"
    )
    return (
        f"{dataset.name} {split} split not found ({why}). Put {images}[.gz] and {labels}[.gz] in "
        f"{Path(root).expanduser() / dataset.folder / 'raw'} (looked in: {looked}), set data.root, {remedy}"
    )


def load_split(name: str, split: str, root: str | Path, allow_download: bool) -> ImageSet:
    dataset = DATASETS[name]
    files = locate(dataset, split, root)
    if files is None:
        if not allow_download:
            raise DataNotFoundError(_missing_message(dataset, split, root, "download not allowed"))
        download(dataset, split, root)
        files = locate(dataset, split, root)
        if files is None:
            raise DataNotFoundError(_missing_message(dataset, split, root, "download left no files"))
    images, labels = (read_idx(f) for f in files)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataCorruptError(
            f"{files[0]} and {files[1]} disagree: images {images.shape} vs labels {labels.shape}"
        )
    if images.shape[1:] != IMAGE_SHAPE:
        raise DataCorruptError(
            f"{files[0]} holds images of {images.shape[1]}×{images.shape[2]} pixels; {name} images are "
            f"{IMAGE_SHAPE[0]}×{IMAGE_SHAPE[1]}: replace it with the real file"
        )
    if labels.max(initial=0) >= len(dataset.classes):
        raise DataCorruptError(
            f"{files[1]} holds label {labels.max()} but {name} has {len(dataset.classes)} classes"
        )
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
        order = torch.randperm(n, generator=seeding.generator(cfg.heldout_seed))
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
