"""`atml data check --for` and `atml data fetch --for`: what a command will read, found where a run
looks for it (the same lookups and checks a run makes), or fetched into those places by the same
download code a run uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atml.data import images, mnist
from atml.errors import DataCorruptError, DataNotFoundError, first_line
from atml.needs import DatasetSplit, Need, Weights


@dataclass(frozen=True)
class Found:
    need: Need
    files: tuple[Path, ...]  # empty: missing
    problem: str = ""  # what is missing and where it goes, or what is damaged
    checked: str = ""  # how far the files were checked
    damaged: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.files) and not self.problem

    def line(self) -> str:
        what = f"{self.need.kind}: {self.need.describe()}"
        if self.problem:
            return f"{what:60s} {'DAMAGED' if self.damaged else 'MISSING'}: {self.problem}"
        size = sum(f.stat().st_size for f in self.files)
        where = ", ".join(str(f.absolute()) for f in self.files)
        return f"{what:60s} {size / 1e6:9.1f} MB  {self.checked}  {where}"


WEIGHTS_CHECKED = {  # how far `check` verifies a weights file without loading it
    "timm": "sha256 checked",
    "open_clip": "sha256 checked",
    "torchvision": "not verified (torch checks its hash prefix only when it downloads it)",
}


def split_files(need: DatasetSplit) -> tuple[Path, ...]:
    """The files a run reads for a split, where it finds them (verified as a run verifies them:
    two differing copies are an error), or () when missing."""
    if need.dataset in mnist.DATASETS:
        found = mnist.locate(mnist.DATASETS[need.dataset], need.split, need.root)
        return tuple(found or ())
    spec = images.DATASETS[need.dataset]
    folder = spec.locate(need.split, need.root)
    return tuple(folder / name for name in spec.files[need.split]) if folder else ()


def weights_files(need: Weights, allow_download: bool) -> tuple[Path, ...]:
    from atml.models.weights import weights_file

    path = weights_file(need.library, need.model, need.weights, allow_download)
    return (path,) if path else ()


def check(need: Need) -> Found:
    """Where a run finds the need, read as the run reads it (a dataset split) or checked against
    the hash its cache names it by (Hugging Face weights); nothing is downloaded."""
    if isinstance(need, DatasetSplit):
        files = split_files(need)
        if not files:
            return Found(need, (), f"goes under {Path(need.root).expanduser()}")
        try:
            images.verify(need.dataset, need.split, need.root)
        except DataCorruptError as exc:
            return Found(need, files, first_line(exc), damaged=True)
        return Found(need, files, checked="read as a run reads it")
    try:
        return Found(need, weights_files(need, allow_download=False), checked=WEIGHTS_CHECKED[need.library])
    except DataNotFoundError as exc:
        return Found(need, (), first_line(exc))
    except DataCorruptError as exc:  # a cached blob that fails the sha256 it is named by
        return Found(need, (), first_line(exc), damaged=True)


def fetch(need: Need) -> Found:
    """The need, downloaded where a run looks for it unless already there (a failure raises the
    run's own error: one line, exit 3)."""
    if isinstance(need, Weights):
        return Found(need, weights_files(need, allow_download=True))
    if not split_files(need):
        if need.dataset in mnist.DATASETS:
            mnist.download(mnist.DATASETS[need.dataset], need.split, need.root)
        else:
            images.DATASETS[need.dataset].fetch(need.split, need.root)
    files = split_files(need)
    if not files:
        raise DataNotFoundError(f"{need.describe()}: the download left no files under {need.root}")
    return Found(need, files)


def needs_of(plans) -> list[Need]:
    """Every need of resolved run requests (atml.plan), each once; a need with download off is an
    input error for `fetch`, so it is the caller's to check."""
    from atml.needs import unique

    found: list[Need] = []
    for request in plans:
        for seed_config in request.configs:
            found.extend(request.experiment.needs(seed_config.cfg, tuple(request.parts)))
    return unique(found)
