"""2-D maps of high-dimensional points (latents, features): PCA, t-SNE (scikit-learn), UMAP (umap-learn)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

Method = Literal["pca", "tsne", "umap"]


def project_2d(points: np.ndarray, method: Method, seed: int = 0) -> np.ndarray:
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(points)
    if method == "umap":
        import umap  # numba compiles it on first use (~20 s per process): imported only here

        neighbours = min(15, max(2, len(points) - 1))
        return umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed, n_jobs=1).fit_transform(
            points
        )
    perplexity = min(30.0, max(2.0, (len(points) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
