"""N seeds one after another vs N seeds stacked into one batched model, the same work in one process.

  GAN: `gan --part mode-collapse`'s pathology run (G at 10× the learning rate), `--batches`
       training iterations of batch 64 per seed: N lone GanSteps in turn (N = 1 stacked copy each,
       exactly what `atml run gan --seed S` trains) vs one GanStep over N stacked copies (what
       `atml run gan --seeds N` trains). Both sides give every seed the same numbers.
  VAE: the constant-β schedule's step (batch 128), N lone VaeSteps in turn vs one VaeStep over N
       stacked ConvVAEs (what `atml run vae --seeds N` trains): linear layers batched, convolutions
       copy by copy on CPU (exact), grouped on CUDA.

Prints, for each N, both sides' seconds and `speed-up: N.NNx`, and the stacked N seeds' time as a
multiple of one seed's.

  python -m benchmarks.seeds_stacked                 # MNIST's test split, as atml finds it
  python -m benchmarks.seeds_stacked --smoke
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
from atml.models.stacked import StackedMLP, fork_global_generator
from atml.models.vae import ConvVAE, StackedConvVAE
from atml.schedules import BetaSchedule
from benchmarks.common import Comparison

GAN_BATCH, VAE_BATCH = 64, 128


def gan_step(seeds: list[int], train: gan.GanTrainConfig, device: torch.device) -> GanStep:
    Gs, Ds, generators = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        Gs.append(Generator().to(device))
        Ds.append(Discriminator().to(device))
        generators.append(fork_global_generator(device))
    return GanStep(StackedMLP(Gs), StackedMLP(Ds), train, generators)


def vae_step(seeds: list[int], train: vae.VaeTrainConfig, batches: int, device: torch.device) -> VaeStep:
    copies, generators = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        copies.append(ConvVAE().to(device))
        generators.append(fork_global_generator(device))
    model = StackedConvVAE(copies, exact=device.type != "cuda")  # as atml.experiments.vae.parts
    return VaeStep(model, train, BetaSchedule(), batches, device, generators)


def timed(step, batches, count: int) -> float:
    started = time.perf_counter()
    for _, batch in zip(range(count), batches):
        step(batch)
    return time.perf_counter() - started


def gan_seconds(
    images: torch.Tensor, seeds: list[int], batches: int, device: torch.device
) -> tuple[float, float]:
    """(one after another, stacked) seconds for `batches` iterations of every seed."""
    _, cfg = resolve("gan", gan.Config)
    train = cfg.runs["mode-collapse"]["pathology"].train

    def data(seed_list):
        return StackedBatches([TensorBatches(images, batch_size=GAN_BATCH, seed=s) for s in seed_list])

    timed(gan_step(seeds[:1], train, device), data(seeds[:1]), 5)  # warm-up
    alone = sum(timed(gan_step([s], train, device), data([s]), batches) for s in seeds)
    together = timed(gan_step(seeds, train, device), data(seeds), batches)
    return alone, together


def vae_seconds(
    images: torch.Tensor, seeds: list[int], batches: int, device: torch.device
) -> tuple[float, float]:
    t = resolve("vae", vae.Config)[1].train

    def data(seed_list):
        return StackedBatches([TensorBatches(images, batch_size=VAE_BATCH, seed=s) for s in seed_list])

    timed(vae_step(seeds[:1], t, batches, device), data(seeds[:1]), 3)  # warm-up
    alone = sum(timed(vae_step([s], t, batches, device), data([s]), batches) for s in seeds)
    together = timed(vae_step(seeds, t, batches, device), data(seeds), batches)
    return alone, together


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="data")
    parser.add_argument("--batches", type=int, default=150, help="training iterations per seed")
    parser.add_argument("--seeds", default="1,3,5", help="the N to measure")
    parser.add_argument("--smoke", action="store_true", help="10 iterations, N = 1, 3")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
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
    for name, seconds in (("gan", gan_seconds), ("vae", vae_seconds)):
        one = None
        for n in counts:
            alone, together = seconds(
                gan_images if name == "gan" else vae_images, list(range(n)), batches, device
            )
            one = one or together
            results[(name, n)] = (alone, together)
            print(
                f"{name} N={n}: one after another {alone:6.2f} s, stacked {together:6.2f} s  "
                f"speed-up: {alone / together:.2f}x  (stacked: {together / one:.2f}× one seed's time)",
                flush=True,
            )
    n = 3 if 3 in counts else counts[-1]
    alone, together = results[("gan", n)]
    vae_alone, vae_together = results[("vae", n)]
    result = Comparison(
        "seeds_stacked",
        f"{n} seeds × {batches} iterations of gan mode-collapse/pathology (batch {GAN_BATCH}); the VAE's "
        f"constant β (batch {VAE_BATCH}): {vae_alone / vae_together:.2f}x",
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
