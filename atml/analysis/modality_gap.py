"""The modality gap between paired image and text embeddings (Liang et al. 2022): the distance
between the centroids of the L2-normalised embeddings, and how much of the distance between
matched pairs that constant shift accounts for."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def gap_vector(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """mean(x̂) − mean(ŷ) over L2-normalised rows."""
    return F.normalize(images.double(), dim=-1).mean(0) - F.normalize(texts.double(), dim=-1).mean(0)


def modality_gap(images: torch.Tensor, texts: torch.Tensor) -> float:
    """‖mean(x̂) − mean(ŷ)‖₂ (0.82 for CLIP on MSCOCO in Liang et al.)."""
    return float(gap_vector(images, texts).norm())


def gap_share(images: torch.Tensor, texts: torch.Tensor) -> float:
    """For matched rows (image i with text i): ‖Δ‖² / mean‖x̂ᵢ − ŷᵢ‖², the share of the mean squared
    pair distance that the centroid shift Δ explains. Exact, since
    mean‖x̂ᵢ − ŷᵢ‖² = ‖Δ‖² + mean‖(x̂ᵢ − x̄) − (ŷᵢ − ȳ)‖²: 1 when every pair differs by the same
    vector, 0 when the centroids coincide."""
    x, y = F.normalize(images.double(), dim=-1), F.normalize(texts.double(), dim=-1)
    pair = ((x - y) ** 2).sum(-1).mean()
    return float((x.mean(0) - y.mean(0)).pow(2).sum() / pair) if pair > 0 else 0.0


@dataclass(frozen=True)
class Similarities:
    matched: float  # mean cosine of each image with its own class's text
    unmatched: float  # mean cosine of each image with the other classes' texts

    @classmethod
    def of(cls, matched: torch.Tensor, unmatched: torch.Tensor) -> Similarities:
        return cls(float(matched.mean()), float(unmatched.mean()) if len(unmatched) else float("nan"))


def cosine_matrix(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    return F.normalize(images.float(), dim=-1) @ F.normalize(texts.float(), dim=-1).T


def pair_cosines(
    images: torch.Tensor, class_texts: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines of images [N, d] with their own class's text [C, d] (N values) and with every
    other class's (N·(C−1) values)."""
    cos = cosine_matrix(images, class_texts)
    own = torch.zeros_like(cos, dtype=torch.bool)
    own[torch.arange(len(labels)), labels] = True
    return cos[own], cos[~own]


def caption_cosines(images: torch.Tensor, captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines of image i with its own caption i (N values) and with every other image's caption
    (N·(N−1) values, same-class captions included: the original's off-diagonal)."""
    cos = cosine_matrix(images, captions)
    own = torch.eye(len(images), dtype=torch.bool)
    return cos[own], cos[~own]


def similarities(images: torch.Tensor, class_texts: torch.Tensor, labels: torch.Tensor) -> Similarities:
    """Matched vs unmatched cosine similarity of images [N, d] with class texts [C, d]."""
    return Similarities.of(*pair_cosines(images, class_texts, labels))


def norm_summary(embeddings: torch.Tensor) -> dict:
    norms = embeddings.double().norm(dim=-1)
    return {"mean": float(norms.mean()), "std": float(norms.std()) if len(norms) > 1 else 0.0}
