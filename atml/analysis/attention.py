"""What attention matrices say: the class token's attention over patches as a map, rollout over
layers (Abnar & Zuidema 2020), and per-head entropy and spatial spread as numbers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cls_maps(attention: torch.Tensor, n_prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """(batch, heads, tokens, tokens) → the class token's attention to each patch,
    (batch, heads, rows, columns); not renormalised (prefix tokens take the rest)."""
    return attention[:, :, 0, n_prefix:].reshape(*attention.shape[:2], *grid)


def rollout(attentions: list[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    """Attention rollout: per layer, the head-mean attention mixed with the identity for the
    residual path (rows renormalised), multiplied from the first layer to the last.
    (batch, tokens, tokens): how much each output token draws on each input token."""
    result = None
    for attention in attentions:
        a = attention.mean(1)
        a = residual * torch.eye(a.shape[-1], device=a.device) + (1 - residual) * a
        a = a / a.sum(-1, keepdim=True)
        result = a if result is None else a @ result
    return result


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(…, rows, columns) patch maps → (…, H, W) image-aligned maps: patch (r, c) covers pixels
    [r·H/rows, (r+1)·H/rows) × [c·W/columns, (c+1)·W/columns), its value centred there."""
    shape = maps.shape
    flat = maps.reshape(-1, 1, *shape[-2:]).float()
    return F.interpolate(flat, size=size, mode="bilinear", align_corners=False).reshape(*shape[:-2], *size)


def _distribution(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(-2)
    return flat / flat.sum(-1, keepdim=True).clamp_min(1e-12)


def entropy(maps: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each map renormalised over patches; log(patches) is uniform attention."""
    p = _distribution(maps)
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def spatial_spread(maps: torch.Tensor) -> torch.Tensor:
    """Attention-weighted standard deviation of patch positions, in patches: how far from its own
    centre of mass a map looks (0 = one patch)."""
    rows, cols = maps.shape[-2:]
    p = _distribution(maps)
    r = torch.arange(rows, device=maps.device).repeat_interleave(cols).float()
    c = torch.arange(cols, device=maps.device).repeat(rows).float()
    mr, mc = (p * r).sum(-1, keepdim=True), (p * c).sum(-1, keepdim=True)
    return torch.sqrt((p * ((r - mr) ** 2 + (c - mc) ** 2)).sum(-1))


def uniform_entropy(grid: tuple[int, int]) -> float:
    return math.log(grid[0] * grid[1])
