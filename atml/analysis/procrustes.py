"""Orthogonal Procrustes alignment of image embeddings onto their paired text embeddings."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def fit_rotation(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The orthogonal R minimising ‖XR − Y‖_F over paired rows of unit-normalised X, Y (scipy)."""
    from scipy.linalg import orthogonal_procrustes

    x = F.normalize(source.double(), dim=-1).numpy()
    y = F.normalize(target.double(), dim=-1).numpy()
    rotation, _ = orthogonal_procrustes(x, y)
    return torch.from_numpy(np.ascontiguousarray(rotation))


def apply_rotation(embeddings: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Unit-normalised rows, rotated (the result stays unit-norm: R is orthogonal)."""
    return (F.normalize(embeddings.double(), dim=-1) @ rotation).float()
