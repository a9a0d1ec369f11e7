"""Format-true fake datasets: real file formats and layouts, synthetic class-dependent content.

Each class is a fixed random blob pattern; samples are shifted, rescaled, noisy copies of it,
so a classifier can learn the classes and a generator has modes to find or miss.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from atml.data.files import FAKE_MARKER
from atml.data.idx import write_idx
from atml.data.mnist import DATASETS, split_files
from atml.errors import UserError
from atml.seeding import Seeds


def class_templates(n_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    templates = np.zeros((n_classes, size, size))
    for c in range(n_classes):
        for _ in range(3):
            cy, cx = rng.uniform(6, size - 6, 2)
            sy, sx = rng.uniform(1.5, 4.0, 2)
            templates[c] += np.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
    return templates / templates.max(axis=(1, 2), keepdims=True)


def split_seed(seed: int, split: str) -> int:
    """A split's images come from a stream of their own (atml.seeding)."""
    return Seeds(seed).value(f"{split} split")


def fake_images(n: int, n_classes: int = 10, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    templates = class_templates(n_classes, size, np.random.default_rng(1234))
    labels = rng.integers(0, n_classes, n)
    images = np.empty((n, size, size))
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-2, 3, 2)
        images[i] = np.roll(templates[label], (dy, dx), axis=(0, 1)) * rng.uniform(0.7, 1.0)
    images += rng.normal(0, 0.05, images.shape)
    return (np.clip(images, 0, 1) * 255).astype(np.uint8), labels.astype(np.uint8)


def _write_idx(name: str, folder: Path, n_train: int, n_test: int, gzip: bool, seed: int) -> None:
    """{train,t10k}-{images,labels}-idx*-ubyte[.gz] into `folder`."""
    suffix = ".gz" if gzip else ""
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = fake_images(n, len(DATASETS[name].classes), seed=split_seed(seed, split))
        images_name, labels_name = split_files(split)
        write_idx(folder / (images_name + suffix), images)
        write_idx(folder / (labels_name + suffix), labels)


def write_fake_idx_dataset(
    name: str, root: Path, n_train: int, n_test: int, gzip: bool = False, seed: int = 0
) -> Path:
    """Fake MNIST-family files under <root>/<Folder>/raw (see write_fake_dataset); returns that folder."""
    return write_fake_dataset(name, root, n_train, n_test, gzip=gzip, seed=seed)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple(
    f"class_{i:02d}" for i in range(100)
)  # the real meta file names them; fakes need not


def fake_rgb_images(n: int, n_classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 3, size, size]: each class a blob pattern in a colour of its own, shifted and noisy."""
    gray, labels = fake_images(n, n_classes, size, seed)
    colours = np.random.default_rng(4321).uniform(0.3, 1.0, (n_classes, 3))
    images = gray[:, None].astype(np.float64) * colours[labels][:, :, None, None]
    return images.astype(np.uint8), labels.astype(np.int64)


def _pickle(path: Path, payload: dict) -> None:
    import pickle

    path.write_bytes(pickle.dumps(payload))


def _write_cifar(name: str, folder: Path, n_train: int, n_test: int, gzip: bool, seed: int) -> None:
    classes = CIFAR10_CLASSES if name == "cifar10" else CIFAR100_CLASSES
    label_key = (
        "labels" if name == "cifar10" else "fine_labels"
    )  # str keys: what the real pickles give under latin1
    train = fake_rgb_images(n_train, len(classes), 32, split_seed(seed, "train"))
    test = fake_rgb_images(n_test, len(classes), 32, split_seed(seed, "test"))
    if name == "cifar10":
        parts = {f"data_batch_{i + 1}": idx for i, idx in enumerate(np.array_split(np.arange(n_train), 5))}
        files = {file: (train, idx) for file, idx in parts.items()} | {
            "test_batch": (test, np.arange(n_test))
        }
        _pickle(folder / "batches.meta", {"label_names": list(classes)})
    else:
        files = {"train": (train, np.arange(n_train)), "test": (test, np.arange(n_test))}
        _pickle(folder / "meta", {"fine_label_names": list(classes), "coarse_label_names": ["all"]})
    for file, ((images, labels), idx) in files.items():
        payload = {
            "batch_label": file,
            "data": images[idx].reshape(len(idx), -1),
            label_key: labels[idx].tolist(),
            "filenames": [f"fake_{i}.png" for i in idx],
        }
        if name == "cifar100":
            payload["coarse_labels"] = [0] * len(idx)
        _pickle(folder / file, payload)


def _write_stl10(name: str, folder: Path, n_train: int, n_test: int, gzip: bool, seed: int) -> None:
    from atml.data.images import STL10_CLASSES

    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = fake_rgb_images(n, len(STL10_CLASSES), 96, split_seed(seed, split))
        images.transpose(0, 1, 3, 2).tofile(
            folder / f"{split}_X.bin"
        )  # STL-10 stores each channel column-major
        (labels + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(STL10_CLASSES) + "\n")


def dataset_folder(name: str, root: Path) -> Path:
    """Where atml reads (and `atml data fake` writes) a dataset's files under a data root: the
    first folder its reader looks in."""
    from atml.data import images, mnist

    if name in DATASETS:
        return mnist.candidate_dirs(DATASETS[name], root)[0]
    return images.DATASETS[name].candidate_dirs(root)[0]


def write_fake_dataset(
    name: str, root: Path, n_train: int, n_test: int, gzip: bool = False, seed: int = 0, force: bool = False
) -> Path:
    """Format-true fake files of any dataset atml reads, in torchvision's layout under `root`, with
    a FAKE_MARKER beside them; returns their folder. A folder that already holds files (a real
    dataset, perhaps) is refused unless `force`, which replaces the files of the same names. The
    files are made in a scratch folder first, so a failure leaves nothing half-written."""
    folder = dataset_folder(name, root)
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        raise UserError(f"{existing} is not a folder (a file or a broken link): give another --root")
    held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if held and not force:
        shown = ", ".join(held[:3]) + (", …" if len(held) > 3 else "")
        raise UserError(
            f"{folder} already holds {len(held)} file(s) ({shown}); "
            "atml data fake never writes over a dataset: give another --root, or --force to replace them"
        )
    scratch = folder.with_name(f".{folder.name}.atml-fake-partial")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        scratch.mkdir(parents=True)
        writer = _write_idx if name in DATASETS else _write_stl10 if name == "stl10" else _write_cifar
        writer(name, scratch, n_train, n_test, gzip, seed)
        (scratch / FAKE_MARKER).write_text(
            f"Fake {name} written by `atml data fake` ({n_train} train, {n_test} test images, seed {seed}):\n"
            "synthetic blob images in the real file format, not the real dataset.\n"
        )
        if not held:
            if folder.is_dir():
                folder.rmdir()
            scratch.rename(folder)
            return folder
        for made in scratch.iterdir():
            for other in (made.name.removesuffix(".gz"), made.name.removesuffix(".gz") + ".gz"):
                (folder / other).unlink(missing_ok=True)  # no second copy of a split stays behind
            made.replace(folder / made.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder
