"""Which patches to hide, and hiding them: random patches or those nearest the image centre, at
a given ratio, either dropped from the token sequence or replaced in the pixels."""

from __future__ import annotations

import math

import torch

SCHEMES = ("random", "centre")


def masked_patches(
    grid: tuple[int, int],
    ratio: float,
    scheme: str,
    generator: torch.Generator | None = None,
    centre: str = "nearest",
    count: str = "round",
) -> torch.Tensor:
    """Indices (row-major) of the masked patches. `random`: a uniform draw of ratio · patches
    (rounded, or floored as the original's int() did). `centre`, shape `nearest`: that many patches
    whose centres are nearest the image centre (ties broken by index, so it is fixed); shape
    `square` (the original's): a square of side 2·(s // 2) + 1 around the middle patch, with
    s = int(sqrt(ratio · patches)), e.g. 5×5, 7×7, 9×9 on 14×14 for 0.1, 0.3, 0.5."""
    rows, cols = grid
    n = rows * cols
    k = round(ratio * n) if count == "round" else int(ratio * n)
    if scheme == "centre" and centre == "square":
        if ratio == 0:
            return torch.zeros(0, dtype=torch.long)
        half = int(math.sqrt(n * ratio)) // 2
        r, c = torch.arange(rows).repeat_interleave(cols), torch.arange(cols).repeat(rows)
        inside = ((r - rows // 2).abs() <= half) & ((c - cols // 2).abs() <= half)
        return inside.nonzero().squeeze(1)
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
