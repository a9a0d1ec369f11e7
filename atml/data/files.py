"""The one place atml looks for a dataset's files on disk, and tells real files from fake ones."""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from atml.errors import DataCorruptError

log = logging.getLogger("atml")

FAKE_MARKER = "ATML_FAKE_DATA.txt"  # written by `atml data fake` beside the files it makes


def system_dirs(dirs: Iterable[str]) -> list[Path]:
    """The machine-wide folders a dataset may sit in (Debian's packages, the project's shared
    folder), unless ATML_NO_SYSTEM_DATA=1 hides them: how a test proves it needs none."""
    return [] if os.environ.get("ATML_NO_SYSTEM_DATA") == "1" else [Path(d) for d in dirs]


def find_split(
    folders: Iterable[Path], names: Sequence[str], suffixes: Sequence[str] = ("",)
) -> list[Path] | None:
    """The files `names` in the first of `folders` that holds every one of them (each under one of
    `suffixes`, e.g. "" or ".gz"), or None. A file beside its own gzip (`x` and `x.gz` of the same
    content: torchvision's download keeps both) is one file, read plain; two copies that differ are
    an error naming both: which one a run reads must never be a silent choice."""
    for folder in folders:
        copies = [[folder / (n + s) for s in suffixes if (folder / (n + s)).is_file()] for n in names]
        for found in copies:
            if len(found) > 1 and not same_content(found):
                raise DataCorruptError(
                    f"two copies of one file differ: {' and '.join(map(str, found))}; remove the one that "
                    f"is not the real data (a file written by `atml data fake` sits beside an {FAKE_MARKER})"
                )
        if all(copies):
            return [found[0] for found in copies]
    return None


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """The content of a file, decompressed if it ends in .gz; a damaged gzip is a DataCorruptError."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            while block := handle.read(size):
                yield block
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataCorruptError(
            f"{path} is not a readable gzip file ({exc}); delete it and fetch it again"
        ) from None


def same_content(paths: Sequence[Path]) -> bool:
    """Whether every file holds the same bytes once decompressed (streamed: no file is read whole)."""
    first, *others = paths
    for other in others:
        a, b = _chunks(first), _chunks(other)
        left = right = b""
        while True:
            if not left:
                left = next(a, b"")
            if not right:
                right = next(b, b"")
            if not left or not right:
                if left or right:
                    return False
                break
            n = min(len(left), len(right))
            if left[:n] != right[:n]:
                return False
            left, right = left[n:], right[n:]
    return True


def is_fake(folder: Path) -> bool:
    return (folder / FAKE_MARKER).is_file()


def describe_source(description: str, folder: Path) -> str:
    """A dataset's description for logs and metrics, marked FAKE where `atml data fake` wrote it
    (with a warning: numbers from it say nothing about the real dataset)."""
    if not is_fake(folder):
        return description
    log.warning(f"atml: FAKE data in {folder} (written by `atml data fake`): numbers from it are not real")
    return f"FAKE data: {description}"
