"""Statistics of a set of generated samples: diversity, mode coverage, Fréchet distance.

Mode counting follows VEEGAN/PacGAN: a classifier labels every sample; the modes covered are
the classes holding at least `min_share` of the samples; KL(p̂ ‖ uniform) of the label histogram.
"""

from __future__ import annotations

import numpy as np
import torch


def pixel_variance(samples: torch.Tensor) -> float:
    """Variance across samples of each pixel, averaged over pixels (0 when all samples agree)."""
    flat = samples.flatten(1).double()
    return flat.var(dim=0, unbiased=False).mean().item()


def mean_pairwise_distance(samples: torch.Tensor, max_samples: int = 1000) -> float:
    """Mean L2 distance between distinct pairs of (up to `max_samples`) samples."""
    flat = samples.flatten(1)[:max_samples].double()
    if len(flat) < 2:
        return 0.0
    return torch.pdist(flat).mean().item()


def class_histogram(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.bincount(labels.flatten().long().cpu(), minlength=n_classes).double()


def modes_covered(labels: torch.Tensor, n_classes: int, min_share: float = 0.01) -> int:
    counts = class_histogram(labels, n_classes)
    return int((counts / counts.sum() >= min_share).sum().item())


def kl_from_uniform(labels: torch.Tensor, n_classes: int) -> float:
    """KL(p̂ ‖ uniform) in nats: 0 for a balanced sample, log(n_classes) for a single class."""
    p = class_histogram(labels, n_classes)
    p = p / p.sum()
    nonzero = p[p > 0]
    return float((nonzero * (nonzero * n_classes).log()).sum().item())


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(ΣaΣb)^½) between Gaussian fits of two feature sets.

    Tr((ΣaΣb)^½) is computed as Σ√λ of the symmetric Σa^½ Σb Σa^½, which has the same eigenvalues:
    stable for the singular covariances a collapsed generator produces."""
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a = np.atleast_2d(np.cov(features_a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(features_b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(value, 0.0)
