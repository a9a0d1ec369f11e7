"""What a run reads from outside its folder — dataset splits and pretrained weights — declared by
each experiment from its resolved config (no torch), so that `atml data check --for` and `atml data
fetch --for` know what a command will need before it runs (for compute nodes without internet)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSplit:
    kind = "data"
    dataset: str  # a name of atml.data.images.NAMES
    split: str  # train | test
    root: str  # the config's data.root

    def describe(self) -> str:
        return f"{self.dataset} {self.split}"


@dataclass(frozen=True)
class Weights:
    kind = "weights"
    library: str  # torchvision | timm | open_clip
    model: str
    weights: str  # the config's model.weights: a named source, a local file or none

    def describe(self) -> str:
        return f"{self.model} {self.weights}"


Need = DatasetSplit | Weights


def unique(needs: list[Need]) -> list[Need]:
    """Each need once, in first-seen order; random weights (`none`) need nothing."""
    return [n for n in dict.fromkeys(needs) if not (isinstance(n, Weights) and n.weights == "none")]
