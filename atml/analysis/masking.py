"""Which patches to hide, and hiding them: random patches or those nearest the image centre, at
a given ratio, either dropped from the token sequence or replaced in the pixels."""

from __future__ import annotations

import torch

SCHEMES = ("random", "centre")
FILLS = ("drop", "zero", "noise")


def masked_patches(
    grid: tuple[int, int], ratio: float, scheme: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices (row-major) of round(ratio · patches) patches: a uniform random draw, or the
    patches whose centres are nearest the image centre (ties broken by index, so it is fixed)."""
    rows, cols = grid
    n = rows * cols
    k = round(ratio * n)
    if scheme == "random":
        chosen = torch.randperm(n, generator=generator)[:k]
    elif scheme == "centre":
        r = torch.arange(rows).repeat_interleave(cols).float() + 0.5
        c = torch.arange(cols).repeat(rows).float() + 0.5
        distance = (r / rows - 0.5) ** 2 + (c / cols - 0.5) ** 2
        chosen = torch.sort(distance, stable=True).indices[:k]
    else:
        raise ValueError(f"unknown masking scheme '{scheme}'; accepted: {', '.join(SCHEMES)}")
    return torch.sort(chosen).values


def kept_patches(grid: tuple[int, int], masked: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(grid[0] * grid[1], dtype=torch.bool)
    keep[masked] = False
    return keep.nonzero().squeeze(1)


def pixel_mask(grid: tuple[int, int], patch: tuple[int, int], masked: torch.Tensor) -> torch.Tensor:
    """(H, W) boolean mask of the pixels the masked patches cover."""
    cells = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
    cells[masked] = True
    return cells.reshape(grid).repeat_interleave(patch[0], 0).repeat_interleave(patch[1], 1)


def fill_patches(
    x: torch.Tensor, mask: torch.Tensor, fill: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Model inputs (B, C, H, W), normalised, with the masked pixels replaced: `zero` is the
    normalisation mean (a flat mean-grey patch), `noise` a standard normal draw."""
    if fill == "zero":
        replacement = torch.zeros_like(x)
    elif fill == "noise":
        replacement = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    else:
        raise ValueError(
            f"fill '{fill}' replaces pixels; accepted: zero, noise (drop removes tokens instead)"
        )
    return torch.where(mask.to(x.device), replacement, x)
