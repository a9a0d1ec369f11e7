"""A frozen pretrained model as one run uses it — ResNet, ViT and CLIP alike: the model in eval
mode on the run's device, its weights record, its preprocessing and the precision of its passes;
and the one path from it to features: a batched no-grad pass over a dataset draw, kept in the
feature cache under everything that determines the numbers."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from atml.data.draws import Draw
from atml.data.preprocess import Preprocess
from atml.feature_cache import FeatureCache, Outputs, batched_outputs, cache_root, fingerprint
from atml.models.weights import frozen


@dataclass(frozen=True)
class FrozenModel:
    name: str  # what the cache key and the figures call it: "resnet152", "open_clip:ViT-B-32", …
    model: nn.Module
    preprocess: Preprocess
    weights: dict  # the weights record (for random weights, with the seed of their init)
    precision: str  # "fp32" | "bf16": the passes' autocast
    device: torch.device
    categories: tuple[str, ...] | None = None

    @classmethod
    def load(
        cls,
        library: str,
        name: str,
        spec: str,
        *,
        allow_download: bool,
        init_seed: int,
        device: torch.device,
        precision: str,
        key: str | None = None,
        **options,
    ) -> FrozenModel:
        p = frozen(library, name, spec, allow_download, init_seed, **options)
        weights = p.record.describe(init_seed)
        return cls(key or name, p.model.to(device), p.preprocess, weights, precision, device, p.categories)

    @property
    def random_weights(self) -> bool:
        return self.weights.get("source") == "none"

    def describe(self) -> dict:
        """What every part's metrics record about the model it read: weights, whether random, precision."""
        return {"weights": self.weights, "random_weights": self.random_weights, "precision": self.precision}

    def copy_of_model(self) -> nn.Module:
        """A private copy to change (train, cut shortcuts, reformat): the frozen one stays as it is."""
        return copy.deepcopy(self.model)

    def with_preprocess(self, preprocess: Preprocess) -> FrozenModel:
        return replace(self, preprocess=preprocess)

    def features(
        self,
        forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
        split: Draw,
        *,
        dataset: str,
        split_name: str,
        readouts: dict,
        batch_size: int,
        cache: bool,
        label: str,
        flip: bool = False,
    ) -> Outputs:
        """forward() over every image of `split` (preprocessed on the device, in batches, under the
        precision), from the feature cache when it holds them. `readouts` names what forward()
        returns and anything else that changes it (layers, shortcuts switched off)."""
        determinants = {
            "model": self.name,
            "weights": self.weights,
            "precision": self.precision,
            "preprocess": self.preprocess.describe(),
            "dataset": dataset,
            "split": split_name,
            "indices": fingerprint(split.indices),
            "flip": flip,
            "readouts": readouts,
        }

        def compute() -> dict[str, torch.Tensor]:
            return batched_outputs(
                forward, split.images, self.preprocess, self.device, batch_size,
                flip=flip, label=label, precision=self.precision,
            )  # fmt: skip

        return FeatureCache(cache_root(), enabled=cache).get_or_compute(determinants, compute, label)
