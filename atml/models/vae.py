"""The convolutional VAE of the assignment, unchanged (TASKS §4): the architecture is fixed; and
its stacked form, several seeds' copies trained as one."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from atml.models.stacked import Stacked

LATENT_DIM = 20


class ConvVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 256),
            nn.ReLU(),
        )
        self.mu = nn.Linear(256, LATENT_DIM)
        self.logvar = nn.Linear(256, LATENT_DIM)
        self.decoder = nn.Sequential(
            nn.Linear(LATENT_DIM, 256),
            nn.ReLU(),
            nn.Linear(256, 64 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """z = mu + ε·σ, ε ~ N(0, I) from `generator`."""
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + noise * torch.exp(0.5 * logvar)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterise(mu, logvar, generator)), mu, logvar


class StackedConvVAE(Stacked):
    """N ConvVAEs (one per seed) as one model over [N, batch, ...] (atml.models.stacked); each
    copy draws its reparameterisation noise from its own generator, as its lone module does."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.run("encoder", x)
        return self.run("mu", h), self.run("logvar", h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.run("decoder", z)

    def forward(
        self, x: torch.Tensor, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        # copy by copy: exp's vectorised and scalar paths differ in the last bit (atml.models.stacked)
        z = torch.stack(
            [
                ConvVAE.reparameterise(m, lv, g)
                for m, lv, g in zip(mu.unbind(0), logvar.unbind(0), generators, strict=True)
            ]
        )
        return self.decode(z), mu, logvar
