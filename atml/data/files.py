"""The one place atml looks for a dataset's files on disk."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def find_split(
    folders: Iterable[Path], names: Sequence[str], suffixes: Sequence[str] = ("",)
) -> list[Path] | None:
    """The files `names` in the first of `folders` that holds every one of them (each under the
    first of `suffixes` found there, e.g. "" then ".gz"), or None."""
    for folder in folders:
        found = [
            next((folder / (n + s) for s in suffixes if (folder / (n + s)).is_file()), None) for n in names
        ]
        if all(found):
            return found
    return None
