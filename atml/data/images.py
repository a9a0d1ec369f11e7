"""Labelled image datasets as uint8 [N, C, H, W] tensors: one description per dataset.

MNIST and FashionMNIST (IDX files, described in atml.data.mnist), CIFAR-10 and CIFAR-100
(torchvision's `cifar-10-batches-py` / `cifar-100-python` pickles) and STL-10 (`stl10_binary`).
Each is looked for under the data root in torchvision's layout, then in known locations, then
downloaded by torchvision when allowed; otherwise one error names the files and their folder.
Any image experiment takes any of them: 1-channel images become 3-channel at preprocessing.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atml.data import mnist
from atml.data.files import find_split, system_dirs
from atml.errors import DataCorruptError, DataNotFoundError, first_line

Decoded = tuple[np.ndarray, np.ndarray, tuple[str, ...]]  # uint8 [N, C, H, W], int64 [N], class names
SPLITS = ("train", "test")


@dataclass(frozen=True)
class ImageDataset:
    name: str
    folder: str  # under the data root, as torchvision lays it out
    files: dict[str, tuple[str, ...]]  # the files each split needs, relative to the folder
    decode: Callable[[Path, str], Decoded]
    torchvision_name: str
    system_dirs: tuple[str, ...] = ()

    def candidate_dirs(self, root: str | Path) -> list[Path]:
        return [Path(root).expanduser() / self.folder, *system_dirs(self.system_dirs)]

    def locate(self, split: str, root: str | Path) -> Path | None:
        found = find_split(self.candidate_dirs(root), self.files[split])
        return found[0].parent if found else None

    def fetch(self, split: str, root: str | Path) -> None:
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.torchvision_name)
        kwargs = {"split": split} if self.torchvision_name == "STL10" else {"train": split == "train"}
        try:
            cls(str(Path(root).expanduser()), download=True, **kwargs)
        except Exception as exc:  # URLError, RuntimeError or OSError, depending on the failure
            reason = first_line(exc)
            raise DataNotFoundError(self.missing_message(split, root, f"download failed: {reason}")) from None

    def missing_message(self, split: str, root: str | Path, why: str) -> str:
        looked = ", ".join(str(d) for d in self.candidate_dirs(root))
        return (
            f"{self.name} {split} split not found ({why}). Put {', '.join(self.files[split])} in "
            f"{Path(root).expanduser() / self.folder} (looked in: {looked}), set data.root, "
            f"or set data.download=true where there is internet (`atml data fetch {self.name}`)"
        )


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")  # as torchvision reads the Python 2 pickles
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise DataCorruptError(
            f"{path} is not a readable CIFAR pickle ({type(exc).__name__}); delete it and fetch it again"
        ) from None


def _cifar_decoder(
    batches: dict[str, tuple[str, ...]], label_key: str, meta: str, names_key: str
) -> Callable[[Path, str], Decoded]:
    def decode(folder: Path, split: str) -> Decoded:
        images, labels = [], []
        for name in batches[split]:
            batch = _unpickle(folder / name)
            try:
                data = np.asarray(batch["data"], dtype=np.uint8)
                images.append(data.reshape(-1, 3, 32, 32))
                labels.append(np.asarray(batch[label_key], dtype=np.int64))
            except (KeyError, ValueError) as exc:
                raise DataCorruptError(
                    f"{folder / name} is not a CIFAR batch ({type(exc).__name__}: {exc})"
                ) from None
        try:
            classes = tuple(str(n) for n in _unpickle(folder / meta)[names_key])
        except (KeyError, TypeError) as exc:
            raise DataCorruptError(f"{folder / meta} lacks class names ({exc})") from None
        return np.concatenate(images), np.concatenate(labels), classes

    return decode


STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
STL10_SIDE = 96


def _decode_stl10(folder: Path, split: str) -> Decoded:
    pixels = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
    labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1  # stored 1…10
    per_image = 3 * STL10_SIDE * STL10_SIDE
    if len(pixels) % per_image or len(pixels) // per_image != len(labels):
        raise DataCorruptError(
            f"{folder / f'{split}_X.bin'} holds {len(pixels)} bytes: not {len(labels)} images of 3×96×96 "
            f"(as {split}_y.bin says); delete both and fetch them again"
        )
    images = pixels.reshape(-1, 3, STL10_SIDE, STL10_SIDE).transpose(0, 1, 3, 2)  # stored column-major
    names = folder / "class_names.txt"
    classes = tuple(names.read_text().split()) if names.is_file() else STL10_CLASSES
    return np.ascontiguousarray(images), labels, classes


CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
DATASETS: dict[str, ImageDataset] = {
    "cifar10": ImageDataset(
        "cifar10",
        "cifar-10-batches-py",
        {"train": CIFAR10_TRAIN + ("batches.meta",), "test": ("test_batch", "batches.meta")},
        _cifar_decoder(
            {"train": CIFAR10_TRAIN, "test": ("test_batch",)}, "labels", "batches.meta", "label_names"
        ),
        "CIFAR10",
    ),
    "cifar100": ImageDataset(
        "cifar100",
        "cifar-100-python",
        {"train": ("train", "meta"), "test": ("test", "meta")},
        _cifar_decoder({"train": ("train",), "test": ("test",)}, "fine_labels", "meta", "fine_label_names"),
        "CIFAR100",
    ),
    "stl10": ImageDataset(
        "stl10", "stl10_binary", {s: (f"{s}_X.bin", f"{s}_y.bin") for s in SPLITS}, _decode_stl10, "STL10"
    ),
}
NAMES = (*mnist.DATASETS, *DATASETS)


def where(name: str, split: str, root: str | Path) -> tuple[Path | None, list[Path]]:
    """The folder holding a split of a dataset (or None), and every folder looked in."""
    if name in mnist.DATASETS:
        dataset = mnist.DATASETS[name]
        files = mnist.locate(dataset, split, root)
        return (files[0].parent if files else None), mnist.candidate_dirs(dataset, root)
    spec = DATASETS[name]
    return spec.locate(split, root), spec.candidate_dirs(root)


def fetch(name: str, root: str | Path) -> None:
    """Download both splits with torchvision (needs internet)."""
    for split in SPLITS:
        if name in mnist.DATASETS:
            mnist.download(mnist.DATASETS[name], split, root)
        else:
            DATASETS[name].fetch(split, root)


def verify(name: str, split: str, root: str | Path) -> None:
    """Read the split where a run finds it, with the run's own checks (a DataCorruptError naming
    the damaged file); nothing is kept."""
    if name in mnist.DATASETS:
        dataset = mnist.DATASETS[name]
        files = mnist.locate(dataset, split, root)
        if files:
            mnist.read_split(dataset, files)
    elif folder := DATASETS[name].locate(split, root):
        DATASETS[name].decode(folder, split)
