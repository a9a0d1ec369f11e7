import json
import math

import pytest
import torch

from atml.analysis import posterior
from atml.experiments import vae
from atml.experiments.vae import parts as vae_parts
from atml.models.vae import ConvVAE
from atml.schedules import BetaSchedule, beta_at


def test_model_is_the_assignments_architecture():
    model = ConvVAE()
    convs = [
        (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert convs == [(1, 32, (4, 4), (2, 2), (1, 1)), (32, 64, (4, 4), (2, 2), (1, 1))]
    deconvs = [
        (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
        for m in model.decoder
        if isinstance(m, torch.nn.ConvTranspose2d)
    ]
    assert deconvs == [(64, 32, (4, 4), (2, 2), (1, 1)), (32, 1, (4, 4), (2, 2), (1, 1))]
    linears = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [(3136, 256), (256, 20), (256, 20), (20, 256), (256, 3136)]
    expected = (
        (16 * 32 + 32)
        + (32 * 64 * 16 + 64)
        + (3136 * 256 + 256)
        + 2 * (256 * 20 + 20)
        + (20 * 256 + 256)
        + (256 * 3136 + 3136)
        + (64 * 32 * 16 + 32)
        + (32 * 16 + 1)
    )
    assert sum(p.numel() for p in model.parameters()) == expected
    recon, mu, logvar = model(torch.rand(3, 1, 28, 28), torch.Generator().manual_seed(0))
    assert recon.shape == (3, 1, 28, 28) and mu.shape == logvar.shape == (3, 20)
    assert 0 <= recon.min() and recon.max() <= 1


def test_reparameterisation_uses_half_logvar():
    z = ConvVAE.reparameterise(
        torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(9.0)), torch.Generator().manual_seed(0)
    )
    assert abs(z.mean().item() - 2.0) < 0.1 and abs(z.std().item() - 3.0) < 0.1


@pytest.mark.parametrize(
    "kind, step, expected",
    [
        ("constant", 0, 1.0),
        ("constant", 99, 1.0),
        ("linear", 0, 0.0),
        ("linear", 10, 0.4),
        ("linear", 25, 1.0),
        ("linear", 80, 1.0),
        # cyclical, T = 100, M = 4, R = 0.5: period 25, rising over 12.5 steps
        ("cyclical", 0, 0.0),
        ("cyclical", 5, 0.4),
        ("cyclical", 12, 0.96),
        ("cyclical", 13, 1.0),
        ("cyclical", 24, 1.0),
        ("cyclical", 25, 0.0),
        ("cyclical", 30, 0.4),
        ("cyclical", 99, 1.0),
    ],
)
def test_beta_schedules(kind, step, expected):
    schedule = BetaSchedule(kind=kind, warmup_share=0.25, cycles=4, rising_share=0.5)
    assert math.isclose(beta_at(schedule, step, 100), expected, abs_tol=1e-9)


def test_the_originals_per_epoch_schedules():
    """ORIGINAL_SETTINGS.md §4.5–4.6, 100 epochs of 10 steps: β = 0 through epoch 50, then
    (e − 50)/50, ending at 0.98; the cosine starts every 20-epoch cycle at 1 and decays."""
    delayed = BetaSchedule(kind="delayed-linear")
    at = [beta_at(delayed, 10 * e, 1000, epochs=100) for e in range(100)]
    assert at[:51] == [0.0] * 51 and at[60] == pytest.approx(0.2) and at[99] == pytest.approx(0.98)
    assert beta_at(delayed, 10 * 60 + 9, 1000, epochs=100) == at[60]  # per epoch, not per step
    cosine = BetaSchedule(kind="decreasing-cosine")
    at = [beta_at(cosine, 10 * e, 1000, epochs=100) for e in range(100)]
    assert at[0] == at[20] == at[80] == 1.0 and at[10] == pytest.approx(0.5)
    assert at[19] == pytest.approx(0.5 * (1 + math.cos(math.pi * 19 / 20))) and at[99] < 0.01
    assert all(a > b for a, b in zip(at[:19], at[1:20]))  # decreasing within a cycle


def test_beta_scales_with_max_beta():
    assert beta_at(BetaSchedule(kind="linear", beta=4.0, warmup_share=0.5), 25, 100) == 2.0


def test_posterior_equal_to_the_prior_is_fully_collapsed():
    mu, logvar = torch.zeros(500, 20), torch.zeros(500, 20)
    assert posterior.active_units(mu)[0] == 0
    assert posterior.collapse_ratio(logvar) == 1.0
    assert torch.allclose(posterior.kl_per_dimension(mu, logvar), torch.zeros(20))
    assert abs(posterior.mutual_information(mu, logvar, torch.Generator().manual_seed(0))) < 1e-9


def test_informative_posterior_measures():
    torch.manual_seed(0)
    mu = torch.cat([torch.randn(500, 5) * 3, torch.zeros(500, 15)], 1)  # 5 dimensions carry x
    logvar = torch.cat([torch.full((500, 5), math.log(0.01)), torch.zeros(500, 15)], 1)
    count, variance = posterior.active_units(mu)
    assert count == 5 and (variance[:5] > 1).all()
    assert posterior.collapse_ratio(logvar) == 15 / 20
    kl = posterior.kl_per_dimension(mu, logvar)
    expected = 0.5 * (9 + 0.01 - 1 - math.log(0.01))
    assert torch.allclose(kl[:5], torch.full((5,), expected), rtol=0.15) and torch.allclose(
        kl[5:], torch.zeros(15)
    )
    mi = posterior.mutual_information(mu, logvar, torch.Generator().manual_seed(0))
    assert 0.9 * math.log(500) < mi <= math.log(500) + 1e-6  # every x identifiable: MI reaches log N


def test_kl_per_dim_matches_torch_distributions():
    mu, logvar = torch.randn(50, 20), torch.randn(50, 20)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(0.0, 1.0)
    assert torch.allclose(
        posterior.kl_per_dimension(mu, logvar), torch.distributions.kl_divergence(q, p).mean(0), atol=1e-5
    )


def test_loss_terms_are_per_image_sums():
    model = ConvVAE()
    x = torch.rand(4, 1, 28, 28)
    recon, mu, logvar = model(x, torch.Generator().manual_seed(0))
    rec, kl = vae_parts.loss_terms(recon, mu, logvar, x)
    assert math.isclose(rec.item(), ((recon - x) ** 2).sum().item() / 4, rel_tol=1e-5)
    assert math.isclose(kl.item(), (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum().item() / 4, rel_tol=1e-5)


def test_smoke_run_of_every_vae_part(cli, fake_root, tmp_path):
    code, out, err = cli(
        "run",
        "vae",
        "--smoke",
        "--beta-schedule",
        "linear",
        "--set",
        f"data.root={fake_root}",
        "--set",
        "data.heldout=200",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    (folder,) = (tmp_path / "vae").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert list(metrics) == list(vae.EXPERIMENT.part_names)
    assert metrics["train"]["beta_schedule"]["kind"] == "linear" and "linear" in metrics["train"]
    for kind in ("constant", "linear", "cyclical"):
        m = metrics["anneal"][kind]
        assert 0 <= m["collapse_ratio"] <= 1 and 0 <= m["active_units"] <= 20 and len(m["kl_per_dim"]) == 20
        for key in (
            "recon",
            "kl",
            "val_recon",
            "val_kl",
            "test_negative_elbo",
            "mutual_information",
            "mean_sigma",
        ):
            assert math.isfinite(m[key]), key
        assert (folder / "history" / f"train-{kind}.csv").is_file()
    for name in (
        "train_curves",
        "samples_reconstructions",
        "samples_generations",
        "collapse_latent_map",
        "collapse_kl_per_dim",
        "anneal_curves",
        "anneal_reconstructions",
        "anneal_latent_map",
    ):
        assert (folder / "plots" / f"{name}.png").stat().st_size > 10_000, name
    assert out.count("vae/linear epoch 2/2") == 1  # trained once, reused by anneal
    assert "collapse ratio" in out


def test_beta_schedule_flag_is_validated_and_belongs_to_vae(cli):
    code, _, err = cli("run", "vae", "--beta-schedule", "sigmoid")
    assert code == 2 and "train.beta_schedule.kind" in err
    code, _, err = cli("run", "gan", "--beta-schedule", "linear")
    assert code == 2 and "unknown option --beta-schedule for gan" in err
