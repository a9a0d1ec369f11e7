"""How well a feature space separates classes, as numbers: k-NN accuracy and silhouette."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier


def knn_accuracy(
    features: np.ndarray, labels: np.ndarray, k: int = 10, folds: int = 5, seed: int = 0
) -> float:
    """Mean held-out accuracy of a k-NN classifier (cosine distance) over stratified folds: every
    point is scored by neighbours it was not fitted with."""
    counts = np.bincount(labels)
    folds = max(2, min(folds, int(counts[counts > 0].min()))) if counts.any() else folds
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(
        cross_val_score(
            KNeighborsClassifier(n_neighbors=k, metric="cosine"), features, labels, cv=splitter
        ).mean()
    )


def silhouette(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of the true classes under cosine distance, in [-1, 1] (0: classes overlap)."""
    if len(np.unique(labels)) < 2:
        return 0.0
    return float(silhouette_score(features, labels, metric="cosine"))
