"""Orthogonal Procrustes alignment of image embeddings onto their paired text embeddings."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def fit_rotation(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The orthogonal R minimising ‖XR − Y‖_F over paired rows of unit-normalised X, Y (scipy),
    and scipy's scale, the sum of the singular values of XᵀY (what the original printed as
    "scale"; at most the number of pairs, reached when R maps every x onto its y)."""
    from scipy.linalg import orthogonal_procrustes

    x = F.normalize(source.double(), dim=-1).numpy()
    y = F.normalize(target.double(), dim=-1).numpy()
    rotation, scale = orthogonal_procrustes(x, y)
    return torch.from_numpy(np.ascontiguousarray(rotation)), float(scale)


def apply_rotation(embeddings: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Unit-normalised rows, rotated (the result stays unit-norm: R is orthogonal)."""
    return (F.normalize(embeddings.double(), dim=-1) @ rotation).float()
