"""vae: the parts' code — `prepare` and one runner per part (imports torch; the
experiment's settings and results are in its __init__)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from atml import plots
from atml.analysis import posterior
from atml.analysis.embeddings import project_2d
from atml.data.batching import StackedBatches, TensorBatches
from atml.data.mnist import DATASETS
from atml.data.mnist_sets import load_split, load_train_heldout, to_unit_range
from atml.errors import UserError
from atml.experiments import RunContext
from atml.experiments.vae import Config, VaePartResult, VaeTrainConfig
from atml.models.modes import evaluating
from atml.models.stacked import CopyAdams, CopyOf
from atml.models.vae import LATENT_DIM, ConvVAE, StackedConvVAE
from atml.runs import Run
from atml.runtime import autocast, resolve_precision
from atml.schedules import BetaSchedule, beta_at
from atml.training import Checkpointing, History, fit_stacked

DATASET = "fashion-mnist"


CLASSES = DATASETS[DATASET].classes


@dataclass
class Splits:
    train: torch.Tensor  # float [N, 1, 28, 28] in [0, 1]
    validation: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor
    description: str


def load_splits(cfg: Config, device: torch.device) -> Splits:
    d, n = cfg.data, cfg.eval.test_images
    test = load_split(DATASET, "test", d.root, d.download)
    if cfg.eval.validation == "test":  # every training image trains (data.heldout is not used)
        train = load_train_heldout(DATASET, d.model_copy(update={"heldout": 0})).train
        train_images, validation = train.images, test.images[:n]
        description = f"{train.source}: trained on {len(train.images)} images; validation = the test images"
    else:
        train_val = load_train_heldout(DATASET, d)
        train_images, validation = train_val.train.images, train_val.heldout.images
        description = f"{train_val.description}; validation = the held-out images"
    return Splits(
        to_unit_range(train_images).to(device),
        to_unit_range(validation).to(device),
        to_unit_range(test.images[:n]).to(device),
        test.labels[:n],
        f"{description}; test = {test.source}",
    )


@dataclass(frozen=True)
class VaeContext(RunContext):
    data: Splits


def prepare(cfg: Config, device: torch.device, parts: list[str]) -> VaeContext:
    """Load the data and check the batch size against it before a run folder exists."""
    ctx = VaeContext(cfg, device, tuple(parts), load_splits(cfg, device))
    n = len(ctx.data.train)
    if n < cfg.train.batch_size:
        raise UserError(f"train.batch_size={cfg.train.batch_size} exceeds the {n} training images")
    return ctx


def loss_terms(
    recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image reconstruction (MSE summed over pixels) and KL(q(z|x) ‖ N(0, I)), batch means."""
    rec = F.mse_loss(recon, x, reduction="sum") / len(x)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum() / len(x)
    return rec, kl


