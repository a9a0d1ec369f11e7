"""Format-true fake datasets: real file formats and layouts, synthetic class-dependent content.

Each class is a fixed random blob pattern; samples are shifted, rescaled, noisy copies of it,
so a classifier can learn the classes and a generator has modes to find or miss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atml.data.idx import write_idx
from atml.data.mnist import DATASETS, split_files


def class_templates(n_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    templates = np.zeros((n_classes, size, size))
    for c in range(n_classes):
        for _ in range(3):
            cy, cx = rng.uniform(6, size - 6, 2)
            sy, sx = rng.uniform(1.5, 4.0, 2)
            templates[c] += np.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
    return templates / templates.max(axis=(1, 2), keepdims=True)


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


def write_fake_idx_dataset(name: str, root: Path, n_train: int, n_test: int, gzip: bool = False, seed: int = 0) -> Path:
    """Write <root>/<Folder>/raw/{train,t10k}-{images,labels}-idx*-ubyte[.gz]; returns the raw folder."""
    dataset = DATASETS[name]
    raw = Path(root) / dataset.folder / "raw"
    suffix = ".gz" if gzip else ""
    for split, n, split_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        images, labels = fake_images(n, len(dataset.classes), seed=split_seed)
        images_name, labels_name = split_files(split)
        write_idx(raw / (images_name + suffix), images)
        write_idx(raw / (labels_name + suffix), labels)
    return raw
