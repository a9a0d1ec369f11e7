"""Unlabelled photos the user names: files or folders, any size or mode (RGB, RGBA, grayscale,
palette), converted to RGB; with none named, scikit-learn's two sample photos (no download)."""

from __future__ import annotations

import os
import warnings
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

    files = _files(paths)
    photos = []
    for file, name in zip(files, _names(files)):
        try:
            with warnings.catch_warnings():  # PIL's size warning: _check_size says it in one line
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(file)  # reads the header only: the size is known before decoding
            with image:
                _check_size(file, *image.size)
                photos.append(Photo(name, _rgb(image)))
        except Image.DecompressionBombError as exc:
            raise DataCorruptError(f"{file} is too large to decode ({exc})") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataCorruptError(f"{file} is not a readable image ({exc})") from None
    return photos


def _check_size(file: Path, width: int, height: int) -> None:
    from PIL import Image

    if width * height > Image.MAX_IMAGE_PIXELS:
        raise DataCorruptError(
            f"{file} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); atml decodes photos "
            f"up to {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels: downscale it first"
        )


def _names(files: list[Path]) -> list[str]:
    """Each photo's name in figures and metrics: its file name without suffix, or, where two files
    share one, its path below their common folder (a/parrot, b/parrot), so no result replaces another."""
    stems = [f.stem for f in files]
    if len(set(stems)) == len(stems):
        return stems
    common = Path(os.path.commonpath([f.resolve().parent for f in files]))
    return [f.resolve().relative_to(common).with_suffix("").as_posix() for f in files]


def to_model_input(photo: Photo, data_config: dict):
    """timm's own eval transform (resize shorter side, centre crop, normalise) on one photo."""
    import timm.data
    from PIL import Image

    transform = timm.data.create_transform(**data_config, is_training=False)
    return transform(Image.fromarray(photo.pixels))
