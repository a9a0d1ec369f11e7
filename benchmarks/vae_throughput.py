"""One epoch of the assignment's VAE two ways, in one process:

  reference: torchvision FashionMNIST + ToTensor per item + DataLoader (batch 128), the usual
             notebook step (F.mse_loss sum + KL, Adam);
  atml:      the split decoded once into one tensor, batches by index, and atml's VaeStep.

Prints images/s for both, the ratio, and each one's executed FLOP/s as a share of a torch.matmul
peak measured in the same run.

  python -m benchmarks.vae_throughput            # finds FashionMNIST as atml does (Debian's package)
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from atml.data.batching import TensorBatches
from atml.data.mnist import DATASETS, load_split, locate, to_unit_range
from atml.experiments.vae import VaeStep, VaeTrainConfig
from atml.models.vae import ConvVAE
from atml.schedules import BetaSchedule
from benchmarks.common import flops_of, matmul_peak_flops, report, timed

BATCH = 128


def torchvision_root(root: str) -> str:
    """torchvision wants <root>/FashionMNIST/raw; link the files atml found into such a folder."""
    images, labels = locate(DATASETS["fashion-mnist"], "train", root)
    staged = Path(tempfile.mkdtemp()) / "FashionMNIST" / "raw"
    staged.mkdir(parents=True)
    for f in (images, labels):
        shutil.copy(f, staged / f.name)
    return str(staged.parent.parent)


def reference_step(model: ConvVAE, optimizer: torch.optim.Optimizer):
    def step(x: torch.Tensor) -> None:
        recon, mu, logvar = model(x)
        loss = (F.mse_loss(recon, x, reduction="sum") - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())) / len(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data")
    parser.add_argument("--batches", type=int, default=0, help="batches per loop (0: one epoch of 60,000 images)")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    peak = matmul_peak_flops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak {peak / 1e9:.1f} GFLOP/s")

    dataset = datasets.FashionMNIST(torchvision_root(args.root), train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True)
    ref_model = ConvVAE()
    ref_step = reference_step(ref_model, torch.optim.Adam(ref_model.parameters(), lr=1e-3))
    n = args.batches or len(loader)

    def ref_loop(count: int) -> int:
        for x, _ in itertools.islice(itertools.cycle(loader), count):
            ref_step(x)
        return count * BATCH

    images = to_unit_range(load_split("fashion-mnist", "train", args.root, allow_download=False).images)
    batches = TensorBatches(images, batch_size=BATCH, seed=0)
    atml_step = VaeStep(ConvVAE(), VaeTrainConfig(), BetaSchedule(), total_steps=n)

    def atml_loop(count: int) -> int:
        for batch in itertools.islice(itertools.cycle(batches), count):
            atml_step(batch)
        return count * BATCH

    sample = images[:BATCH]
    ref_flops = flops_of(lambda: ref_step(sample)) / BATCH
    atml_flops = flops_of(lambda: atml_step((sample,))) / BATCH
    print(f"executed FLOPs per image: reference {ref_flops / 1e6:.1f} M, atml {atml_flops / 1e6:.1f} M")
    ref_loop(args.warmup)
    atml_loop(args.warmup)
    ref_rate = report("reference (DataLoader)", *timed(lambda: ref_loop(n)), ref_flops, peak)
    atml_rate = report("atml (in-memory + VaeStep)", *timed(lambda: atml_loop(n)), atml_flops, peak)
    print(f"speed-up: {atml_rate / ref_rate:.2f}x  ({n} batches of {BATCH}, same model, same optimiser)")


if __name__ == "__main__":
    main()
