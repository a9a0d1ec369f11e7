"""gan: the parts' code — `prepare` and one runner per part (imports torch; the
experiment's settings and results are in its __init__)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from atml import plots
from atml.analysis import sample_stats
from atml.analysis.overfitting import membership_auc
from atml.data.batching import StackedBatches, TensorBatches
from atml.data.mnist import ImageDataConfig
from atml.data.mnist_sets import TrainHeldout, load_train_heldout, to_signed_range
from atml.errors import UserError
from atml.experiments import RunContext
from atml.experiments.gan import Config, GanEvalConfig, GanPartResult, GanRunSettings, GanTrainConfig
from atml.models import shipped_judges
from atml.models.mlp_gan import Discriminator, Generator
from atml.models.modes import evaluating
from atml.models.sample_classifier import JudgedClassifier, get_classifier
from atml.models.stacked import CopyAdams, CopyOf, StackedMLP
from atml.runs import Run
from atml.seeding import Seeds
from atml.training import Checkpointing, History, fit_stacked

DATASET = "mnist"


N_CLASSES = 10


@dataclass(frozen=True)
class GanContext(RunContext):
    data: dict[str, TrainHeldout]  # every run's data, by its data settings (JSON)

    def data_of(self, d: ImageDataConfig) -> TrainHeldout:
        return self.data[d.model_dump_json()]


def prepare(cfg: Config, device: torch.device, parts: list[str]) -> GanContext:
    """Load the base data (the judge's) and check the judge's batches against it, before a run
    folder exists: missing data or an impossible setting leaves nothing behind."""
    ctx = GanContext(
        cfg, device, tuple(parts), {cfg.data.model_dump_json(): load_train_heldout(DATASET, cfg.data)}
    )
    base = ctx.data_of(cfg.data)
    if cfg.eval.classifier.judge == "train" and len(base.train.images) < cfg.eval.classifier.batch_size:
        raise UserError(
            f"eval.classifier.batch_size={cfg.eval.classifier.batch_size} exceeds "
            f"the {len(base.train.images)} training images"
        )
    return ctx


def prepare_runs(part: str, ctx: GanContext) -> None:
    """Load the data of each run of `part` (once per distinct data setting) and check its
    batches against it."""
    for name, s in ctx.cfg.runs[part].items():
        key = s.data.model_dump_json()
        if key not in ctx.data:
            ctx.data[key] = load_train_heldout(DATASET, s.data)
        n, batch = len(ctx.data[key].train.images), s.train.real_per_iteration
        if n < batch and s.train.drop_last:
            raise UserError(
                f"parts.{part}.{name}: {n} training images cannot fill one iteration of {batch} "
                f"real images (train.batch_size, times train.d_steps unless d_steps_reuse_real)"
            )


def _judge(ctx: GanContext) -> tuple[TrainHeldout, JudgedClassifier]:
    """The base data and the judge of samples: atml's shipped MNIST classifier, or one trained
    on that data (eval.classifier.judge)."""
    data, device = ctx.data_of(ctx.cfg.data), ctx.device
    if ctx.cfg.eval.classifier.judge == "shipped":
        return data, shipped_judges.load(DATASET, device)
    judge = get_classifier(
        DATASET,
        to_signed_range(data.train.images).to(device),
        data.train.labels.to(device),
        to_signed_range(data.heldout.images).to(device),
        data.heldout.labels.to(device),
        ctx.cfg.eval.classifier,
    )
    return data, judge


def describe_samples(
    images: torch.Tensor, judge: JudgedClassifier, reference_features: np.ndarray, ev: GanEvalConfig
) -> dict:
    """Diversity, mode coverage and Fréchet distance of images in [-1, 1]."""
    labels, features = judge.predict(images)
    diversity = images[: ev.diversity_samples]
    return {
        "pixel_variance": sample_stats.pixel_variance(diversity),
        "mean_pairwise_distance": sample_stats.mean_pairwise_distance(diversity, ev.pairwise_max),
        "modes_covered": sample_stats.modes_covered(labels, N_CLASSES, ev.min_class_share),
        "kl_from_uniform": sample_stats.kl_from_uniform(labels, N_CLASSES),
        "frechet_distance": sample_stats.frechet_distance(
            features.double().cpu().numpy(), reference_features
        ),
        "class_counts": sample_stats.class_histogram(labels, N_CLASSES).int().tolist(),
    }


class GanStep:
    """One iteration of N stacked copies of G and D (one per seed: atml.models.stacked), each
    copy exactly as it would train alone: `d_steps` D updates (real and fake in one D forward),
    then `g_steps` G updates through a frozen D (no wasted D weight gradients). With
    `g_reuses_d_noise`, the last D step's fakes keep their graph and serve the first G update, so G
    runs forward once per update. A copy's noise and dropout come from its own generator.
    Logged values ([N], one per copy) are means over the iteration's D steps and G steps."""

    def __init__(self, G: StackedMLP, D: StackedMLP, t: GanTrainConfig, generators: list[torch.Generator]):
        self.G, self.D, self.t, self.generators = G, D, t, generators
        self.opt_g = CopyAdams(G, lr=t.lr_g, betas=t.betas, fused=True)
        self.opt_d = CopyAdams(D, lr=t.lr_d, betas=t.betas, fused=True)

    def d_loss(self, logits: torch.Tensor, n_real: int) -> torch.Tensor:
        """Real images (the first n_real logits) against real_label, fakes against 0."""
        real, fake = logits[:n_real], logits[n_real:]
        if self.t.loss == "sigmoid-bce":  # nn.BCELoss on sigmoid outputs, log clamped at −100
            return F.binary_cross_entropy(
                torch.sigmoid(real), torch.full_like(real, self.t.real_label)
            ) + F.binary_cross_entropy(torch.sigmoid(fake), torch.zeros_like(fake))
        targets = torch.cat([torch.full_like(real, self.t.real_label), torch.zeros_like(fake)])
        return F.binary_cross_entropy_with_logits(logits, targets)  # the mean of the two halves

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        t = self.t
        if t.g_loss == "saturating":  # minimise log(1 − D(G(z))) = −BCE(D(G(z)), 0)
            if t.loss == "sigmoid-bce":
                return -F.binary_cross_entropy(torch.sigmoid(fake_logits), torch.zeros_like(fake_logits))
            return -F.softplus(fake_logits).mean()
        target = torch.full_like(fake_logits, t.real_label if t.smooth_g_target else 1.0)
        if t.loss == "sigmoid-bce":
            return F.binary_cross_entropy(torch.sigmoid(fake_logits), target)
        return F.binary_cross_entropy_with_logits(fake_logits, target)  # −log D(G(z)) at target 1

    def noise(self, n: int, device: torch.device) -> torch.Tensor:
        latent = self.G.template.latent_dim
        return torch.stack([torch.randn(n, latent, generator=g, device=device) for g in self.generators])

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        (real,) = batch  # [N, B, 1, 28, 28]
        G, D, t, gens, copies = self.G, self.D, self.t, self.generators, range(self.G.copies)
        real = real.flatten(2)
        reals = [real] * t.d_steps if t.d_steps_reuse_real else list(real.chunk(t.d_steps, dim=1))
        d_logged = []
        for i, real_i in enumerate(reals):
            n_real = real_i.shape[1]
            keep_graph = t.g_reuses_d_noise and i == len(reals) - 1
            with torch.set_grad_enabled(keep_graph):
                fake = G(self.noise(n_real, real.device), gens)
            logits = D(torch.cat([real_i, fake.detach()], dim=1), gens).squeeze(-1)
            losses = [self.d_loss(logits[k], n_real) for k in copies]
            self.opt_d.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()  # the gradient of the sum: each copy's own
            self.opt_d.step()
            # per copy, as a lone copy computes them (a reduction over [N, B] may sum in another order)
            outputs = [(torch.sigmoid(h).mean() for h in logits[k].detach().split(n_real)) for k in copies]
            d_logged.append([torch.stack([losses[k].detach(), *outputs[k]]) for k in copies])
        D.requires_grad_(False)
        g_logged = []
        for j in range(t.g_steps):
            if j > 0 or not t.g_reuses_d_noise:
                fake = G(self.noise(n_real, real.device), gens)
            fake_logits = D(fake, gens).squeeze(-1)
            losses = [self.g_loss(fake_logits[k]) for k in copies]
            self.opt_g.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            # on copies, not views: torch's fused norm of a lone copy's gradients takes another path
            norms = [
                torch.nn.utils.get_total_norm([p.grad[k].clone() for p in G.parameters()]) for k in copies
            ]
            self.opt_g.step()
            g_logged.append([torch.stack([losses[k].detach(), norms[k]]) for k in copies])
        D.requires_grad_(True)
        d = torch.stack([torch.stack([step[k] for step in d_logged]).mean(0) for k in copies])
        g = torch.stack([torch.stack([step[k] for step in g_logged]).mean(0) for k in copies])
        return {
            "d_loss": d[:, 0],
            "g_loss": g[:, 0],
            "d_real": d[:, 1],
            "d_fake": d[:, 2],
            "g_grad_norm": g[:, 1],
        }


class GridKeeper:
    """Fixed-noise sample grids over epochs; checkpointed with the run so resume keeps them."""

    def __init__(self):
        self.grids: dict[int, torch.Tensor] = {}

    def state_dict(self) -> dict:
        return {"grids": self.grids}

    def load_state_dict(self, state: dict) -> None:
        self.grids = dict(state["grids"])


def device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def grids_z(latent_dim: int, seeds: Seeds, device: torch.device) -> torch.Tensor:
    """The fixed noise behind every sample grid of a run (same seed, same 25 latents)."""
    return torch.randn(25, latent_dim, generator=seeds.generator("grid")).to(device)


def in_eval_mode(module: torch.nn.Module, inputs: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """module(inputs) without gradients, in eval mode (no dropout), in chunks; modes restored after."""
    with evaluating(module):
        return torch.cat([module(x) for x in inputs.split(chunk)])


def d_logits(D: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return in_eval_mode(D, images)


def generate(G: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    return in_eval_mode(G, z)


@dataclass
class Trained:
    """One seed's G after training (its lone module), its history and its sample grids."""

    G: torch.nn.Module
    history: History
    grids: GridKeeper


def train_together(
    key: str,
    label: str,
    s: GanRunSettings,
    data: TrainHeldout,
    seeds: list[Seeds],
    ev: GanEvalConfig,
    runs: list[Run],
    device: torch.device,
) -> list[Trained]:
    """One run's G and D under every seed at once (one seed: the same code with N = 1); each seed
    is initialised, shuffled and trained exactly as it would be alone, and checkpointed in its own
    run folder."""
    train_x = to_signed_range(data.train.images).to(device)
    heldout_x = to_signed_range(data.heldout.images[: ev.d_eval_images]).to(device)
    train_eval_x = train_x[: ev.d_eval_images]
    t, m = s.train, s.model

    Gs, Ds = [], []
    for seed in seeds:
        with seed.initialising():
            Gs.append(Generator(m.latent_dim, tuple(m.g_hidden), init_std=m.init_std).to(device))
            Ds.append(Discriminator(tuple(m.d_hidden), dropout=m.d_dropout, init_std=m.init_std).to(device))
    generators = [seed.generator("training", device) for seed in seeds]
    G, D = StackedMLP(Gs), StackedMLP(Ds)
    step = GanStep(G, D, t, generators)
    batches = [
        TensorBatches(
            train_x,
            batch_size=t.real_per_iteration,
            drop_last=t.drop_last,
            seed=seed.value("batches"),
            batches_per_epoch=t.steps_per_epoch,
        )
        for seed in seeds
    ]
    lone_G = [G.copy(k) for k in range(len(seeds))]
    lone_D = [D.copy(k) for k in range(len(seeds))]
    fixed_z = [grids_z(m.latent_dim, seed, device) for seed in seeds]
    grids = [GridKeeper() for _ in seeds]

    def evaluate(epoch: int) -> list[dict]:
        rows = []
        for D_k in lone_D:
            on_train, on_heldout = d_logits(D_k, train_eval_x), d_logits(D_k, heldout_x)
            rows.append(
                {
                    "d_real_train": torch.sigmoid(on_train).mean().item(),
                    "d_real_heldout": torch.sigmoid(on_heldout).mean().item(),
                    "d_accuracy_heldout": (on_heldout > 0).float().mean().item(),  # D(x) > 0.5
                    "d_membership_auc": membership_auc(on_train, on_heldout),
                }
            )
        return rows

    def keep_grid(epoch: int) -> None:
        if epoch == 0 or (epoch + 1) % t.grid_every == 0 or epoch + 1 == t.epochs:
            for G_k, z, kept, run in zip(lone_G, fixed_z, grids, runs):
                images = generate(G_k, z)
                kept.grids[epoch + 1] = images.cpu()
                grid = plots.image_grid((images + 1) / 2, f"{label}, epoch {epoch + 1}")
                run.write_sample(f"{key}-epoch{epoch + 1:03d}", grid)

    checkpointing = [
        Checkpointing(
            run,
            key,
            {
                "G": CopyOf(G, k),
                "D": CopyOf(D, k),
                "opt_g": step.opt_g.optimizers[k],
                "opt_d": step.opt_d.optimizers[k],
                "batches": batches[k],
                "grids": grids[k],
            },
            generator=generators[k],
        )
        for k, run in enumerate(runs)
    ]
    histories = fit_stacked(
        step,
        StackedBatches(batches),
        t.epochs,
        label=label,
        log_every=t.log_every,
        evaluate=evaluate,
        on_epoch_end=keep_grid,
        checkpointing=checkpointing,
        copies=[f"seed {seed.seed}" for seed in seeds],
        shown=("d_loss", "g_loss", "d_real", "d_fake", "d_real_heldout"),
    )
    return [Trained(G_k, h, g) for G_k, h, g in zip(lone_G, histories, grids)]


def judged_samples(trained: Trained, latent_dim: int, ev: GanEvalConfig, seeds: Seeds) -> torch.Tensor:
    """The eval.n_samples images from fresh z the sample numbers judge, in [-1, 1]."""
    z = torch.randn(ev.n_samples, latent_dim, generator=seeds.generator("samples")).to(device_of(trained.G))
    return generate(trained.G, z)


def run_metrics(
    trained: Trained,
    samples: torch.Tensor,
    judge: JudgedClassifier,
    reference_features: np.ndarray,
    ev: GanEvalConfig,
) -> dict:
    history = trained.history
    last = history.epochs[-1]
    d_fake_series = np.array([r["d_fake"] for r in history.steps])
    grad_series = np.array([r["g_grad_norm"] for r in history.steps])
    return {
        "final_d_real": last["d_real"],
        "final_d_fake": last["d_fake"],
        "final_d_loss": last["d_loss"],
        "final_g_loss": last["g_loss"],
        "share_of_run_d_fake_below_0.05": float((d_fake_series < 0.05).mean()),
        "g_grad_norm_median": float(np.median(grad_series)),
        "g_grad_norm_final_epoch": last["g_grad_norm"],
        "d_real_train": last["d_real_train"],
        "d_real_heldout": last["d_real_heldout"],
        "d_accuracy_heldout": last["d_accuracy_heldout"],
        "d_real_train_minus_heldout": last["d_real_train"] - last["d_real_heldout"],
        "d_membership_auc": last["d_membership_auc"],
        "d_membership_auc_late_mean": float(
            np.mean([r["d_membership_auc"] for r in history.epochs[-max(1, len(history.epochs) // 4) :]])
        ),
        **describe_samples(samples, judge, reference_features, ev),
    }


CURVES = [
    plots.Panel("losses", [plots.Series("d_loss", "D loss"), plots.Series("g_loss", "G loss")], "loss"),
    plots.Panel(
        "discriminator outputs",
        [plots.Series("d_real", "D(x)"), plots.Series("d_fake", "D(G(z))")],
        "mean D",
        hline=0.5,
    ),
    plots.Panel("G gradient norm", [plots.Series("g_grad_norm", "‖∇G‖")], "norm (log)", logy=True),
    plots.Panel(
        "D on real images (eval mode)",
        [
            plots.Series("d_real_train", "training images", "epochs"),
            plots.Series("d_real_heldout", "held-out images", "epochs"),
        ],
        "mean D(x)",
    ),
    plots.Panel(
        "D tells training from held-out images",
        [plots.Series("d_membership_auc", "membership AUC", "epochs")],
        "ROC AUC (0.5 = no memorisation)",
        hline=0.5,
    ),
]


def run_part(part: str, ctxs: list[GanContext], runs: list[Run]) -> list[GanPartResult]:
    """A part under every seed of `ctxs` at once (their configs differ only in the seed): each of
    the part's runs trains all seeds together; each seed's numbers and figures go to its own run."""
    cfg, device, seeds = ctxs[0].cfg, ctxs[0].device, [c.seeds for c in ctxs]
    data, judge = _judge(ctxs[0])
    heldout = to_signed_range(data.heldout.images).to(device)
    _, reference_features = judge.predict(heldout)
    reference_features = reference_features.double().cpu().numpy()
    real_train = to_signed_range(data.train.images[: cfg.eval.n_samples]).to(device)
    shared = {
        "data": data.description,
        "sample_classifier": judge.description,
        "sample_classifier_sha256": judge.sha256,
        "sample_classifier_heldout_accuracy": judge.heldout_accuracy,
        "real_images_reference": describe_samples(real_train, judge, reference_features, cfg.eval),
    }
    metrics: list[dict] = [dict(shared) for _ in seeds]
    curves: list[dict] = [{} for _ in seeds]
    figures: list[dict] = [{"histories": {}, "finals": {}, "epoch_grids": {}, "fresh": {}} for _ in seeds]
    for name, settings in cfg.runs[part].items():
        key = f"{part}-{name}"
        label = f"gan/{part}" + (f"/{name}" if name != part else "")
        trained = train_together(
            key, label, settings, ctxs[0].data_of(settings.data), seeds, cfg.eval, runs, device
        )
        for seed, t, m, c, f in zip(seeds, trained, metrics, curves, figures):
            samples = judged_samples(t, settings.model.latent_dim, cfg.eval, seed)
            m[name] = run_metrics(t, samples, judge, reference_features, cfg.eval)
            f["fresh"][name] = (samples[:25] + 1) / 2
            c[key] = [{"run": name, **r} for r in t.history.epochs]
            c[f"{key}_steps"] = [{"run": name, **r} for r in t.history.steps]
            f["histories"][name] = {"steps": t.history.steps, "epochs": t.history.epochs}
            final = generate(t.G, grids_z(settings.model.latent_dim, seed, device))
            f["finals"][
                f"{name} (modes {m[name]['modes_covered']}/10, FD {m[name]['frechet_distance']:.1f})"
            ] = (final + 1) / 2
            f["epoch_grids"][name] = {f"epoch {e}": (g + 1) / 2 for e, g in sorted(t.grids.grids.items())}
    return [
        GanPartResult.model_validate(m).with_outputs(part_figures(part, cfg, m, **f), c)
        for m, c, f in zip(metrics, curves, figures)
    ]


def part_figures(
    part: str, cfg: Config, metrics: dict, histories: dict, finals: dict, epoch_grids: dict, fresh: dict
) -> dict[str, bytes]:
    """One seed's figures of the part."""
    title = f"GAN {part}" + (f" — {' vs '.join(histories)}" if len(histories) > 1 else "")
    figures = {}
    figures[f"{part}_curves"] = plots.training_curves(histories, CURVES, title)
    figures[f"{part}_final_grid"] = plots.image_grids(
        {"final 5×5 samples": finals},
        f"GAN {part}: final samples (fixed noise)",
    )
    figures[f"{part}_grids_over_epochs"] = plots.image_grids(
        epoch_grids,
        f"GAN {part}: fixed-noise samples over training",
    )
    figures[f"{part}_fresh_samples"] = plots.image_grids(
        {"25 samples from fresh z": fresh},
        f"GAN {part}: samples from fresh z, the first 25 of those the sample numbers judge",
    )
    figures[f"{part}_digit_strip"] = plots.image_grids(
        {name: {"10 single digits from fresh z": images[:10]} for name, images in fresh.items()},
        f"GAN {part}: single generated digits (fresh z)",
        nrow=10,
    )
    figures[f"{part}_class_histogram"] = plots.grouped_bars(
        {name: metrics[name]["class_counts"] for name in histories}
        | {"real images": metrics["real_images_reference"]["class_counts"]},
        [str(c) for c in range(N_CLASSES)],
        f"GAN {part}: classes of {cfg.eval.n_samples} samples ({metrics['sample_classifier']})",
        "samples",
    )
    return figures
