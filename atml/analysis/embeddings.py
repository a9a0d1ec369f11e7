"""2-D maps of high-dimensional points (latents, features) with scikit-learn."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

Method = Literal["pca", "tsne"]


def project_2d(points: np.ndarray, method: Method, seed: int = 0) -> np.ndarray:
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(points)
    perplexity = min(30.0, max(2.0, (len(points) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
