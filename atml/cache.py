"""The one cache root: $ATML_CACHE_DIR, else ~/.cache/atml; each cache keeps its own folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """The folder of one cache (features, classifiers) under the root; not created here."""
    return Path(os.environ.get("ATML_CACHE_DIR", Path.home() / ".cache" / "atml")) / kind


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
