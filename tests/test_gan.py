import math

import torch

from atml.experiments.gan import GanTrainConfig
from atml.experiments.gan.parts import GanStep
from atml.models.mlp_gan import Discriminator, Generator
from atml.models.stacked import StackedMLP


def make(**train):
    """One seed's G and D as the GAN trains them: stacked, one copy."""
    torch.manual_seed(0)
    G = StackedMLP([Generator(latent_dim=8, hidden=(16,))])
    D = StackedMLP([Discriminator(hidden=(16,))])
    return G, D, GanStep(G, D, GanTrainConfig(batch_size=4, **train), [torch.Generator().manual_seed(1)])


def test_shapes_and_architecture_of_the_assignment():
    G, D = Generator(), Discriminator()
    assert [m.out_features for m in G.net if isinstance(m, torch.nn.Linear)] == [256, 512, 784]
    assert [m.out_features for m in D.net if isinstance(m, torch.nn.Linear)] == [256, 256, 1]
    images = G(torch.randn(3, 100))
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
    assert D(images).shape == (3,)
    assert abs(G.net[0].weight.std().item() - 0.02) < 0.002 and G.net[0].bias.abs().max() == 0


def test_one_step_updates_both_networks_and_reports_everything():
    G, D, step = make()
    g0, d0 = [p.clone() for p in G.parameters()], [p.clone() for p in D.parameters()]
    out = step((torch.rand(1, 4, 1, 28, 28) * 2 - 1,))
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm"}
    assert all(v.shape == (1,) for v in out.values())  # one value per seed
    assert all(not torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(d0, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())  # D unfrozen again after the G update


def test_g_update_leaves_no_gradient_on_d():
    G, D, step = make()
    step((torch.rand(1, 4, 1, 28, 28) * 2 - 1,))
    # D's grads are those of its own update (zeroed with set_to_none before it); G's update,
    # made through a frozen D, must not have added to them.
    d_grads = [p.grad.clone() for p in D.parameters()]
    D.requires_grad_(False)
    step.g_loss(D(G(torch.randn(1, 4, 8), step.generators), step.generators)[0, :, 0]).backward()
    D.requires_grad_(True)
    assert all(torch.equal(a, p.grad) for a, p in zip(d_grads, D.parameters()))


def test_k_d_steps_use_k_real_batches():
    G, D, step = make(d_steps=3)
    calls = []
    D.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[1]))
    step((torch.rand(1, 12, 1, 28, 28),))
    assert calls == [8, 8, 8, 4]  # three D updates on 4 real + 4 fake, then one G update on 4 fakes


def test_saturating_loss_vanishes_where_non_saturating_does_not():
    G, D, step = make()
    confident_fake = torch.full((4,), -12.0, requires_grad=True)  # D(G(z)) ≈ 6e-6
    step.t.g_loss = "saturating"
    (grad_sat,) = torch.autograd.grad(step.g_loss(confident_fake), confident_fake)
    step.t.g_loss = "non_saturating"
    (grad_ns,) = torch.autograd.grad(step.g_loss(confident_fake), confident_fake)
    assert grad_sat.abs().max() < 1e-5 * grad_ns.abs().max()
    assert math.isfinite(step.g_loss(torch.full((4,), -200.0)).item())  # logits: no log(0)


def test_label_smoothing_sets_the_real_target():
    G, D, step = make(real_label=0.9)
    with torch.no_grad():
        for p in D.parameters():
            p.zero_()
    out = step((torch.zeros(1, 4, 1, 28, 28),))
    expected = 0.5 * (
        torch.nn.functional.binary_cross_entropy_with_logits(torch.zeros(4), torch.full((4,), 0.9))
        + math.log(2)
    )
    assert math.isclose(out["d_loss"].item(), expected.item(), rel_tol=1e-5)


def test_d_steps_can_share_one_real_batch():
    G, D, step = make(d_steps=3, d_steps_reuse_real=True)
    seen = []
    D.register_forward_hook(lambda m, i, o: seen.append(i[0][0, :4].clone()))
    real = torch.rand(4, 1, 28, 28)
    step((real[None],))
    assert len(seen) == 4 and all(torch.equal(x, real.flatten(1)) for x in seen[:3])  # 3 D steps, then G's
    assert GanTrainConfig(batch_size=4, d_steps=3, d_steps_reuse_real=True).real_per_iteration == 4
    assert GanTrainConfig(batch_size=4, d_steps=3).real_per_iteration == 12


def test_g_reuses_d_noise_or_draws_its_own():
    for reuse, g_forwards in ((True, 2 + 3 - 1), (False, 2 + 3)):
        G, D, step = make(d_steps=2, g_steps=3, g_reuses_d_noise=reuse)
        calls = []
        G.register_forward_hook(lambda m, i, o, calls=calls: calls.append(1))
        step((torch.rand(1, 8, 1, 28, 28),))
        assert len(calls) == g_forwards


