"""Zero-shot classification from embeddings: each class is the normalised mean of its prompts'
normalised text embeddings (CLIP's prompt ensembling), each image goes to the class of highest
cosine similarity."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_embeddings(prompt_embeddings: torch.Tensor, renormalise: bool = True) -> torch.Tensor:
    """[classes, prompts, dim] text embeddings → [classes, dim] class embeddings: the mean of the
    unit prompt embeddings, made unit again when `renormalise`."""
    mean = F.normalize(prompt_embeddings.float(), dim=-1).mean(1)
    return F.normalize(mean, dim=-1) if renormalise else mean


def predict(image_embeddings: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The class of highest cosine similarity for each image ([N, dim] against [C, dim])."""
    return (F.normalize(image_embeddings.float(), dim=-1) @ classes.T).argmax(1)


def per_class_accuracy(predicted: torch.Tensor, labels: torch.Tensor, n_classes: int) -> list[float]:
    """Accuracy within each true class (NaN for a class with no images)."""
    out = []
    for c in range(n_classes):
        mask = labels == c
        out.append(float((predicted[mask] == c).float().mean()) if mask.any() else float("nan"))
    return out
