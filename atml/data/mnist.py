"""MNIST and FashionMNIST: one IDX format, two datasets.

Resolution order for a split: the configured data root in torchvision's layout
(<root>/<Folder>/raw/<prefix>-images-idx3-ubyte[.gz]), known locations (Debian's
dataset-fashion-mnist package; the project machines' ../shared/datasets), then torchvision's
download when allowed. Otherwise one error
that names the files and where to put them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from atml.config import Seed, Strict
from atml.data.files import find_split, system_dirs
from atml.errors import DataNotFoundError, first_line


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
    """The split's two files through torchvision's own download code, mirrors and md5 table
    (`<Dataset>.mirrors`, `.resources`), into a scratch folder beside `raw/`; moved into `raw/`
    (the .gz and its extracted file, as torchvision leaves them) only once both are complete and
    verified, so a cut or damaged download leaves nothing a later run would read."""
    from torchvision.datasets.utils import download_and_extract_archive

    cls = dataset.torchvision_class()
    md5 = dict(cls.resources)
    raw = Path(root).expanduser() / dataset.folder / "raw"
    try:
        raw.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".atml-download-", dir=raw) as scratch:
            for name in split_files(split):
                archive, failures = f"{name}.gz", []
                for mirror in cls.mirrors:
                    try:
                        download_and_extract_archive(
                            f"{mirror}{archive}", download_root=scratch, filename=archive, md5=md5[archive]
                        )
                        break
                    except Exception as exc:  # URLError, HTTPError, a refused proxy, a failed md5 check
                        failures.append(f"{mirror}{archive}: {first_line(exc)}")
                        for partial in Path(scratch).iterdir():
                            partial.unlink()
                else:
                    raise DataNotFoundError(
                        missing_message(dataset, split, root, f"download failed: {'; '.join(failures)}")
                    )
                for done in (archive, name):
                    os.replace(Path(scratch) / done, raw / done)
    except OSError as exc:
        raise DataNotFoundError(
            missing_message(dataset, split, root, f"download failed: cannot write {raw}: {exc.strerror}")
        ) from None


def missing_message(dataset: IdxDataset, split: str, root: str | Path, why: str) -> str:
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


def read_split(dataset: IdxDataset, files: tuple[Path, Path]):
    """A split's images and labels (numpy uint8) from its two IDX files, checked as one split: a
    damaged or truncated file, images of another size, or labels that do not match are a
    DataCorruptError naming the file. `atml data check` reads a split through this, as a run does."""
    from atml.data.idx import read_idx
    from atml.errors import DataCorruptError

    images, labels = (read_idx(f) for f in files)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataCorruptError(
            f"{files[0]} and {files[1]} disagree: images {images.shape} vs labels {labels.shape}"
        )
    if images.shape[1:] != IMAGE_SHAPE:
        raise DataCorruptError(
            f"{files[0]} holds images of {images.shape[1]}×{images.shape[2]} pixels; {dataset.name} images "
            f"are {IMAGE_SHAPE[0]}×{IMAGE_SHAPE[1]}: replace it with the real file"
        )
    if labels.max(initial=0) >= len(dataset.classes):
        raise DataCorruptError(
            f"{files[1]} holds label {labels.max()} but {dataset.name} has {len(dataset.classes)} classes"
        )
    return images, labels
