"""Experiment 4: posterior collapse in the assignment's convolutional VAE on FashionMNIST.

Parts: `train` (the configured β schedule), `samples` (reconstructions, generations from N(0, I)
and a Laplace prior), `collapse` (posterior statistics of that model), `anneal` (every β schedule
compared). A model trained for one schedule is checkpointed in the run folder and shared by the
parts that need it, so `atml run vae` trains each schedule once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from atml.config import FixedSeeds, Precision, Seed, Strict
from atml.data.mnist import ImageDataConfig
from atml.experiments import Experiment, Figure, Flag, Headline, Part, Reading
from atml.needs import DatasetSplit, Need
from atml.results import KeyedResult, Result
from atml.schedules import BetaSchedule, Schedule

FLAGS = (
    Flag(
        "--beta-schedule",
        "train.beta_schedule.kind",
        "constant | linear | cyclical | delayed-linear | decreasing-cosine: the β schedule of "
        "train/samples/collapse",
    ),
)


READINGS = (
    Reading(
        "Constant β: {*/constant/active_units} of 20 latent dimensions are active, the collapse ratio "
        "is {*/constant/collapse_ratio}, the test −ELBO {*/constant/test_negative_elbo} and I(x; z) "
        "{*/constant/mutual_information} nats."
    ),
    Reading(
        "Annealed β (linear, or the preset's delayed-linear): collapse ratio "
        "{anneal/linear|delayed-linear/collapse_ratio}, {anneal/linear|delayed-linear/active_units} "
        "active dimensions, test −ELBO {anneal/linear|delayed-linear/test_negative_elbo}; cyclical "
        "(or decreasing-cosine): {anneal/cyclical|decreasing-cosine/collapse_ratio}, "
        "{anneal/cyclical|decreasing-cosine/active_units} active, test −ELBO "
        "{anneal/cyclical|decreasing-cosine/test_negative_elbo}. Read the differences against the "
        "seeds' spread in the summary table."
    ),
)

HEADLINES = (
    Headline(
        "constant β: train reconstruction (per image)",
        ("*", "constant", "recon"),
        "14.1 (32.0 → 14.1, 100 epochs)",
    ),
    Headline("constant β: train KL (per image)", ("*", "constant", "kl"), "8.1 (5.8 → 8.1)"),
    Headline("constant β: collapse ratio", ("*", "constant", "collapse_ratio"), "0.705"),
    Headline(
        "β-annealing (atml: linear; --preset original: delayed-linear): collapse ratio",
        ("*", "linear|delayed-linear", "collapse_ratio"),
        "0.505 (delayed-linear)",
    ),
    Headline(
        "cyclical β (atml: cyclical; --preset original: decreasing-cosine): collapse ratio",
        ("*", "cyclical|decreasing-cosine", "collapse_ratio"),
        "— ('improvement similar'; its notebook computed none)",
    ),
    Headline("constant β: active units (of 20)", ("*", "constant", "active_units"), "— (not measured)"),
)


class VaeTrainConfig(Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0, le=10)
    drop_last: bool = Field(
        True, description="drop an epoch's last partial batch (atml's) | keep it (the original's: 469 steps)"
    )
    loss: Literal["image-mean", "batch-sum"] = Field(
        "image-mean",
        description="what each Adam step descends: the per-image mean of recon + β·KL (atml's) | its sum "
        "over the batch (the original's); logged values are per image either way",
    )
    log_every: int = Field(50, ge=1)
    precision: Precision = Field("auto", description="training forward passes; evaluation is always fp32")
    beta_schedule: BetaSchedule = BetaSchedule()


class VaeEvalConfig(Strict):
    validation: Literal["heldout", "test"] = Field(
        "heldout",
        description="heldout: data.heldout training images kept out of training (atml's); test: train on "
        "every training image and validate on the test split (the original's)",
    )
    test_images: int = Field(10000, ge=2, description="test images the posterior statistics are computed on")
    mi_batch: int = Field(1000, ge=2, description="images per batch of the aggregate-posterior estimate")
    active_threshold: float = Field(0.01, gt=0)
    collapse_tolerance: float = Field(0.1, gt=0)
    collapse_strict: bool = Field(
        False, description="collapsed: |σ² − 1| ≤ collapse_tolerance | true: < (the original's count)"
    )
    latent_map: Literal["pca", "tsne"] = "tsne"
    latent_map_images: int = Field(2000, ge=10)
    laplace_scale: float = Field(1.0, gt=0)
    n_show: int = Field(10, ge=1, le=100, description="images per row in reconstruction and sample figures")


class Config(Strict):
    seed: Seed = 0
    fixed_seeds: FixedSeeds = FixedSeeds()
    data: ImageDataConfig = ImageDataConfig(heldout=5000)
    train: VaeTrainConfig = VaeTrainConfig()
    eval: VaeEvalConfig = VaeEvalConfig()
    anneal_schedules: list[Schedule] = Field(["constant", "linear", "cyclical"], min_length=1)


class ScheduleResult(Result):
    """One β schedule's model; each part fills the keys it measures."""

    recon: float | None = None
    kl: float | None = None
    loss: float | None = None
    val_recon: float | None = None
    val_kl: float | None = None
    val_loss: float | None = None
    beta: float | None = None
    epochs: int | None = None
    shown_recon_mse_per_image: float | None = None
    test_images: int | None = None
    collapse_ratio: float | None = None
    active_units: int | None = None
    mean_abs_mu: float | None = None
    mean_mu: float | None = None
    mean_sigma: float | None = None
    mean_logvar: float | None = None
    mean_mu_spread_over_dims: float | None = None
    mean_logvar_spread_over_dims: float | None = None
    mean_sigma_spread_over_dims: float | None = None
    mutual_information: float | None = None
    mutual_information_bound: float | None = None
    kl_per_dim: list[float] | None = None
    activity_per_dim: list[float] | None = None
    test_recon: float | None = None
    test_kl: float | None = None
    test_negative_elbo: float | None = None


