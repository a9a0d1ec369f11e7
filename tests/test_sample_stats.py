import math

import numpy as np
import torch

from atml.analysis import sample_stats as st


def test_coverage_of_one_class_is_one_and_kl_is_log_k():
    labels = torch.full((500,), 3)
    assert st.modes_covered(labels, 10) == 1
    assert math.isclose(st.kl_from_uniform(labels, 10), math.log(10))


def test_balanced_labels_cover_every_class_with_zero_kl():
    labels = torch.arange(10).repeat(50)
    assert st.modes_covered(labels, 10) == 10
    assert abs(st.kl_from_uniform(labels, 10)) < 1e-12


def test_min_share_threshold():
    labels = torch.cat([torch.zeros(995, dtype=torch.long), torch.ones(5, dtype=torch.long)])
    assert st.modes_covered(labels, 10, min_share=0.01) == 1  # 0.5% of the samples is not a mode
    assert st.modes_covered(labels, 10, min_share=0.005) == 2


def test_identical_samples_have_no_diversity():
    samples = torch.randn(1, 1, 28, 28).repeat(50, 1, 1, 1)
    assert st.pixel_variance(samples) < 1e-12
    assert st.mean_pairwise_distance(samples) < 1e-6


def test_pairwise_distance_and_variance_known_values():
    samples = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert math.isclose(st.mean_pairwise_distance(samples), 5.0)
    assert math.isclose(st.pixel_variance(samples), (2.25 + 4.0) / 2)


def test_frechet_distance_is_zero_for_same_set_and_mean_shift_squared():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 4))
    assert st.frechet_distance(a, a) < 1e-6
    assert math.isclose(st.frechet_distance(a, a + np.array([3.0, 0, 0, 0])), 9.0, rel_tol=1e-6)
    b = rng.normal(size=(4000, 4)) * 2  # variance 4 per dim: (1 + 4 − 2·2) = 1 per dim
    assert math.isclose(st.frechet_distance(a, b), 4.0, rel_tol=0.1)


def test_membership_auc_known_values():
    from atml.analysis.overfitting import membership_auc

    assert membership_auc(torch.tensor([5.0, 6.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert membership_auc(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == 0.5
