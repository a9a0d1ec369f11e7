"""Several seeds of a GAN run or a VAE schedule trained together (atml.models.stacked): each seed's
numbers are the ones it gets alone, bit for bit, and an interrupted stacked run resumes, together
or seed by seed."""

import importlib
import json

import pytest
import torch

from atml.experiments.vae.parts import loss_terms
from atml.models.mlp_gan import Discriminator, Generator
from atml.models.stacked import CopyAdams, Stacked, StackedMLP
from atml.models.vae import ConvVAE, StackedConvVAE
from atml.seed_summary import numeric_leaves

TIMINGS = ("time_s",)


def numbers(folder) -> dict:
    leaves = numeric_leaves(json.loads((folder / "metrics.json").read_text()))
    return {k: v for k, v in leaves.items() if not k.endswith(TIMINGS)}


def fork_global() -> torch.Generator:
    """A generator in the global one's state: what a lone module (its nn.Dropout, its
    reparameterisation) draws next from the global stream, a stacked copy draws from this."""
    return torch.Generator().set_state(torch.get_rng_state())


def folders(root, seed_suffix: str = "", experiment: str = "gan") -> list:
    return sorted(
        p for p in (root / experiment).iterdir() if p.name.endswith(seed_suffix) and "seeds" not in p.name
    )


def test_copies_compute_what_their_lone_modules_compute_dropout_included():
    """At the GAN's sizes (batch 64 real + 64 fake, 784 → 256 → 256 → 1): a lone module's exact
    numbers. (At other sizes a batched matmul may sum in another order than a lone one; the stacked
    path stays the same for one seed or many, which is what makes a seed's numbers its own.)"""
    lone, generators = [], []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        lone.append(Discriminator(dropout=0.4))
        generators.append(fork_global())
    stacked = StackedMLP(lone)
    x = torch.rand(3, 128, 1, 28, 28)
    together = stacked(x, generators)  # training mode: dropout drawn from each copy's generator
    for k, seed in enumerate((0, 1, 2)):
        torch.manual_seed(seed)
        Discriminator(dropout=0.4)  # the same draws as above, so the global stream is where it was
        assert torch.equal(together[k, :, 0], lone[k](x[k]))
    copy = stacked.copy(1).eval()  # a copy as a module of its own: evaluation, sample grids
    assert torch.equal(copy(x[1]), lone[1].eval()(x[1]))


def test_at_other_sizes_a_copy_with_others_is_within_rounding_of_it_alone():
    """A batched matmul over one copy and over three need not sum in the same order at every size
    (here 5 × 7 → 33 → 5 → 784 differs in the last bits on this CPU); at the GAN's sizes it does,
    which the CLI test below checks on every number of a run."""

    def build(seeds):
        copies, generators = [], []
        for seed in seeds:
            torch.manual_seed(seed)
            copies.append(Generator(latent_dim=7, hidden=(33, 5)))
            generators.append(fork_global())
        return StackedMLP(copies), generators

    z = torch.randn(3, 5, 7)
    (alone, g1), (together, g3) = build([1]), build([0, 1, 2])
    one, with_others = alone(z[1:2], g1)[0], together(z, g3)[1]
    assert torch.allclose(one, with_others, rtol=1e-5, atol=1e-9)


def test_each_copy_is_updated_as_its_lone_adam_updates_it_at_any_size():
    """20 parameters (the VAE's latent biases): one fused Adam over the stacked [3, 20] tensor
    rounds some second moments otherwise than the lone Adam over [20] (its vectorised and scalar
    paths split the tensor elsewhere); CopyAdams steps each copy's own Adam and matches, every step."""
    torch.manual_seed(0)
    copies = [torch.nn.Linear(20, 20) for _ in range(3)]
    stacked = Stacked(copies)
    lone = torch.nn.Linear(20, 20)
    lone.load_state_dict(copies[1].state_dict())
    together, alone = (
        CopyAdams(stacked, lr=1e-3, fused=True),
        torch.optim.Adam(lone.parameters(), lr=1e-3, fused=True),
    )
    for _ in range(50):
        grads = {name: torch.randn(3, *p.shape) for name, p in lone.named_parameters()}
        for name, p in lone.named_parameters():
            stacked.param(name).grad, p.grad = grads[name], grads[name][1].clone()
        together.step()
        alone.step()
    for name, p in lone.named_parameters():
        assert torch.equal(stacked.param(name)[1], p), name
    assert torch.equal(
        together.optimizers[1].state_dict()["state"][1]["exp_avg_sq"],
        alone.state_dict()["state"][1]["exp_avg_sq"],
    )


