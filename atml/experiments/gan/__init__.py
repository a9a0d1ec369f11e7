"""Experiment 3: an MLP GAN on MNIST and its training pathologies.

Parts: `baseline`, and three pathologies each beside its mitigations: `vanishing` (D overpowers G
under the saturating loss), `mode-collapse` (G overpowers D), `d-overfit` (a large D on few images).
A part's runs come from `parts.<part>.<run>` in the config, each applied on top of the base
settings; the runs after a `pathology` apply on top of it, so each differs from it only in its fix.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from atml.config import ClassifierConfig, Seed, Strict, deep_merge, validate
from atml.data.mnist import ImageDataConfig
from atml.errors import UserError
from atml.experiments import Experiment, Figure, Headline, Part, Reading
from atml.needs import DatasetSplit, Need
from atml.results import KeyedResult, Result

PARTS = ("baseline", "vanishing", "mode-collapse", "d-overfit")  # each one part (gan_part, below)


READINGS = (
    Reading(
        "Baseline: with the assignment's settings G's fresh samples cover "
        "{baseline/assignment/modes_covered} of 10 digit classes by the shipped judge (Fréchet "
        "distance {baseline/assignment/frechet_distance}; real images score "
        "{baseline/real_images_reference/frechet_distance})."
    ),
    Reading(
        "The tuned baseline covers {baseline/tuned/modes_covered} of 10 (FD "
        "{baseline/tuned/frechet_distance})."
    ),
    Reading(
        "Vanishing gradients: under the saturating loss D(G(z)) ends at "
        "{vanishing/pathology/final_d_fake} and G's median gradient norm is "
        "{vanishing/pathology/g_grad_norm_median}; the mitigation's is "
        "{vanishing/mitigation/g_grad_norm_median}, its samples cover "
        "{vanishing/mitigation/modes_covered} of 10 classes (FD {vanishing/mitigation/frechet_distance})."
    ),
    Reading(
        "Mode collapse: the pathology's samples cover {mode-collapse/pathology/modes_covered} of 10 "
        "classes with pixel variance {mode-collapse/pathology/pixel_variance}; the mitigation's cover "
        "{mode-collapse/mitigation/modes_covered} with {mode-collapse/mitigation/pixel_variance} "
        "(real images: {mode-collapse/real_images_reference/pixel_variance})."
    ),
    Reading(
        "D overfitting: D tells its training images from held-out ones with ROC AUC "
        "{d-overfit/pathology/d_membership_auc} (0.5: it cannot), and the share of held-out reals it "
        "gives D > 0.5 is {d-overfit/pathology/d_accuracy_heldout}; the mitigation's AUC is "
        "{d-overfit/mitigation/d_membership_auc} and its G covers {d-overfit/mitigation/modes_covered} "
        "of 10 classes."
    ),
)

HEADLINES = (
    Headline(
        "baseline: final D(x)", ("baseline", "assignment", "final_d_real"), "— (notebook 0.6022, 20 epochs)"
    ),
    Headline("baseline: final D(G(z))", ("baseline", "assignment", "final_d_fake"), "— (notebook 0.2991)"),
    Headline(
        "vanishing, pathology: final D(x)",
        ("vanishing", "pathology", "final_d_real"),
        "≈ 1.0",
    ),
    Headline(
        "vanishing, pathology: final D(G(z))",
        ("vanishing", "pathology", "final_d_fake"),
        "≈ 1.0",
    ),
    Headline(
        "vanishing, pathology: final G loss (an epoch's mean)",
        ("vanishing", "pathology", "final_g_loss"),
        "-100.0 ('stalled around', BCELoss's log clamp)",
    ),
    Headline(
        "vanishing, pathology: median ‖∇G‖",
        ("vanishing", "pathology", "g_grad_norm_median"),
        "— (not measured)",
    ),
    Headline(
        "vanishing, pathology: share of the run with D(G(z)) < 0.05",
        ("vanishing", "pathology", "share_of_run_d_fake_below_0.05"),
        "— (not measured)",
    ),
    Headline("vanishing, mitigation: median ‖∇G‖", ("vanishing", "mitigation", "g_grad_norm_median"), "—"),
    Headline(
        "mode-collapse, pathology: pixel variance",
        ("mode-collapse", "pathology", "pixel_variance"),
        "0.000000 (50 samples)",
    ),
    Headline(
        "mode-collapse, mitigation: pixel variance",
        ("mode-collapse", "mitigation", "pixel_variance"),
        "0.260795",
    ),
    Headline(
        "mode-collapse, pathology: mean pairwise distance",
        ("mode-collapse", "pathology", "mean_pairwise_distance"),
        "0.0000",
    ),
    Headline(
        "mode-collapse, mitigation: mean pairwise distance",
        ("mode-collapse", "mitigation", "mean_pairwise_distance"),
        "20.1521",
    ),
    Headline(
        "mode-collapse, pathology: digit classes produced",
        ("mode-collapse", "pathology", "modes_covered"),
        "— (not measured)",
    ),
    Headline("d-overfit, pathology: final D(x)", ("d-overfit", "pathology", "final_d_real"), "0.9453"),
    Headline(
        "d-overfit, pathology: mean D(held-out real)", ("d-overfit", "pathology", "d_real_heldout"), "0.985"
    ),
    Headline(
        "d-overfit, mitigation: mean D(held-out real)", ("d-overfit", "mitigation", "d_real_heldout"), "0.932"
    ),
    Headline(
        "d-overfit, pathology: held-out reals with D > 0.5",
        ("d-overfit", "pathology", "d_accuracy_heldout"),
        "1.000",
    ),
    Headline(
        "d-overfit, mitigation: held-out reals with D > 0.5",
        ("d-overfit", "mitigation", "d_accuracy_heldout"),
        "— (notebook 1.000)",
    ),
    Headline(
        "d-overfit, pathology: membership AUC",
        ("d-overfit", "pathology", "d_membership_auc_late_mean"),
        "— (not measured)",
    ),
)


Width = Annotated[int, Field(ge=1, le=16384, description="units in a hidden layer")]


Beta = Annotated[float, Field(ge=0, lt=1, description="Adam's running-average coefficient")]


class GanModelConfig(Strict):
    latent_dim: int = Field(100, ge=1, le=4096)
    g_hidden: list[Width] = [256, 512]
    d_hidden: list[Width] = [256, 256]
    d_dropout: float = Field(0.0, ge=0, lt=1)
    init_std: float = Field(0.02, gt=0, le=10)


class GanTrainConfig(Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    drop_last: bool = Field(True, description="drop an epoch's last, smaller batch")
    lr_g: float = Field(2e-4, gt=0, le=10)
    lr_d: float = Field(2e-4, gt=0, le=10)
    betas: tuple[Beta, Beta] = (0.5, 0.999)
    loss: Literal["logits", "sigmoid-bce"] = Field(
        "logits",
        description="logits: BCE on D's logit, D loss = mean of the real and fake terms; sigmoid-bce: "
        "the original's sigmoid + BCELoss (log clamped at −100), D loss = real term + fake term",
    )
    g_loss: Literal["non_saturating", "saturating"] = "non_saturating"
    real_label: float = Field(
        1.0, gt=0, le=1, description="target for real images; 0.9 is one-sided smoothing"
    )
    smooth_g_target: bool = Field(False, description="G's non-saturating target is real_label, not 1")
    d_steps: int = Field(1, ge=1, description="D updates per iteration")
    d_steps_reuse_real: bool = Field(
        False, description="the D steps of an iteration share one real batch (else each has its own)"
    )
    g_steps: int = Field(1, ge=1, description="G updates per iteration")
    g_reuses_d_noise: bool = Field(
        True, description="the first G update scores the last D step's fakes (same z; else fresh z)"
    )
    steps_per_epoch: int | None = Field(
        None, ge=1, description="iterations per epoch (null: one pass over the data)"
    )
    grid_every: int = Field(5, ge=1)
    log_every: int = Field(10, ge=1)

    @property
    def real_per_iteration(self) -> int:
        return self.batch_size * (1 if self.d_steps_reuse_real else self.d_steps)


class GanEvalConfig(Strict):
    n_samples: int = Field(2000, ge=2, le=100_000)
    diversity_samples: int | None = Field(
        None,
        ge=2,
        description="pixel variance and pairwise distance on the first N samples only (null: all "
        "n_samples); pairwise distance on at most pairwise_max of them",
    )
    min_class_share: float = Field(0.01, gt=0, lt=1)
    pairwise_max: int = Field(1000, ge=2)
    d_eval_images: int = Field(
        1000, ge=1, description="training and held-out images D is scored on each epoch"
    )
    classifier: ClassifierConfig = ClassifierConfig()

    @model_validator(mode="after")
    def _diversity_within_samples(self) -> GanEvalConfig:
        if self.diversity_samples is not None and self.diversity_samples > self.n_samples:
            raise ValueError(
                f"diversity_samples ({self.diversity_samples}) exceeds n_samples ({self.n_samples})"
            )
        return self


class GanRunSettings(Strict):
    data: ImageDataConfig
    model: GanModelConfig
    train: GanTrainConfig


class Config(Strict):
    seed: Seed = 0
    data: ImageDataConfig = ImageDataConfig()
    model: GanModelConfig = GanModelConfig()
    train: GanTrainConfig = GanTrainConfig()
    eval: GanEvalConfig = GanEvalConfig()
    parts: dict[str, dict[str, dict | None]] = {}  # a run set to null is removed

    @model_validator(mode="after")
    def _runs_resolve(self) -> Config:
        _ = self.runs  # raises a UserError naming the bad key
        return self

    @property
    def runs(self) -> dict[str, dict[str, GanRunSettings]]:
        """Each part's runs as complete settings, in config order."""
        unknown = set(self.parts) - set(PARTS)
        if unknown:
            raise UserError(
                f"unknown part '{sorted(unknown)[0]}' under 'parts'; accepted: {', '.join(PARTS)}"
            )
        base = {
            "data": self.data.model_dump(),
            "model": self.model.model_dump(),
            "train": self.train.model_dump(),
        }
        resolved: dict[str, dict[str, GanRunSettings]] = {}
        for part in PARTS:
            runs = self.parts.get(part) or {part: {}}
            resolved[part] = {}
            inherited = base
            for name, override in runs.items():
                if override is None:  # a run set to null is removed (a preset dropping a default's run)
                    continue
                if not isinstance(override, dict):
                    raise UserError(f"parts.{part}.{name} must be a mapping of overrides, got {override!r}")
                merged = deep_merge(inherited, override)
                resolved[part][name] = validate(merged, GanRunSettings, prefix=f"parts.{part}.{name}.")
                if name == "pathology":
                    inherited = merged
            if not resolved[part]:
                raise UserError(f"parts.{part}: every run is null; keep at least one")
        return resolved