class VaePartResult(KeyedResult):
    """A part: its data and settings, and one key per β schedule trained."""

    data: str
    beta_schedule: dict[str, Any]
    training_precision: str
    __pydantic_extra__: dict[str, ScheduleResult] = Field(init=False)


SUMMARY_COLUMNS = (
    ("recon", "train recon"),
    ("kl", "train KL"),
    ("test_negative_elbo", "test −ELBO"),
    ("collapse_ratio", "collapse ratio"),
    ("active_units", "active units"),
    ("mutual_information", "MI"),
    ("mean_abs_mu", "mean |mu|"),
    ("mean_mu", "mean mu"),
    ("mean_sigma", "mean σ"),
    ("mean_logvar", "mean log σ²"),
    ("shown_recon_mse_per_image", "shown recon"),
)


def schedule_rows(result: VaePartResult) -> list[dict]:
    """A row per β schedule the part trained, with the numbers the part measured."""
    return [
        {"β schedule": kind}
        | {label: getattr(m, key) for key, label in SUMMARY_COLUMNS if key in m.model_fields_set}
        for kind, m in result.model_extra.items()
    ]


def figure_of_training(part: str) -> Figure:
    return Figure(
        f"{part}_curves",
        "training curves per epoch: per-image reconstruction, KL and total loss (train and validation), "
        "β dashed",
        True,
    )


def figures_of_samples(part: str) -> tuple[Figure, ...]:
    return (
        Figure(f"{part}_reconstructions", "test images (top row) and their reconstructions from z = μ", True),
        Figure(f"{part}_generations", "decoded samples: z drawn from N(0, I) and from a Laplace", True),
    )


def figures_of_posterior(part: str) -> tuple[Figure, ...]:
    return (
        Figure(f"{part}_latent_map", "2-D map of E[z|x] for test images, coloured by class"),
        Figure(
            f"{part}_kl_per_dim", "KL per latent dimension on the test images: collapsed ones are ~0", True
        ),
        Figure(f"{part}_posterior_stats", "posterior μ and σ per latent dimension, and their spread"),
    )


def fashion_mnist(cfg: Config) -> list[Need]:
    d = cfg.data
    return [DatasetSplit("fashion-mnist", split, d.root) for split in (d.train_split, "test")]


EXPERIMENT = Experiment(
    name="vae",
    title=__doc__.strip().splitlines()[0],
    parts=(
        Part("train", VaePartResult, "run_train", schedule_rows, (figure_of_training("train"),)),
        Part(
            "samples",
            VaePartResult,
            "run_samples",
            schedule_rows,
            figures_of_samples("samples"),
            reuses=("vae-*",),  # the VAE `train` trained under the same schedule
        ),
        Part(
            "collapse",
            VaePartResult,
            "run_collapse",
            schedule_rows,
            figures_of_posterior("collapse"),
            reuses=("vae-*",),
        ),
        Part(
            "anneal",
            VaePartResult,
            "run_anneal",
            schedule_rows,
            (figure_of_training("anneal"), *figures_of_samples("anneal"), *figures_of_posterior("anneal")),
            reuses=("vae-*",),
        ),
    ),
    config=Config,
    code=f"{__name__}.parts",
    headlines=HEADLINES,
    readings=READINGS,
    flags=FLAGS,
    non_result_keys=("train.log_every", "eval.n_show", "eval.latent_map", "eval.latent_map_images"),
    stacks_seeds=True,
    needs_always=fashion_mnist,
)
