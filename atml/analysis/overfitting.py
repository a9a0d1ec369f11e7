"""How much a model's scores tell its training images from held-out ones."""

from __future__ import annotations

import torch
from sklearn.metrics import roc_auc_score


def membership_auc(train_scores: torch.Tensor, heldout_scores: torch.Tensor) -> float:
    """ROC AUC of telling training from held-out images by score: 0.5 when the model treats
    them alike, 1.0 when it has memorised every training image."""
    labels = [1] * len(train_scores) + [0] * len(heldout_scores)
    scores = torch.cat([train_scores, heldout_scores]).float().cpu().numpy()
    return float(roc_auc_score(labels, scores))
