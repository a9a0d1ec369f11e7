"""Shared pieces of the benchmarks: a matmul peak, FLOP counting, timing, the report line."""

from __future__ import annotations

import itertools
import time
from typing import Callable, Iterable

import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.flop_counter import FlopCounterMode


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


def flops_of(fn: Callable[[], object]) -> int:
    """FLOPs that one call of `fn` executes (matmuls and convolutions, as torch counts them)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def images_per_second(step: Callable, batches: Iterable, count: int, batch_size: int) -> float:
    """Run `step` on `count` batches drawn (cycling) from `batches`, data loading included."""
    start = time.perf_counter()
    for batch in itertools.islice(itertools.cycle(batches), count):
        step(batch)
    return count * batch_size / (time.perf_counter() - start)


def compare(reference: tuple[str, Callable, Iterable], ours: tuple[str, Callable, Iterable], batches: int, batch_size: int, warmup: int = 10) -> None:
    """Time two (name, step, batches) training loops on the same number of batches and print
    images/s, executed FLOP/s as a share of the matmul peak, and the speed-up."""
    peak = matmul_peak_flops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak {peak / 1e9:.1f} GFLOP/s")
    rates = []
    for name, step, source in (reference, ours):
        flops = flops_of(lambda: step(next(iter(source)))) / batch_size
        images_per_second(step, source, warmup, batch_size)
        rate = images_per_second(step, source, batches, batch_size)
        rates.append(rate)
        print(f"{name:>32s}: {rate:8.0f} images/s  {flops / 1e6:7.2f} MFLOP/image executed  "
              f"{rate * flops / 1e9:6.1f} GFLOP/s = {rate * flops / peak:5.1%} of matmul peak")
    print(f"speed-up: {rates[1] / rates[0]:.2f}x  ({batches} batches of {batch_size}, same model, same optimiser)")
