import math

import torch

from atml.experiments.gan import GanStep, GanTrainConfig
from atml.models.mlp_gan import Discriminator, Generator


def make(**train):
    torch.manual_seed(0)
    G, D = Generator(latent_dim=8, hidden=(16,)), Discriminator(hidden=(16,))
    return G, D, GanStep(G, D, GanTrainConfig(batch_size=4, **train))


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
    out = step((torch.rand(4, 1, 28, 28) * 2 - 1,))
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm"}
    assert all(not torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(d0, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())  # D unfrozen again after the G update


def test_g_update_leaves_no_gradient_on_d():
    G, D, step = make()
    step((torch.rand(4, 1, 28, 28) * 2 - 1,))
    # D's grads are those of its own update (zeroed with set_to_none before it); G's update,
    # made through a frozen D, must not have added to them.
    d_grads = [p.grad.clone() for p in D.parameters()]
    D.requires_grad_(False)
    step.g_loss(D(G(torch.randn(4, 8)))).backward()
    D.requires_grad_(True)
    assert all(torch.equal(a, p.grad) for a, p in zip(d_grads, D.parameters()))


def test_k_d_steps_use_k_real_batches():
    G, D, step = make(d_steps=3)
    calls = []
    D.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    step((torch.rand(12, 1, 28, 28),))
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
    out = step((torch.zeros(4, 1, 28, 28),))
    expected = 0.5 * (
        torch.nn.functional.binary_cross_entropy_with_logits(torch.zeros(4), torch.full((4,), 0.9))
        + math.log(2)
    )
    assert math.isclose(out["d_loss"].item(), expected.item(), rel_tol=1e-5)
