"""The MLP GAN of PyTorch-GAN's gan.py, as the assignment fixes it.

The discriminator returns logits: its sigmoid lives in the losses (BCE with logits), so a
saturated D gives finite, exact gradients instead of float32 0/1 and a log clamped at −100.
"""

from __future__ import annotations

import torch
from torch import nn


def _init_normal(module: nn.Module, std: float) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)


class Generator(nn.Module):
    """z → hidden ReLU layers → 784 tanh, reshaped to [B, 1, 28, 28]."""

    def __init__(
        self,
        latent_dim: int = 100,
        hidden: tuple[int, ...] = (256, 512),
        image_size: int = 28,
        init_std: float = 0.02,
    ):
        super().__init__()
        self.latent_dim, self.image_size = latent_dim, image_size
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers += [nn.Linear(width, image_size * image_size), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _init_normal(self, init_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, self.image_size, self.image_size)


class Discriminator(nn.Module):
    """784 → hidden LeakyReLU(0.2) layers (optional dropout) → 1 logit."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (256, 256),
        image_size: int = 28,
        dropout: float = 0.0,
        init_std: float = 0.02,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        _init_normal(self, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