class StepCounter:
    """The optimisation step β is read at; checkpointed so a resumed run continues its schedule."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]


class VaeStep:
    """One Adam update of N stacked copies (one per seed: atml.models.stacked; one seed is N = 1),
    each on its own recon + β·KL, β read from the schedule at this step; the forward pass under the
    resolved precision (bf16 autocast where the hardware runs it natively). Logged values are [N]."""

    def __init__(
        self,
        model: StackedConvVAE,
        t: VaeTrainConfig,
        schedule: BetaSchedule,
        total_steps: int,
        device: torch.device,
        generators: list[torch.Generator],
    ):
        self.model, self.schedule, self.total_steps, self.epochs = model, schedule, total_steps, t.epochs
        self.generators = generators
        self.optimizer = CopyAdams(model, lr=t.lr, fused=True)
        self.counter = StepCounter()
        self.batch_sum = t.loss == "batch-sum"
        self.device, self.precision = device, resolve_precision(device, t.precision)

    def beta(self, step: int) -> float:
        return beta_at(self.schedule, step, self.total_steps, self.epochs)

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        (x,) = batch  # [N, B, 1, 28, 28]
        beta = self.beta(self.counter.step)
        self.counter.step += 1
        with autocast(self.device, self.precision):
            recon, mu, logvar = self.model(x, self.generators)
            # per copy, as a lone copy computes them (a reduction over [N, B] may sum in another order)
            terms = [loss_terms(*copy) for copy in zip(recon.unbind(0), mu.unbind(0), logvar.unbind(0), x)]
        rec = torch.stack([r.float() for r, _ in terms])
        kl = torch.stack([k.float() for _, k in terms])
        loss = rec + beta * kl
        self.optimizer.zero_grad(set_to_none=True)
        per_step = loss * x.shape[1] if self.batch_sum else loss  # batch-sum: B times each image's mean
        per_step.sum().backward()  # the gradient of the sum over copies: each copy's own
        self.optimizer.step()
        return {
            "loss": loss.detach(),
            "recon": rec.detach(),
            "kl": kl.detach(),
            "beta": torch.full((len(x),), beta),
        }


def evaluate_losses(
    model: torch.nn.Module,
    images: torch.Tensor,
    beta: float,
    generators: Sequence[torch.Generator],
    batch_size: int = 1000,
) -> list[dict[str, float]]:
    """Mean per-image losses on `images` of every copy of a StackedConvVAE (one row per copy, each
    with its generator), or of a ConvVAE (one row, one generator)."""
    stacked = isinstance(model, StackedConvVAE)
    copies = len(generators)
    rec, kl = [0.0] * copies, [0.0] * copies
    with evaluating(model):
        for x in images.split(batch_size):
            if stacked:
                outputs = model(x.expand(copies, *x.shape), generators)
            else:
                outputs = [o.unsqueeze(0) for o in model(x, *generators)]  # as one copy of a stacked one
            for k in range(copies):
                r, d = loss_terms(*(o[k] for o in outputs), x)
                rec[k], kl[k] = rec[k] + r.item() * len(x), kl[k] + d.item() * len(x)
    rows = []
    for r, d in zip(rec, kl):
        r, d = r / len(images), d / len(images)
        rows.append({"loss": r + beta * d, "recon": r, "kl": d})
    return rows


def train_together(kind: str, ctxs: list[VaeContext], runs: list[Run]) -> list[tuple[ConvVAE, History]]:
    """Schedule `kind` trained under every seed of `ctxs` at once (their configs differ only in the
    seed; one seed: N = 1), each seed initialised, shuffled and trained exactly as it would be
    alone, and checkpointed in its own run folder (a finished run returns its stored histories)."""
    cfg, device, data = ctxs[0].cfg, ctxs[0].device, ctxs[0].data
    schedule = cfg.train.beta_schedule.model_copy(update={"kind": kind})
    copies = []
    for ctx in ctxs:
        with ctx.seeds.initialising():
            copies.append(ConvVAE().to(device))
    generators = [ctx.seeds.generator("training", device) for ctx in ctxs]
    batches = [
        TensorBatches(
            data.train,
            batch_size=cfg.train.batch_size,
            seed=ctx.seeds.value("batches"),
            drop_last=cfg.train.drop_last,
        )
        for ctx in ctxs
    ]
    # a CUDA run batches the convolutions too (grouped): within rounding of a lone seed, not equal
    model = StackedConvVAE(copies, exact=device.type != "cuda")
    step = VaeStep(model, cfg.train, schedule, cfg.train.epochs * len(batches[0]), device, generators)

    def validate(epoch: int) -> list[dict]:
        beta = step.beta(max(step.counter.step - 1, 0))
        noise = [ctx.seeds.generator("evaluation", device) for ctx in ctxs]  # the same ε every epoch
        rows = evaluate_losses(model, data.validation, beta, noise)
        return [{f"val_{k}": v for k, v in row.items()} for row in rows]

    states = [
        {
            "model": CopyOf(model, k),
            "optimizer": step.optimizer.optimizers[k],
            "batches": b,
            "counter": step.counter,
        }
        for k, b in enumerate(batches)
    ]
    histories = fit_stacked(
        step,
        StackedBatches(batches),
        cfg.train.epochs,
        label=f"vae/{kind}",
        log_every=cfg.train.log_every,
        evaluate=validate,
        checkpointing=[
            Checkpointing(run, f"vae-{kind}", state, generator=g)
            for run, state, g in zip(runs, states, generators)
        ],
        copies=[f"seed {ctx.seed}" for ctx in ctxs],
        shown=("recon", "kl", "beta", "val_loss"),
    )
    return [(model.lone(k).eval(), history) for k, history in enumerate(histories)]


def encode(model: ConvVAE, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    with evaluating(model):
        pairs = [model.encode(x) for x in images.split(batch_size)]
    return torch.cat([p[0] for p in pairs]).cpu(), torch.cat([p[1] for p in pairs]).cpu()


def posterior_metrics(model: ConvVAE, ctx: VaeContext) -> dict:
    cfg, data = ctx.cfg, ctx.data
    mu, logvar = encode(model, data.test)
    n_active, activity = posterior.active_units(mu, cfg.eval.active_threshold)
    kl_dims = posterior.kl_per_dimension(mu, logvar)
    generator = ctx.seeds.generator("estimates")
    mi = [
        posterior.mutual_information(m, lv, generator)
        for m, lv in zip(mu.split(cfg.eval.mi_batch), logvar.split(cfg.eval.mi_batch))
        if len(m) > 1
    ]
    (test,) = evaluate_losses(model, data.test, 1.0, [ctx.seeds.generator("evaluation", ctx.device)])
    return {
        "test_images": len(mu),
        "collapse_ratio": posterior.collapse_ratio(
            logvar, cfg.eval.collapse_tolerance, cfg.eval.collapse_strict
        ),
        "active_units": n_active,
        "mean_abs_mu": mu.abs().mean().item(),
        "mean_mu": mu.mean().item(),  # signed, as the original printed it ("Mean μ")
        "mean_sigma": (0.5 * logvar).exp().mean().item(),
        # the original's "± std": over the 20 latent dimensions, of each dimension's mean (ddof 0)
        "mean_logvar": logvar.mean().item(),
        "mean_mu_spread_over_dims": mu.mean(0).std(correction=0).item(),
        "mean_logvar_spread_over_dims": logvar.mean(0).std(correction=0).item(),
        "mean_sigma_spread_over_dims": (0.5 * logvar).exp().mean(0).std(correction=0).item(),
        "mutual_information": float(np.mean(mi)),
        "mutual_information_bound": float(np.log(min(cfg.eval.mi_batch, len(mu)))),
        "kl_per_dim": [round(v, 5) for v in kl_dims.tolist()],
        "activity_per_dim": [round(v, 5) for v in activity.tolist()],
        "test_recon": test["recon"],
        "test_kl": test["kl"],
        "test_negative_elbo": test["loss"],
    }


def training_metrics(history: History) -> dict:
    last = history.epochs[-1]
    return {k: last[k] for k in ("recon", "kl", "loss", "val_recon", "val_kl", "val_loss", "beta")} | {
        "epochs": last["epoch"]
    }


CURVES = [
    plots.Panel(
        "reconstruction (MSE, sum over pixels)",
        [plots.Series("recon", "train", "epochs"), plots.Series("val_recon", "validation", "epochs")],
        "per image",
    ),
    plots.Panel(
        "KL(q(z|x) ‖ N(0, I))",
        [plots.Series("kl", "train", "epochs"), plots.Series("val_kl", "validation", "epochs")],
        "nats per image",
        secondary=[plots.Series("beta", "β", "steps")],
        secondary_label="β",
    ),
    plots.Panel(
        "total loss (recon + β·KL)",
        [plots.Series("loss", "train", "epochs"), plots.Series("val_loss", "validation", "epochs")],
        "per image",
        secondary=[plots.Series("beta", "β", "steps")],
        secondary_label="β",
    ),
]


@torch.no_grad()
def sample_figures(models: dict[str, ConvVAE], ctx: VaeContext, prefix: str) -> tuple[dict, dict]:
    """Each model's reconstruction error on the images shown, and the figures showing them."""
    cfg, device, data = ctx.cfg, ctx.device, ctx.data
    n = cfg.eval.n_show
    originals = data.test[:n]
    gen = ctx.seeds.generator("samples")
    normal_z = torch.randn(2 * n, LATENT_DIM, generator=gen).to(device)
    exponentials = torch.empty(2, 2 * n, LATENT_DIM).exponential_(generator=gen)
    laplace_z = (cfg.eval.laplace_scale * (exponentials[0] - exponentials[1])).to(
        device
    )  # E1 − E2 ~ Laplace(0, 1)
    recon_rows, sample_rows, metrics, figures = {}, {}, {}, {}
    for name, model in models.items():
        mu, _ = model.encode(originals)
        reconstructions = model.decode(mu)
        recon_rows[name] = {"originals": originals, "reconstructions (z = mu)": reconstructions}
        sample_rows[name] = {
            "z ~ N(0, I)": model.decode(normal_z),
            f"z ~ Laplace(0, {cfg.eval.laplace_scale:g})": model.decode(laplace_z),
        }
        metrics[name] = {
            "shown_recon_mse_per_image": F.mse_loss(reconstructions, originals, reduction="sum").item() / n
        }
    figures[f"{prefix}_reconstructions"] = plots.image_grids(
        recon_rows,
        "VAE: test images and their reconstructions",
        nrow=n,
    )
    figures[f"{prefix}_generations"] = plots.image_grids(
        sample_rows,
        "VAE: generations from the prior and from a Laplace",
        nrow=n,
    )
    return metrics, figures


