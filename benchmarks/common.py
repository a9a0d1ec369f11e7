"""Shared pieces of the benchmarks: a matmul peak, FLOP counting, timing, the report line."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


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


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    """Seconds taken by `fn`, and the image count it returns."""
    start = time.perf_counter()
    images = fn()
    return time.perf_counter() - start, images


def report(name: str, seconds: float, images: int, flops_per_image: float, peak: float) -> float:
    rate = images / seconds
    share = rate * flops_per_image / peak
    print(f"{name:>32s}: {rate:8.0f} images/s   {rate * flops_per_image / 1e9:6.1f} GFLOP/s = {share:5.1%} of matmul peak")
    return rate
