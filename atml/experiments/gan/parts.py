"""gan: the parts' code — `prepare` and one runner per part (imports torch; the
experiment's settings and results are in its __init__)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from atml import plots, seeding
from atml.analysis import sample_stats
from atml.analysis.overfitting import membership_auc
from atml.data.batching import TensorBatches
from atml.data.mnist import ImageDataConfig
from atml.data.mnist_sets import TrainHeldout, load_train_heldout, to_signed_range
from atml.errors import UserError
from atml.experiments import RunContext
from atml.experiments.gan import PARTS, Config, GanEvalConfig, GanPartResult, GanRunSettings, GanTrainConfig
from atml.models.mlp_gan import Discriminator, Generator
from atml.models.modes import evaluating
from atml.models.sample_classifier import JudgedClassifier, get_classifier
from atml.runs import Run
from atml.training import Checkpointing, fit

DATASET = "mnist"


N_CLASSES = 10


@dataclass(frozen=True)
class GanContext(RunContext):
    data: dict[str, TrainHeldout]  # every run's data, by its data settings (JSON)

    def data_of(self, d: ImageDataConfig) -> TrainHeldout:
        return self.data[d.model_dump_json()]


def prepare(cfg: Config, device: torch.device, parts: list[str]) -> GanContext:
    """Load the data of every run of `parts` and check each run's batches against it, before a
    run folder exists: missing data or an impossible setting leaves nothing behind."""
    settings = [cfg.data, *(s.data for part in parts for s in cfg.runs[part].values())]
    data = {d.model_dump_json(): None for d in settings}
    data = {key: load_train_heldout(DATASET, ImageDataConfig.model_validate_json(key)) for key in data}
    ctx = GanContext(cfg, device, tuple(parts), data)
    base = ctx.data_of(cfg.data)
    if len(base.train.images) < cfg.eval.classifier.batch_size:
        raise UserError(
            f"eval.classifier.batch_size={cfg.eval.classifier.batch_size} exceeds "
            f"the {len(base.train.images)} training images"
        )
    for part in parts:
        for name, s in cfg.runs[part].items():
            n, batch = len(ctx.data_of(s.data).train.images), s.train.real_per_iteration
            if n < batch and s.train.drop_last:
                raise UserError(
                    f"parts.{part}.{name}: {n} training images cannot fill one iteration of {batch} "
                    f"real images (train.batch_size, times train.d_steps unless d_steps_reuse_real)"
                )
    return ctx


def _judge(ctx: GanContext) -> tuple[TrainHeldout, JudgedClassifier]:
    data, device = ctx.data_of(ctx.cfg.data), ctx.device
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
    """One iteration: `d_steps` D updates (real and fake in one D forward), then `g_steps` G updates
    through a frozen D (no wasted D weight gradients). With `g_reuses_d_noise`, the last D step's
    fakes keep their graph and serve the first G update, so G runs forward once per update.
    Logged values are means over the iteration's D steps and G steps."""

    def __init__(self, G: Generator, D: Discriminator, t: GanTrainConfig):
        self.G, self.D, self.t = G, D, t
        self.opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=t.betas, fused=True)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=t.betas, fused=True)

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

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        (real,) = batch
        G, D, t = self.G, self.D, self.t
        reals = [real] * t.d_steps if t.d_steps_reuse_real else list(real.chunk(t.d_steps))
        d_logged = []
        for i, real_i in enumerate(reals):
            keep_graph = t.g_reuses_d_noise and i == len(reals) - 1
            with torch.set_grad_enabled(keep_graph):
                fake = G(torch.randn(len(real_i), G.latent_dim, device=real.device))
            logits = D(torch.cat([real_i, fake.detach()]))
            d_loss = self.d_loss(logits, len(real_i))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            d_real, d_fake = (torch.sigmoid(part).mean() for part in logits.detach().split(len(real_i)))
            d_logged.append(torch.stack([d_loss.detach(), d_real, d_fake]))
        D.requires_grad_(False)
        g_logged = []
        for j in range(t.g_steps):
            if j > 0 or not t.g_reuses_d_noise:
                fake = G(torch.randn(len(real_i), G.latent_dim, device=real.device))
            g_loss = self.g_loss(D(fake))
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            g_grad_norm = torch.nn.utils.get_total_norm([p.grad for p in G.parameters()])
            self.opt_g.step()
            g_logged.append(torch.stack([g_loss.detach(), g_grad_norm]))
        D.requires_grad_(True)
        d_loss, d_real, d_fake = torch.stack(d_logged).mean(0)
        g_loss, g_grad_norm = torch.stack(g_logged).mean(0)
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": d_real,
            "d_fake": d_fake,
            "g_grad_norm": g_grad_norm,
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


def grids_z(G: Generator, seed: int) -> torch.Tensor:
    """The fixed noise behind every sample grid of a run (same seed, same 25 latents)."""
    return torch.randn(25, G.latent_dim, generator=seeding.generator(seed)).to(device_of(G))