def noise(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(100 + seed)


def vae_copies(seeds, exact=True):
    copies = []
    for seed in seeds:
        torch.manual_seed(seed)
        copies.append(ConvVAE())
    return copies, StackedConvVAE(copies, exact=exact), [noise(seed) for seed in seeds]


def vae_losses_and_grads(stacked, generators, x):
    recon, mu, logvar = stacked(x, generators)
    terms = [loss_terms(recon[k], mu[k], logvar[k], x[k]) for k in range(len(x))]
    torch.stack([rec + kl for rec, kl in terms]).sum().backward()
    return recon, {name: stacked.param(name).grad for name in stacked.names}


@pytest.mark.parametrize(
    "batch", [128, 37]
)  # 37: an odd last batch, where elementwise kernels split otherwise
def test_vae_copies_compute_and_differentiate_what_their_lone_modules_do(batch):
    """Convolutions, the sigmoid and the reparameterisation run copy by copy (exact mode), the
    linear layers batched: outputs and every gradient bit for bit a lone ConvVAE's."""
    copies, stacked, generators = vae_copies((0, 1, 2))
    x = torch.rand(3, batch, 1, 28, 28)
    recon, grads = vae_losses_and_grads(stacked, generators, x)
    for k, seed in enumerate((0, 1, 2)):
        lone_recon, mu, logvar = copies[k](x[k], noise(seed))  # the noise its copy drew
        sum(loss_terms(lone_recon, mu, logvar, x[k])).backward()
        assert torch.equal(recon[k], lone_recon)
        for name, p in copies[k].named_parameters():
            assert torch.equal(grads[name][k], p.grad), name
    assert torch.equal(stacked.lone(1)(x[1], noise(1))[1], copies[1](x[1], noise(1))[1])  # after training


def test_grouped_convolutions_are_within_rounding_of_the_exact_path():
    """Batched mode (a CUDA run's): every copy's convolution in one grouped kernel; its numbers may
    round otherwise than a lone convolution, so a seed's are close to its lone run's, not equal."""
    x = torch.rand(3, 16, 1, 28, 28)
    _, exact, g1 = vae_copies((0, 1, 2))
    _, grouped, g2 = vae_copies((0, 1, 2), exact=False)
    (r1, grads1), (r2, grads2) = vae_losses_and_grads(exact, g1, x), vae_losses_and_grads(grouped, g2, x)
    assert torch.allclose(r1, r2, rtol=1e-5, atol=1e-6)
    for name in exact.names:
        assert torch.allclose(grads1[name], grads2[name], rtol=1e-4, atol=1e-6), name


SEEDED_RUNS = {
    "gan": ["--part", "mode-collapse"],
    "vae": ["--part", "train", "--set", "data.train_subset=333"],  # batches of 128, 128 and an odd 77
}


@pytest.mark.parametrize("experiment", SEEDED_RUNS)
def test_a_seed_trained_with_others_has_the_numbers_it_has_alone(cli, fake_root, tmp_path, experiment):
    common = ["run", experiment, "--smoke", *SEEDED_RUNS[experiment], "--set", f"data.root={fake_root}"]
    code, _, err = cli(*common, "--seeds", "0,1,2", "--out", tmp_path / "together")
    assert code == 0, err
    code, _, err = cli(*common, "--seed", "1", "--out", tmp_path / "alone")
    assert code == 0, err
    (alone,) = folders(tmp_path / "alone", experiment=experiment)
    seed1 = folders(tmp_path / "together", "-seed1", experiment)[0]
    assert json.loads((seed1 / "env.json").read_text())["seeds_trained_together"] == [0, 1, 2]
    together, by_itself = numbers(seed1), numbers(alone)
    assert len(together) > 20 and together == by_itself  # every number, bit for bit
    other = numbers(folders(tmp_path / "together", "-seed0", experiment)[0])
    assert other != by_itself  # another seed, other numbers


INTERRUPTIONS = {  # experiment: (part, the function that raises, at which call: one in epoch 2)
    "gan": ("baseline", "d_logits", 5),  # two seeds, two D scorings each per epoch
    "vae": ("train", "evaluate_losses", 2),  # one validation of every seed per epoch
}


@pytest.mark.parametrize("experiment", INTERRUPTIONS)
def test_an_interrupted_stacked_run_resumes_together_with_the_numbers_of_an_uninterrupted_one(
    cli, fake_root, tmp_path, monkeypatch, experiment
):
    part, name, nth = INTERRUPTIONS[experiment]
    parts = importlib.import_module(f"atml.experiments.{experiment}.parts")
    real, calls = getattr(parts, name), {"n": 0}

    def interrupt_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    common = ["run", experiment, "--smoke", "--part", part, "--set", f"data.root={fake_root}"]
    monkeypatch.setattr(parts, name, interrupt_in_second_epoch)
    code, _, err = cli(*common, "--seeds", "0,1", "--out", tmp_path / "cut")
    seed0, seed1 = folders(tmp_path / "cut", experiment=experiment)
    assert code == 130 and f"--resume {seed0} --resume {seed1}" in err
    monkeypatch.setattr(parts, name, real)
    code, out, err = cli("run", experiment, "--resume", seed0, "--resume", seed1)
    assert code == 0, err
    assert "resuming after epoch 1/2" in out
    code, _, err = cli(*common, "--seed", "1", "--out", tmp_path / "whole")
    assert code == 0, err
    assert numbers(seed1) == numbers(folders(tmp_path / "whole", experiment=experiment)[0])


def test_seeds_resumed_together_must_share_their_config_but_the_seed(cli, fake_root, tmp_path):
    """A stacked resume trains every folder with one config: folders of other settings are refused
    before anything runs (alone, each resumes)."""
    common = ["run", "vae", "--smoke", "--part", "train", "--set", f"data.root={fake_root}"]
    code, _, err = cli(*common, "--seed", "0", "--out", tmp_path)
    assert code == 0, err
    code, _, err = cli(*common, "--seed", "1", "--set", "train.lr=0.002", "--out", tmp_path)
    assert code == 0, err
    first, second = folders(tmp_path, experiment="vae")
    code, _, err = cli("run", "vae", "--resume", first, "--resume", second)
    assert code == 2 and "configs must differ only in the seed" in err
    code, _, err = cli("run", "vae", "--resume", second)
    assert code == 0, err
