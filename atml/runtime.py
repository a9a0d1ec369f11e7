"""Device choice and precision: the only place that decides where tensors live and in what type."""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import torch

from atml.errors import UserError


def load_tensors(path: Path, map_location: str | torch.device = "cpu"):
    """torch.load of a file atml or a user gave, weights only (no code runs), without torch's
    warnings about the file's pickle protocol: whoever calls this turns a bad file into one line."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(path, map_location=map_location, weights_only=True)


def pick_device(requested: str) -> torch.device:
    """A device atml.plan.DEVICES names, as torch sees it here."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA device here; use --device cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


_threads: int | None = None


def hold_threads() -> int:
    """The CPU threads torch uses, the same for every part of every experiment of this process:
    the count torch chose at the first call (OMP_NUM_THREADS, else its default), set again when
    something changed it. A library can change OpenMP's count behind torch's back: UMAP's numba
    restores its own default, the cores' count, after every map."""
    global _threads
    if _threads is None:
        _threads = torch.get_num_threads()
    if torch.get_num_threads() != _threads:
        torch.set_num_threads(_threads)
    return _threads


def set_threads(n: int) -> None:
    """torch's CPU threads from now on (hold_threads keeps them)."""
    global _threads
    _threads = n
    torch.set_num_threads(n)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' * (threads != 1)})"


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16 instructions: where bf16 matmuls and convolutions run faster than fp32.
    Elsewhere oneDNN emulates bf16 and autocast only adds casts."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(device: torch.device, precision: str) -> str:
    """'auto' is bf16 autocast where the hardware runs it natively (CUDA with bf16, or such a
    CPU), fp32 elsewhere; an explicit choice is kept."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for a forward pass: bf16 matmuls and convolutions, fp32 losses and weights."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
