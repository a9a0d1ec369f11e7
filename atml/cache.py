"""The one cache root: $ATML_CACHE_DIR, else ~/.cache/atml; each cache keeps its own folder.
Every cache is an optimisation: what is deleted is computed again when next needed. With
$ATML_CACHE_MAX_GB set, a cache that writes a file then deletes its least recently used files
until the root fits (`atml cache info | clear` shows and empties it)."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from atml.errors import UserError

KINDS = ("features", "classifiers")  # the caches atml keeps (the libraries' own weights caches are theirs)
log = logging.getLogger("atml")


def root() -> Path:
    return Path(os.environ.get("ATML_CACHE_DIR", Path.home() / ".cache" / "atml"))


def cache_dir(kind: str) -> Path:
    """The folder of one cache (features, classifiers) under the root; not created here."""
    return root() / kind


@dataclass(frozen=True)
class Usage:
    kind: str
    files: int
    bytes: int


def _files(kind: str) -> list[Path]:
    folder = cache_dir(kind)
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def usage() -> list[Usage]:
    """Each cache's files and bytes."""
    return [
        Usage(kind, len(files), sum(p.stat().st_size for p in files))
        for kind in KINDS
        for files in [_files(kind)]
    ]


def clear(kinds: list[str], older_than_days: float | None = None) -> Usage:
    """Delete the files of `kinds` (all caches if empty), or those unused for `older_than_days`:
    the files and bytes freed."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UserError(f"unknown cache '{unknown[0]}'; atml's caches: {', '.join(KINDS)}")
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    files = freed = 0
    for kind in kinds or KINDS:
        for path in _files(kind):
            stat = path.stat()
            if cutoff is None or max(stat.st_atime, stat.st_mtime) < cutoff:
                path.unlink()
                files, freed = files + 1, freed + stat.st_size
    return Usage(", ".join(kinds or KINDS), files, freed)


def max_bytes() -> int | None:
    """$ATML_CACHE_MAX_GB as bytes (None: no cap); a value that is not a positive number is a UserError."""
    value = os.environ.get("ATML_CACHE_MAX_GB")
    if not value:
        return None
    try:
        cap = float(value)
    except ValueError:
        cap = -1.0
    if not cap > 0:
        raise UserError(f"ATML_CACHE_MAX_GB={value!r}: give a size in GB above 0")
    return int(cap * 1e9)


def fit_to_cap(keep: Path) -> None:
    """With a cap: delete the least recently used cache files (never `keep`, the one just written)
    until every cache together fits under it."""
    cap = max_bytes()
    if cap is None:
        return
    files = [p for kind in KINDS for p in _files(kind) if p != keep]
    total = sum(p.stat().st_size for p in files) + (keep.stat().st_size if keep.is_file() else 0)
    for path in sorted(files, key=lambda p: max(p.stat().st_atime, p.stat().st_mtime)):
        if total <= cap:
            break
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        total -= size
        log.info(
            f"  cache over ATML_CACHE_MAX_GB: deleted {path} ({size / 1e6:,.1f} MB, least recently used)"
        )


def writable(folder: Path) -> bool:
    """Whether `folder` exists as a writable folder, or could be created as one."""
    folder = Path(folder).absolute()
    while not folder.exists():
        if folder.is_symlink() or folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


_scratch: tempfile.TemporaryDirectory | None = None


def scratch_dir(kind: str) -> Path:
    """A folder for what a cache that cannot be written would have kept: this process's only,
    deleted when it ends (the next run fetches it again)."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.TemporaryDirectory(prefix="atml-uncached-")
    folder = Path(_scratch.name) / kind
    folder.mkdir(exist_ok=True)
    return folder