def latent_and_kl_figures(
    models: dict[str, ConvVAE],
    posteriors: dict[str, dict],
    ctx: VaeContext,
    prefix: str,
) -> dict[str, bytes]:
    cfg, data = ctx.cfg, ctx.data
    k = min(cfg.eval.latent_map_images, len(data.test))
    labels = data.test_labels[:k].numpy()
    maps, figures = {}, {}
    for name, model in models.items():
        mu, _ = encode(model, data.test[:k])
        maps[f"{name} ({posteriors[name]['active_units']} active units)"] = (
            project_2d(mu.numpy(), cfg.eval.latent_map, ctx.seeds.value("projection")),
            labels,
        )
    figures[f"{prefix}_latent_map"] = plots.scatter_maps(
        maps,
        CLASSES,
        f"VAE: {cfg.eval.latent_map} of E[z|x] for {k} test images",
    )
    figures[f"{prefix}_kl_per_dim"] = plots.grouped_bars(
        {name: posteriors[name]["kl_per_dim"] for name in models},
        [str(d) for d in range(LATENT_DIM)],
        "VAE: KL per latent dimension (test images)",
        "nats per image",
    )
    encoded = {name: encode(model, data.test) for name, model in models.items()}
    figures[f"{prefix}_posterior_stats"] = plots.posterior_stats(
        {name: (mu.numpy(), (0.5 * logvar).exp().numpy()) for name, (mu, logvar) in encoded.items()},
        f"VAE posterior on {len(data.test)} test images: per dimension and overall (the original's figure)",
    )
    return figures


