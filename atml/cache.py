"""The one cache root: $ATML_CACHE_DIR, else ~/.cache/atml; each cache keeps its own folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """The folder of one cache (features, classifiers) under the root; not created here."""
    return Path(os.environ.get("ATML_CACHE_DIR", Path.home() / ".cache" / "atml")) / kind
