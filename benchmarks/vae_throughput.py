"""One epoch of the assignment's VAE two ways, in one process:

  reference: per-item PIL + ToTensor as torchvision's FashionMNIST does, DataLoader (batch 128), the usual
             notebook step (F.mse_loss sum + KL, Adam);
  atml:      the split decoded once into one tensor, batches by index, and atml's VaeStep
             (fused Adam; bf16 autocast where the CPU runs bf16 natively, as `precision: auto`).

Prints images/s for both, the ratio, and each one's executed FLOP/s as a share of a torch.matmul
peak measured in the same run.

  python -m benchmarks.vae_throughput            # finds FashionMNIST as atml does (Debian's package)
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms

from atml.data.batching import TensorBatches
from atml.data.mnist import load_split, to_unit_range
from atml.experiments.vae import VaeStep, VaeTrainConfig
from atml.models.vae import ConvVAE
from atml.schedules import BetaSchedule
from benchmarks.common import PerItemDataset, compare

BATCH = 128


def reference_step(model: ConvVAE, optimizer: torch.optim.Optimizer):
    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, _ = batch
        recon, mu, logvar = model(x)
        loss = (
            F.mse_loss(recon, x, reduction="sum") - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        ) / len(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="data")
    parser.add_argument("--batches", type=int, default=0, help="batches per loop (0: one epoch, 468 batches)")
    args = parser.parse_args()
    torch.manual_seed(0)

    split = load_split("fashion-mnist", "train", args.root, allow_download=False)
    dataset = PerItemDataset(split.images, split.labels, transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True)
    model = ConvVAE()
    reference = reference_step(model, torch.optim.Adam(model.parameters(), lr=1e-3))

    images = to_unit_range(split.images)
    n = args.batches or len(loader)
    ours = VaeStep(ConvVAE(), VaeTrainConfig(), BetaSchedule(), total_steps=n, device=torch.device("cpu"))
    compare(
        ("reference (DataLoader, fp32)", reference, loader),
        (f"atml (in-memory + VaeStep, {ours.precision})", ours, TensorBatches(images, batch_size=BATCH)),
        n,
        BATCH,
    )


if __name__ == "__main__":
    main()
