"""Train the same MLP GAN for the same number of batches two ways, in one process:

  reference: per-item PIL + ToTensor/Normalize as torchvision's MNIST does, DataLoader, sigmoid D
             with BCELoss,
             one D forward per loss (G step on D(G(z)), then D on real, then D on fakes), as in
             PyTorch-GAN's gan.py;
  atml:      the whole split on the device as one tensor, batches by index, and atml's GanStep
             (real and fake in one D forward, G updated through a frozen D, logits losses).

Prints images/s for both, the ratio, and each one's executed FLOP/s as a share of a torch.matmul
peak measured in the same run.

  python benchmarks/gan_throughput.py --root ../shared/datasets --split test
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from atml.data.batching import StackedBatches, TensorBatches
from atml.data.mnist_sets import load_split, to_signed_range
from atml.experiments.gan import GanTrainConfig
from atml.experiments.gan.parts import GanStep
from atml.models.mlp_gan import Discriminator, Generator
from atml.models.stacked import StackedMLP
from atml.seeding import Seeds
from benchmarks.common import Comparison, PerItemDataset, compare

LATENT, BATCH = 100, 64


class SigmoidOutput(nn.Module):
    """The reference D: probabilities out, shape [B, 1], for nn.BCELoss."""

    def __init__(self, D: nn.Module):
        super().__init__()
        self.D = D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.D(x)).unsqueeze(1)


def reference_step(G, D_prob, opt_g, opt_d, bce, device: torch.device):
    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        real = batch[0].to(device)
        valid = torch.ones(len(real), 1, device=device)
        fake = torch.zeros(len(real), 1, device=device)
        opt_g.zero_grad()
        gen = G(torch.randn(len(real), LATENT, device=device))
        g_loss = bce(D_prob(gen), valid)
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad()
        d_loss = (bce(D_prob(real), valid) + bce(D_prob(gen.detach()), fake)) / 2
        d_loss.backward()
        opt_d.step()

    return step


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="data", help="data root holding MNIST/raw (torchvision layout)")
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)

    split = load_split("mnist", args.split, args.root, allow_download=False)
    dataset = PerItemDataset(
        split.images,
        split.labels,
        transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]),
    )
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True)
    G, D = Generator(LATENT).to(device), Discriminator().to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    reference = reference_step(G, SigmoidOutput(D), opt_g, opt_d, nn.BCELoss(), device)

    images = to_signed_range(split.images).to(device)
    stacked = (StackedMLP([Generator(LATENT).to(device)]), StackedMLP([Discriminator().to(device)]))
    ours = GanStep(*stacked, GanTrainConfig(), [Seeds(0).generator("training", device)])
    return compare(
        "gan_throughput",
        ("reference (DataLoader)", reference, loader),
        ("atml (in-memory + GanStep)", ours, StackedBatches([TensorBatches(images, batch_size=BATCH)])),
        args.batches,
        BATCH,
        device=str(device),
    )


if __name__ == "__main__":
    main()