def test_sigmoid_bce_stalls_at_the_log_clamp_as_the_original_did():
    """A D that calls everything real (D = 1 in float32): the original's numerics give D loss
    100, saturating G loss −100 and no gradient for G; atml's logit form keeps a gradient."""
    grads = {}
    for loss in ("sigmoid-bce", "logits"):
        G, D, step = make(loss=loss, g_loss="saturating")
        with torch.no_grad():
            D.param(f"net.{len(D.template.net) - 1}.bias").fill_(40.0)
        real = torch.rand(1, 4, 784) * 2 - 1
        gens = step.generators
        if loss == "sigmoid-bce":
            logits = D(torch.cat([real, G(torch.randn(1, 4, 8), gens).detach()], 1), gens)[0, :, 0]
            assert step.d_loss(logits, 4).item() == 100.0
        fake_logits = D(G(torch.randn(1, 4, 8), gens), gens)[0, :, 0]
        if loss == "sigmoid-bce":
            assert step.g_loss(fake_logits).item() == -100.0
        G.zero_grad()
        step.g_loss(fake_logits).backward()
        grads[loss] = torch.nn.utils.get_total_norm([p.grad for p in G.parameters()]).item()
    assert grads["sigmoid-bce"] == 0.0 and grads["logits"] > 0


def test_sigmoid_bce_d_loss_is_the_sum_of_the_two_terms_and_g_target_can_be_smoothed():
    G, D, step = make(loss="sigmoid-bce", real_label=0.9, smooth_g_target=True)
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5])
    p = torch.sigmoid(logits)
    bce = torch.nn.functional.binary_cross_entropy
    assert math.isclose(
        step.d_loss(logits, 2).item(),
        (bce(p[:2], torch.full((2,), 0.9)) + bce(p[2:], torch.zeros(2))).item(),
        rel_tol=1e-6,
    )
    assert math.isclose(step.g_loss(logits).item(), bce(p, torch.full((4,), 0.9)).item(), rel_tol=1e-6)
    _, _, plain = make(real_label=0.9)  # atml's default: G's target stays 1
    ones = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(4))
    assert math.isclose(plain.g_loss(logits).item(), ones.item(), rel_tol=1e-6)


def test_the_original_preset_is_the_notebooks_gan():
    """ORIGINAL_SETTINGS.md §3, checked on the resolved runs (and the parameter counts it printed)."""
    from atml.config import resolve
    from atml.experiments.gan import Config

    _, cfg = resolve("gan", Config, preset="original")
    runs = cfg.runs
    assert cfg.seed == 42 and cfg.eval.diversity_samples == 50
    assert {part: list(r) for part, r in runs.items()} == {
        "baseline": ["assignment"],
        "vanishing": ["pathology", "mitigation"],
        "mode-collapse": ["pathology", "mitigation"],
        "d-overfit": ["pathology", "mitigation"],
    }
    base = runs["baseline"]["assignment"]
    assert (base.model.d_dropout, base.train.real_label, base.train.epochs) == (0.3, 0.9, 20)
    assert base.train.smooth_g_target and base.train.g_reuses_d_noise and base.train.loss == "sigmoid-bce"
    assert not base.train.drop_last and base.data.train_split == "train"
    van = runs["vanishing"]["pathology"].train
    assert (van.epochs, van.lr_g, van.lr_d, van.d_steps, van.g_loss, van.real_label) == (
        15,
        2e-4,
        2e-3,
        3,
        "saturating",
        1.0,
    )
    assert van.d_steps_reuse_real and not van.g_reuses_d_noise
    fix = runs["vanishing"]["mitigation"].train
    assert (fix.lr_d, fix.d_steps, fix.g_loss, fix.real_label) == (2e-4, 1, "non_saturating", 0.9)
    mc, mc_fix = runs["mode-collapse"]["pathology"].train, runs["mode-collapse"]["mitigation"].train
    assert (mc.epochs, mc.lr_g, mc.lr_d, mc.g_steps, mc.d_steps, mc.real_label) == (20, 2e-3, 2e-4, 3, 1, 1.0)
    assert (mc_fix.lr_g, mc_fix.lr_d, mc_fix.d_steps, mc_fix.g_steps, mc_fix.real_label) == (
        2e-4,
        4e-4,
        2,
        1,
        0.9,
    )
    over, over_fix = runs["d-overfit"]["pathology"], runs["d-overfit"]["mitigation"]
    assert over.data.train_range == (0, 1000) and over.data.heldout_range == (8000, 9000)
    assert (over.train.epochs, over.train.lr_g, over.train.lr_d, over.train.steps_per_epoch) == (
        25,
        2e-4,
        2e-4,
        None,
    )
    assert (over.model.d_dropout, over.train.real_label, over_fix.model.d_dropout) == (0.0, 1.0, 0.5)
    assert over_fix.train.real_label == 0.9

    def n_params(m):
        return sum(p.numel() for p in m.parameters())

    assert n_params(Generator(100, tuple(base.model.g_hidden))) == 559_632
    assert n_params(Discriminator(tuple(base.model.d_hidden), dropout=0.3)) == 267_009
    assert n_params(Discriminator(tuple(over.model.d_hidden))) == 828_929
    assert n_params(Discriminator(tuple(over_fix.model.d_hidden), dropout=0.5)) == 267_009
