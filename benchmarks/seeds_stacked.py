"""N seeds one after another vs N seeds stacked into one batched model, the same work in one process.

  GAN: `gan --part mode-collapse`'s pathology run (G at 10× the learning rate), `--batches`
       training iterations of batch 64 per seed: N lone GanSteps in turn (N = 1 stacked copy each,
       exactly what `atml run gan --seed S` trains) vs one GanStep over N stacked copies (what
       `atml run gan --seeds N` trains). Both sides give every seed the same numbers.
  VAE: the constant-β schedule's step (batch 128), N lone VaeSteps in turn vs one VaeStep over N
       stacked ConvVAEs (what `atml run vae --seeds N` trains): linear layers batched, convolutions
       copy by copy on CPU (exact), grouped on CUDA.

Prints, for each N, both sides' seconds and `speed-up: N.NNx`, the stacked N seeds' time as a
multiple of one seed's, and how far each seed's weights trained alone and stacked are apart
(`identical` on CPU; on CUDA, where the VAE's convolutions are grouped, the largest |Δ|).

  python -m benchmarks.seeds_stacked                 # MNIST's test split, as atml finds it
  python -m benchmarks.seeds_stacked --smoke
  python -m benchmarks.seeds_stacked --grouped --seeds 3   # the VAE as CUDA runs it: how far apart
"""

from __future__ import annotations

import argparse
import time

import torch

from atml.config import resolve
from atml.data.batching import StackedBatches, TensorBatches
from atml.data.mnist_sets import load_split, to_signed_range, to_unit_range
from atml.experiments import gan, vae
from atml.experiments.gan.parts import GanStep
from atml.experiments.vae.parts import VaeStep
from atml.models.mlp_gan import Discriminator, Generator
from atml.models.stacked import StackedMLP
from atml.models.vae import ConvVAE, StackedConvVAE
from atml.schedules import BetaSchedule
from atml.seeding import Seeds
from benchmarks.common import Comparison

GAN_BATCH, VAE_BATCH = 64, 128


def gan_step(seeds: list[int], train: gan.GanTrainConfig, device: torch.device) -> GanStep:
    Gs, Ds = [], []
    for seed in seeds:
        with Seeds(seed).initialising():
            Gs.append(Generator().to(device))
            Ds.append(Discriminator().to(device))
    generators = [Seeds(seed).generator("training", device) for seed in seeds]
    return GanStep(StackedMLP(Gs), StackedMLP(Ds), train, generators)


def vae_step(
    seeds: list[int], train: vae.VaeTrainConfig, batches: int, device: torch.device, exact: bool
) -> VaeStep:
    copies = []
    for seed in seeds:
        with Seeds(seed).initialising():
            copies.append(ConvVAE().to(device))
    generators = [Seeds(seed).generator("training", device) for seed in seeds]
    model = StackedConvVAE(copies, exact=exact)
    return VaeStep(model, train, BetaSchedule(), batches, device, generators)


def timed(step, batches, count: int) -> float:
    started = time.perf_counter()
    for _, batch in zip(range(count), batches):
        step(batch)
    return time.perf_counter() - started


def networks(step: GanStep | VaeStep) -> list:
    return [step.G, step.D] if isinstance(step, GanStep) else [step.model]


def both_ways(make_step, batch_size: int, images: torch.Tensor, seeds: list[int], batches: int):
    """(one after another, stacked) seconds for `batches` iterations of every seed, and the largest
    difference between a seed's weights trained alone and stacked (0.0: bit for bit)."""

    def data(seed_list):
        return StackedBatches([TensorBatches(images, batch_size=batch_size, seed=s) for s in seed_list])

    timed(make_step(seeds[:1]), data(seeds[:1]), 3)  # warm-up
    lone = [make_step([s]) for s in seeds]
    alone = sum(timed(step, data([s]), batches) for step, s in zip(lone, seeds))
    stacked = make_step(seeds)
    together = timed(stacked, data(seeds), batches)
    gap = max(
        (one.param(name)[0] - many.param(name)[k]).abs().max().item()
        for k, step in enumerate(lone)
        for one, many in zip(networks(step), networks(stacked))
        for name in one.names
    )
    return alone, together, gap


def gan_both_ways(images: torch.Tensor, seeds: list[int], batches: int, device: torch.device):
    train = resolve("gan", gan.Config)[1].runs["mode-collapse"]["pathology"].train
    return both_ways(lambda s: gan_step(s, train, device), GAN_BATCH, images, seeds, batches)


def vae_both_ways(
    images: torch.Tensor, seeds: list[int], batches: int, device: torch.device, grouped: bool = False
):
    train = resolve("vae", vae.Config)[1].train
    exact = device.type != "cuda" and not grouped  # as atml.experiments.vae.parts, unless --grouped

    def make_step(seed_list):
        return vae_step(seed_list, train, batches, device, exact)

    return both_ways(make_step, VAE_BATCH, images, seeds, batches)


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="data")
    parser.add_argument("--batches", type=int, default=150, help="training iterations per seed")
    parser.add_argument("--seeds", default="1,3,5", help="the N to measure")
    parser.add_argument("--smoke", action="store_true", help="10 iterations, N = 1, 3")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--grouped", action="store_true", help="the VAE's convolutions grouped on any device, as on CUDA"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    counts = [1, 3] if args.smoke else [int(n) for n in args.seeds.split(",")]
    batches = 10 if args.smoke else args.batches
    split = load_split("mnist", "test", args.root, allow_download=False)
    gan_images, vae_images = to_signed_range(split.images).to(device), to_unit_range(split.images).to(device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; {batches} iterations a seed"
    )
    results = {}
    gaps = []
    for name, both in (("gan", gan_both_ways), ("vae", vae_both_ways)):
        one = None
        for n in counts:
            extra = {"grouped": args.grouped} if name == "vae" else {}
            images = gan_images if name == "gan" else vae_images
            alone, together, gap = both(images, list(range(n)), batches, device, **extra)
            one = together if n == 1 else one
            results[(name, n)] = (alone, together)
            gaps.append(gap)
            cost = f"stacked: {together / one:.2f}× one seed's time; " if one else ""
            apart = "identical" if gap == 0 else f"max |Δ| {gap:.2g}"
            print(
                f"{name} N={n}: one after another {alone:6.2f} s, stacked {together:6.2f} s  "
                f"speed-up: {alone / together:.2f}x  ({cost}each seed's weights alone vs stacked: {apart})",
                flush=True,
            )
    n = 3 if 3 in counts else counts[-1]
    alone, together = results[("gan", n)]
    vae_alone, vae_together = results[("vae", n)]
    result = Comparison(
        "seeds_stacked",
        f"{n} seeds × {batches} iterations of gan mode-collapse/pathology (batch {GAN_BATCH}); the VAE's "
        f"constant β (batch {VAE_BATCH}): {vae_alone / vae_together:.2f}x; every seed's weights alone vs "
        f"stacked: {'identical' if max(gaps) == 0 else f'max |Δ| {max(gaps):.2g}'}",
        f"{n} lone GanSteps in turn",
        f"one GanStep over {n} stacked copies (= {together / results[('gan', 1)][1]:.2f}× one seed's time)"
        if ("gan", 1) in results
        else f"one GanStep over {n} stacked copies",
        alone,
        together,
        str(device),
    )
    result.print_ratio()
    return result


if __name__ == "__main__":
    main()
