"""Shared pieces of the benchmarks: a matmul peak, FLOP counting, timing, and the one result every
benchmark returns (`Comparison`), which `python -m benchmarks` gathers into RESULTS.md."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Comparison:
    """The same work done two ways in one process: what was compared and each side's seconds."""

    benchmark: str
    work: str  # the work both sides did
    reference: str  # the naive way
    ours: str  # atml's way
    reference_s: float
    ours_s: float
    device: str = "cpu"

    @property
    def ratio(self) -> float:
        return self.reference_s / self.ours_s

    def print_ratio(self) -> None:
        print(f"speed-up: {self.ratio:.2f}x  ({self.work})", flush=True)


class PerItemDataset(Dataset):
    """What torchvision's MNIST-family datasets do per item: uint8 array → PIL image → transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i].numpy(), mode="L")), int(self.labels[i])


def matmul_peak_flops(n: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of a square float32 matmul on this machine, now: the ceiling we compare against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def first_step(step: Callable, source: Iterable) -> object:
    return step(next(iter(source)))


def flops_of(fn: Callable[[], object]) -> int:
    """FLOPs that one call of `fn` executes (matmuls and convolutions, as torch counts them)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def endless(batches: Iterable):
    """Pass after pass over `batches`, each one loaded afresh (itertools.cycle would replay the
    first pass from memory and hide the loader's cost)."""
    while True:
        yield from batches


def seconds_for(step: Callable, batches: Iterable, count: int) -> float:
    """Run `step` on `count` batches drawn pass after pass from `batches`, loading included."""
    start = time.perf_counter()
    for batch in itertools.islice(endless(batches), count):
        step(batch)
    return time.perf_counter() - start


def compare(
    benchmark: str,
    reference: tuple[str, Callable, Iterable],
    ours: tuple[str, Callable, Iterable],
    batches: int,
    batch_size: int,
    warmup: int = 10,
    rounds: int = 4,
    device: str = "cpu",
) -> Comparison:
    """Time two (name, step, batches) training loops on the same number of batches and print
    images/s, executed FLOP/s as a share of the matmul peak, and the speed-up. The loops take
    turns in `rounds` slices, so drift in the machine's speed falls on both alike."""
    warmup = min(warmup, batches)
    peak = matmul_peak_flops()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    loops = (reference, ours)
    flops = [flops_of(partial(first_step, step, source)) / batch_size for _, step, source in loops]
    for _, step, source in loops:
        seconds_for(step, source, warmup)
    seconds = [0.0, 0.0]
    per_round = max(1, batches // rounds)
    for _ in range(rounds):
        for i, (_, step, source) in enumerate(loops):
            seconds[i] += seconds_for(step, source, per_round)
    rates = [per_round * rounds * batch_size / s for s in seconds]
    for (name, _, _), rate, f in zip(loops, rates, flops):
        print(
            f"{name:>34s}: {rate:8.0f} images/s  {f / 1e6:7.2f} MFLOP/image executed  "
            f"{rate * f / 1e9:6.1f} GFLOP/s = {rate * f / peak:5.1%} of matmul peak"
        )
    result = Comparison(
        benchmark,
        f"{per_round * rounds} training batches of {batch_size}, same model, same optimiser",
        reference[0],
        ours[0],
        seconds[0],
        seconds[1],
        device,
    )
    result.print_ratio()
    return result