def in_eval_mode(module: torch.nn.Module, inputs: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """module(inputs) without gradients, in eval mode (no dropout), in chunks; modes restored after."""
    with evaluating(module):
        return torch.cat([module(x) for x in inputs.split(chunk)])


def d_logits(D: Discriminator, images: torch.Tensor) -> torch.Tensor:
    return in_eval_mode(D, images)


def generate(G: Generator, z: torch.Tensor) -> torch.Tensor:
    return in_eval_mode(G, z)


def train_one(
    key: str,
    label: str,
    s: GanRunSettings,
    data: TrainHeldout,
    seed: int,
    ev: GanEvalConfig,
    run: Run,
    device: torch.device,
):
    train_x = to_signed_range(data.train.images).to(device)
    heldout_x = to_signed_range(data.heldout.images[: ev.d_eval_images]).to(device)
    train_eval_x = train_x[: ev.d_eval_images]
    t = s.train

    seeding.seed_torch(seed)
    G = Generator(s.model.latent_dim, tuple(s.model.g_hidden), init_std=s.model.init_std).to(device)
    D = Discriminator(tuple(s.model.d_hidden), dropout=s.model.d_dropout, init_std=s.model.init_std).to(
        device
    )
    step = GanStep(G, D, t)
    batches = TensorBatches(
        train_x,
        batch_size=t.real_per_iteration,
        drop_last=t.drop_last,
        seed=seed,
        batches_per_epoch=t.steps_per_epoch,
    )
    fixed_z = grids_z(G, seed)
    grids = GridKeeper()

    def evaluate(epoch: int) -> dict:
        on_train, on_heldout = d_logits(D, train_eval_x), d_logits(D, heldout_x)
        return {
            "d_real_train": torch.sigmoid(on_train).mean().item(),
            "d_real_heldout": torch.sigmoid(on_heldout).mean().item(),
            "d_accuracy_heldout": (on_heldout > 0).float().mean().item(),  # D(x) > 0.5
            "d_membership_auc": membership_auc(on_train, on_heldout),
        }

    def keep_grid(epoch: int) -> None:
        if epoch == 0 or (epoch + 1) % t.grid_every == 0 or epoch + 1 == t.epochs:
            images = generate(G, fixed_z)
            grids.grids[epoch + 1] = images.cpu()
            plots.image_grid(
                (images + 1) / 2,
                run.sample_path(f"{key}-epoch{epoch + 1:03d}"),
                f"{label}, epoch {epoch + 1}",
            )

    history = fit(
        step,
        batches,
        t.epochs,
        label=label,
        log_every=t.log_every,
        evaluate=evaluate,
        on_epoch_end=keep_grid,
        checkpointing=Checkpointing(
            run,
            key,
            {"G": G, "D": D, "opt_g": step.opt_g, "opt_d": step.opt_d, "batches": batches, "grids": grids},
        ),
    )
    return G, history, grids


def run_metrics(
    history,
    G: Generator,
    judge: JudgedClassifier,
    reference_features: np.ndarray,
    ev: GanEvalConfig,
    seed: int,
) -> dict:
    last = history.epochs[-1]
    d_fake_series = np.array([r["d_fake"] for r in history.steps])
    grad_series = np.array([r["g_grad_norm"] for r in history.steps])
    z = torch.randn(ev.n_samples, G.latent_dim, generator=seeding.generator(seed + 1)).to(device_of(G))
    samples = generate(G, z)
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


def run_part(part: str, ctx: GanContext, run: Run) -> GanPartResult:
    cfg, device = ctx.cfg, ctx.device
    data, judge = _judge(ctx)
    heldout = to_signed_range(data.heldout.images).to(device)
    _, reference_features = judge.predict(heldout)
    reference_features = reference_features.double().cpu().numpy()
    real_train = to_signed_range(data.train.images[: cfg.eval.n_samples]).to(device)
    metrics: dict = {
        "data": data.description,
        "sample_classifier_heldout_accuracy": judge.heldout_accuracy,
        "real_images_reference": describe_samples(real_train, judge, reference_features, cfg.eval),
    }
    histories, finals, epoch_grids = {}, {}, {}
    for name, settings in cfg.runs[part].items():
        key = f"{part}-{name}"
        label = f"gan/{part}" + (f"/{name}" if name != part else "")
        G, history, grids = train_one(
            key, label, settings, ctx.data_of(settings.data), cfg.seed, cfg.eval, run, device
        )
        metrics[name] = run_metrics(history, G, judge, reference_features, cfg.eval, cfg.seed)
        run.write_history(key, [{"run": name, **r} for r in history.epochs])
        run.write_history(f"{key}_steps", [{"run": name, **r} for r in history.steps])
        histories[name] = {"steps": history.steps, "epochs": history.epochs}
        finals[
            f"{name} (modes {metrics[name]['modes_covered']}/10, FD {metrics[name]['frechet_distance']:.1f})"
        ] = (generate(G, grids_z(G, cfg.seed)) + 1) / 2
        epoch_grids[name] = {f"epoch {e}": (g + 1) / 2 for e, g in sorted(grids.grids.items())}

    title = f"GAN {part}" + (f" — {' vs '.join(histories)}" if len(histories) > 1 else "")
    plots.training_curves(histories, CURVES, run.plot_path(f"{part}_curves"), title)
    plots.image_grids(
        {"final 5×5 samples": finals},
        run.plot_path(f"{part}_final_grid"),
        f"GAN {part}: final samples (fixed noise)",
    )
    plots.image_grids(
        epoch_grids,
        run.plot_path(f"{part}_grids_over_epochs"),
        f"GAN {part}: fixed-noise samples over training",
    )
    plots.grouped_bars(
        {name: metrics[name]["class_counts"] for name in histories}
        | {"real images": metrics["real_images_reference"]["class_counts"]},
        [str(c) for c in range(N_CLASSES)],
        run.plot_path(f"{part}_class_histogram"),
        f"GAN {part}: classes of {cfg.eval.n_samples} samples (atml's classifier)",
        "samples",
    )
    return GanPartResult.model_validate(metrics)


RUNNERS = {part: partial(run_part, part) for part in PARTS}
