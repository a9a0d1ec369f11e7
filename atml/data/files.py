"""The one place atml looks for a dataset's files on disk, and tells real files from fake ones."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
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
    `suffixes`, e.g. "" or ".gz"), or None. Two copies of one file in a folder (`x` and `x.gz`) are
    an error naming both: which one a run reads must never be a silent choice."""
    for folder in folders:
        copies = [[folder / (n + s) for s in suffixes if (folder / (n + s)).is_file()] for n in names]
        for found in copies:
            if len(found) > 1:
                raise DataCorruptError(
                    f"two copies of one file: {' and '.join(map(str, found))}; remove the one that is not "
                    "the real data (a file written by `atml data fake` sits beside an "
                    f"{FAKE_MARKER})"
                )
        if all(copies):
            return [found[0] for found in copies]
    return None


def is_fake(folder: Path) -> bool:
    return (folder / FAKE_MARKER).is_file()


def describe_source(description: str, folder: Path) -> str:
    """A dataset's description for logs and metrics, marked FAKE where `atml data fake` wrote it
    (with a warning: numbers from it say nothing about the real dataset)."""
    if not is_fake(folder):
        return description
    log.warning(f"atml: FAKE data in {folder} (written by `atml data fake`): numbers from it are not real")
    return f"FAKE data: {description}"