class SampleStats(Result):
    """Diversity, mode coverage and Fréchet distance of a set of images."""

    pixel_variance: float
    mean_pairwise_distance: float
    modes_covered: int
    kl_from_uniform: float
    frechet_distance: float
    class_counts: list[int]


class GanRunResult(SampleStats):
    """One training run: D's outputs, G's gradient, memorisation, and its samples."""

    final_d_real: float
    final_d_fake: float
    final_d_loss: float
    final_g_loss: float
    share_d_fake_below_005: float = Field(alias="share_of_run_d_fake_below_0.05")
    g_grad_norm_median: float
    g_grad_norm_final_epoch: float
    d_real_train: float
    d_real_heldout: float
    d_accuracy_heldout: float = Field(description="share of held-out real images with D(x) > 0.5")
    d_real_train_minus_heldout: float
    d_membership_auc: float
    d_membership_auc_late_mean: float


class GanPartResult(KeyedResult):
    """A part: its data, the sample judge, real images as reference, and one key per run."""

    data: str
    sample_classifier: str = "trained here"  # which judge scored the samples (runs before it was recorded)
    sample_classifier_sha256: str | None = None  # the shipped judge's file
    sample_classifier_heldout_accuracy: float
    real_images_reference: SampleStats
    __pydantic_extra__: dict[str, GanRunResult] = Field(init=False)


