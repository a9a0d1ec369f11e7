"""2-D maps of high-dimensional points (latents, features): PCA, t-SNE (scikit-learn), UMAP (umap-learn)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

Method = Literal["pca", "tsne", "umap"]


def project_2d(points: np.ndarray, method: Method, seed: int = 0, pca_first: int | None = None) -> np.ndarray:
    """`points` in 2-D; `pca_first`: PCA to that many dimensions first, when there are more."""
    if pca_first is not None and points.shape[1] > pca_first:
        points = PCA(n_components=min(pca_first, len(points)), random_state=seed).fit_transform(points)
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
