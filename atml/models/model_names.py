"""The model names timm and open_clip know, shipped as a list (model_names.json) so that a
misspelt `model.name` is refused before torch is imported. The list is trusted only for the
library version it was taken from; under any other version the name is left to the library itself,
when the run loads it. Regenerate after upgrading the libraries: python -m atml.models.model_names"""

from __future__ import annotations

import difflib
import functools
import json
from importlib import metadata
from pathlib import Path

LIST = Path(__file__).with_name("model_names.json")
DISTRIBUTIONS = {"timm": "timm", "open_clip": "open_clip_torch"}  # library → its pip distribution


@functools.cache
def _shipped() -> dict:
    return json.loads(LIST.read_text())


def _installed(library: str) -> str | None:
    try:
        return metadata.version(DISTRIBUTIONS[library])
    except metadata.PackageNotFoundError:
        return None


def unknown(library: str, name: str) -> str | None:
    """Why `name` (timm: with or without its `.tag`) is certainly no model of `library`, or None
    where it is one, or where the shipped list cannot tell (another version is installed)."""
    shipped = _shipped()[library]
    if _installed(library) != shipped["version"]:
        return None
    base = name.split(".", 1)[0] if library == "timm" else name
    if base in shipped["names"]:
        return None
    close = difflib.get_close_matches(base, shipped["names"], n=3, cutoff=0.6)
    listing = "timm.list_models()" if library == "timm" else "open_clip.list_models()"
    hint = f"did you mean {', '.join(close)}?" if close else f"all {len(shipped['names'])}: {listing}"
    return f"unknown {library} model '{base}' ({library} {shipped['version']}); {hint}"


def checked(library: str):
    """A pydantic field validator of a model name for `library`."""

    def check(name: str) -> str:
        problem = unknown(library, name)
        if problem:
            raise ValueError(problem)
        return name

    return check


def write() -> None:
    import open_clip
    import timm

    names = {
        "timm": {"version": _installed("timm"), "names": sorted(timm.list_models())},
        "open_clip": {"version": _installed("open_clip"), "names": sorted(open_clip.list_models())},
    }
    LIST.write_text(json.dumps(names, indent=0) + "\n")
    print(f"wrote {LIST}: " + ", ".join(f"{k} {v['version']} ({len(v['names'])})" for k, v in names.items()))


if __name__ == "__main__":
    write()
