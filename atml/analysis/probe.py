"""Linear probes: logistic regression fitted on one split's features and scored on another,
with a 95% confidence interval for the held-out accuracy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ProbeScore:
    accuracy: float
    ci_low: float
    ci_high: float
    n_test: int
    n_train: int

    def describe(self) -> dict:
        return asdict(self)


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound near 0 and 1, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, min(p, centre - half)), min(
        1.0, max(p, centre + half)
    )  # exact at p = 0 or 1, where rounding strays


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    c: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
    standardise: bool = True,
):
    """A multinomial logistic regression on the training features, standardised first unless told
    not to (an unconverged fit is kept without a warning: its held-out score says what matters)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        steps = [StandardScaler()] if standardise else []
        return make_pipeline(*steps, LogisticRegression(C=c, max_iter=max_iter, random_state=seed)).fit(
            train_x, train_y
        )


def probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    c: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
    standardise: bool = True,
) -> ProbeScore:
    """Fitted on (train_x, train_y), scored on the held-out (test_x, test_y)."""
    probe = fit_probe(train_x, train_y, c, max_iter, seed, standardise)
    correct = int((probe.predict(test_x) == test_y).sum())
    low, high = wilson_interval(correct, len(test_y))
    return ProbeScore(correct / len(test_y), low, high, len(test_y), len(train_y))
