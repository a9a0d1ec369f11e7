"""A small CNN that labels 28×28 digits; its penultimate layer is the feature space in which
GAN samples are compared with real images (a Fréchet distance, as FID does with Inception)."""

from __future__ import annotations

import torch
from torch import nn


class DigitClassifier(nn.Module):
    def __init__(self, n_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, feature_dim),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @classmethod
    def loaded(cls, state: dict, device: torch.device, n_classes: int = 10) -> DigitClassifier:
        """A classifier holding `state`, built on the meta device: no initial weights are drawn
        from torch's global stream only to be overwritten (atml.seeding)."""
        with torch.device("meta"):
            model = cls(n_classes)
        model.load_state_dict(state, assign=True)
        return model.to(device)