Trained = dict[str, tuple[ConvVAE, History]]  # β schedule → one seed's model and its history


def training(part: str, ctx: VaeContext, trained: Trained, metrics: dict, figures: dict) -> None:
    figures[f"{part}_curves"] = plots.training_curves(
        {k: {"steps": h.steps, "epochs": h.epochs} for k, (_, h) in trained.items()},
        CURVES,
        "VAE training: per-image losses, β dashed",
    )
    for kind, (_, history) in trained.items():
        metrics.setdefault(kind, {}).update(training_metrics(history))


def samples(part: str, ctx: VaeContext, trained: Trained, metrics: dict, figures: dict) -> None:
    models = {kind: model for kind, (model, _) in trained.items()}
    shown, drawn = sample_figures(models, ctx, part)
    for kind, values in shown.items():
        metrics.setdefault(kind, {}).update(values)
    figures.update(drawn)


def posterior_numbers(part: str, ctx: VaeContext, trained: Trained, metrics: dict, figures: dict) -> None:
    for kind, (model, _) in trained.items():
        metrics.setdefault(kind, {}).update(posterior_metrics(model, ctx))


def posterior_figures(part: str, ctx: VaeContext, trained: Trained, metrics: dict, figures: dict) -> None:
    """After posterior_numbers: the maps are labelled with their active units."""
    models = {kind: model for kind, (model, _) in trained.items()}
    figures.update(latent_and_kl_figures(models, {kind: metrics[kind] for kind in models}, ctx, part))


def trained_and_measured(
    part: str, ctxs: list[VaeContext], runs: list[Run], kinds: list[str], measures: tuple
) -> list[VaePartResult]:
    """Each β schedule of `kinds` trained under every seed of `ctxs` together; then each seed's
    models measured, in order, by `measures` (into its numbers and figures), with their curves."""
    trained = {kind: train_together(kind, ctxs, runs) for kind in kinds}
    results = []
    for k, ctx in enumerate(ctxs):
        cfg = ctx.cfg
        mine = {kind: seeds[k] for kind, seeds in trained.items()}
        metrics: dict = {
            "data": ctx.data.description,
            "beta_schedule": cfg.train.beta_schedule.model_dump(),
            "training_precision": resolve_precision(ctx.device, cfg.train.precision),
        }
        figures: dict[str, bytes] = {}
        for measure in measures:
            measure(part, ctx, mine, metrics, figures)
        curves = {f"train-{kind}": history.epochs for kind, (_, history) in mine.items()}
        curves |= {f"train-{kind}_steps": history.steps for kind, (_, history) in mine.items()}
        results.append(VaePartResult.model_validate(metrics).with_outputs(figures, curves))
    return results


def configured(ctxs: list[VaeContext]) -> list[str]:
    return [ctxs[0].cfg.train.beta_schedule.kind]


def run_train(part: str, ctxs: list[VaeContext], runs: list[Run]) -> list[VaePartResult]:
    return trained_and_measured(part, ctxs, runs, configured(ctxs), (training, posterior_numbers))


def run_samples(part: str, ctxs: list[VaeContext], runs: list[Run]) -> list[VaePartResult]:
    return trained_and_measured(part, ctxs, runs, configured(ctxs), (samples,))


def run_collapse(part: str, ctxs: list[VaeContext], runs: list[Run]) -> list[VaePartResult]:
    return trained_and_measured(part, ctxs, runs, configured(ctxs), (posterior_numbers, posterior_figures))


def run_anneal(part: str, ctxs: list[VaeContext], runs: list[Run]) -> list[VaePartResult]:
    """Every schedule of anneal_schedules, compared."""
    measures = (training, samples, posterior_numbers, posterior_figures)
    return trained_and_measured(part, ctxs, runs, list(ctxs[0].cfg.anneal_schedules), measures)
