"""Unlabelled photos the user names: files or folders, any size or mode (RGB, RGBA, grayscale,
palette), converted to RGB; with none named, scikit-learn's two sample photos (no download)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atml.errors import DataCorruptError, DataNotFoundError

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Photo:
    name: str
    pixels: np.ndarray  # uint8 [H, W, 3]


def _files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
            if not found:
                raise DataNotFoundError(f"folder {path} holds no images ({', '.join(SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DataNotFoundError(f"image {path} not found; data.images takes image files and folders")
    return files


def _rgb(image) -> np.ndarray:
    """Any PIL mode → RGB; transparency is composited on white (not on black, which would read as content)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"))


def load_photos(paths: list[str]) -> list[Photo]:
    if not paths:
        from sklearn.datasets import load_sample_images

        sample = load_sample_images()
        return [Photo(Path(f).stem, np.asarray(img)) for f, img in zip(sample.filenames, sample.images)]
    from PIL import Image, UnidentifiedImageError

    photos = []
    for file in _files(paths):
        try:
            with Image.open(file) as image:
                photos.append(Photo(file.stem, _rgb(image)))
        except (UnidentifiedImageError, OSError) as exc:
            raise DataCorruptError(f"{file} is not a readable image ({exc})") from None
    return photos


def to_model_input(photo: Photo, data_config: dict):
    """timm's own eval transform (resize shorter side, centre crop, normalise) on one photo."""
    import timm.data
    from PIL import Image

    transform = timm.data.create_transform(**data_config, is_training=False)
    return transform(Image.fromarray(photo.pixels))
