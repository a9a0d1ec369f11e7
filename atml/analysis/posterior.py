"""Posterior-collapse measures of a Gaussian encoder q(z|x) = N(mu, diag(exp(logvar))).

All take per-image posterior parameters `mu`, `logvar` of shape [N, D]."""

from __future__ import annotations

import math

import torch


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """E_x KL(q(z_d|x) ‖ N(0, 1)) per dimension, in nats: shape [D]."""
    return (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean(0)


def collapse_ratio(logvar: torch.Tensor, tolerance: float = 0.1, strict: bool = False) -> float:
    """The original report's measure: share of posterior variances within ±tolerance of 1
    (`strict`: strictly within, |σ² − 1| < tolerance, as its notebook counted; else ≤)."""
    distance = (logvar.exp() - 1).abs()
    return (distance < tolerance if strict else distance <= tolerance).double().mean().item()


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Burda et al. 2016: dimension d is active if Cov_x(E_q[z_d|x]) > threshold. Returns the
    count and the per-dimension variances."""
    variance = mu.double().var(0, unbiased=False)
    return int((variance > threshold).sum().item()), variance


def mutual_information(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> float:
    """He et al. 2019: I(x; z) = E_x E_q[log q(z|x)] − E_x E_q[log q(z)], with the aggregate
    posterior q(z) estimated over this batch by log-sum-exp; one z drawn per x.

    Both expectations use the same draws (He et al. take the first analytically), so the estimate
    is exactly 0 when every posterior is the same and at most log(N) when each x is identifiable."""
    n, d = mu.shape
    mu, logvar = mu.double(), logvar.double()
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    z = mu + eps * (0.5 * logvar).exp()  # one sample per x: [N, D]
    # log q(z_i | x_j) for every pair: [N, N]
    deviation = z.unsqueeze(1) - mu.unsqueeze(0)
    log_density = -0.5 * (deviation.pow(2) / logvar.exp().unsqueeze(0)).sum(-1) - 0.5 * (
        d * math.log(2 * math.pi) + logvar.sum(-1)
    ).unsqueeze(0)
    log_q_z_given_x = log_density.diagonal()
    log_q_z = torch.logsumexp(log_density, dim=1) - math.log(n)
    return (log_q_z_given_x - log_q_z).mean().item()