def run_rows(result: GanPartResult) -> list[dict]:
    """A row per training run of the part."""
    return [
        {
            "run": name,
            "D(x)": m.final_d_real,
            "D(G(z))": m.final_d_fake,
            "med |∇G|": m.g_grad_norm_median,
            "modes": m.modes_covered,
            "KL": m.kl_from_uniform,
            "FD": m.frechet_distance,
            "pix var": m.pixel_variance,
            "pair dist": m.mean_pairwise_distance,
            "D(x) train-heldout": m.d_real_train_minus_heldout,
            "D acc held-out": m.d_accuracy_heldout,
            "member AUC (last 25%)": m.d_membership_auc_late_mean,
        }
        for name, m in result.model_extra.items()
    ]


def base_data(cfg: Config) -> list[Need]:
    return [DatasetSplit("mnist", cfg.data.train_split, cfg.data.root)]


def gan_part(name: str) -> Part:
    """A part is its runs (`parts.NAME` in the config), trained together with their seeds stacked
    by one runner (parts.run_part) and drawn alike; each run may read its own data."""

    def runs_data(cfg: Config) -> list[Need]:
        return [DatasetSplit("mnist", s.data.train_split, s.data.root) for s in cfg.runs[name].values()]

    figures = (
        Figure(
            f"{name}_curves", "per epoch, each run: D and G losses, D(x) and D(G(z)), G's gradient norm", True
        ),
        Figure(f"{name}_final_grid", "each run's final samples from fixed noise (modes covered, FD)", True),
        Figure(f"{name}_grids_over_epochs", "samples from the same fixed noise as training went on"),
        Figure(
            f"{name}_fresh_samples", "each run's samples from fresh z: 25 of those its sample numbers judge"
        ),
        Figure(
            f"{name}_digit_strip", "each run's single digits in a row of 10 (fresh z; the original's strip)"
        ),
        Figure(
            f"{name}_class_histogram", "classes of the generated samples (the judge's), beside real images'"
        ),
    )
    return Part(name, GanPartResult, "run_part", run_rows, figures, "prepare_runs", runs_data)


EXPERIMENT = Experiment(
    name="gan",
    title=__doc__.strip().splitlines()[0],
    parts=tuple(gan_part(name) for name in PARTS),
    config=Config,
    code=f"{__name__}.parts",
    headlines=HEADLINES,
    readings=READINGS,
    non_result_keys=("*.grid_every", "*.log_every"),
    stacks_seeds=True,
    needs_always=base_data,
)
