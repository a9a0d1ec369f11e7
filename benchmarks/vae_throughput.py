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

from atml.data.batching import StackedBatches, TensorBatches
from atml.data.mnist_sets import load_split, to_unit_range
from atml.experiments.vae import VaeTrainConfig
from atml.experiments.vae.parts import VaeStep
from atml.models.vae import ConvVAE, StackedConvVAE
from atml.schedules import BetaSchedule
from atml.seeding import Seeds
from benchmarks.common import Comparison, PerItemDataset, compare

BATCH = 128


def reference_step(model: ConvVAE, optimizer: torch.optim.Optimizer, device: torch.device):
    noise = torch.Generator(device).manual_seed(0)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x = batch[0].to(device)
        recon, mu, logvar = model(x, noise)
        loss = (
            F.mse_loss(recon, x, reduction="sum") - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        ) / len(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="data")
    parser.add_argument("--batches", type=int, default=0, help="batches per loop (0: one epoch, 468 batches)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)

    split = load_split("fashion-mnist", "train", args.root, allow_download=False)
    dataset = PerItemDataset(split.images, split.labels, transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True)
    model = ConvVAE().to(device)
    reference = reference_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), device)

    images = to_unit_range(split.images).to(device)
    n = args.batches or len(loader)
    model, generators = StackedConvVAE([ConvVAE().to(device)]), [Seeds(0).generator("training", device)]
    ours = VaeStep(model, VaeTrainConfig(), BetaSchedule(), n, device, generators)
    return compare(
        "vae_throughput",
        ("reference (DataLoader, fp32)", reference, loader),
        (
            f"atml (in-memory + VaeStep, {ours.precision})",
            ours,
            StackedBatches([TensorBatches(images, batch_size=BATCH)]),
        ),
        n,
        BATCH,
        device=str(device),
    )


if __name__ == "__main__":
    main()
