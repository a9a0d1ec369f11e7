"""Experiment 2: a pretrained Vision Transformer — predictions, attention, masking, probes.

Parts: `predict` (top-k ImageNet classes of the photos), `attention` (the class token's
last-layer attention over the photo, per head, and rolled out over all layers; per-head entropy
and spatial spread), `masking` (random vs centre patches hidden at rising ratios over a labelled
set: agreement with the unmasked prediction, accuracy and confidence), `probe` (logistic
regression on class-token vs mean-patch features of every layer, scored on held-out images).
Any timm ViT by name; attention is read from timm's blocks without editing timm.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from atml.config import DrawsSection, FixedSeeds, FrozenModelSection, Seed, Strict
from atml.data.images import NAMES
from atml.experiments import Experiment, Figure, Headline, Part, Reading
from atml.models import model_names
from atml.models.weight_files import timm_rows
from atml.needs import DatasetSplit, Need, Weights
from atml.results import Result, weights_mark
from atml.tables import number

# the masking choices atml.analysis.masking implements
SCHEMES = ("random", "centre")
FILLS = ("drop", "zero", "noise")
CENTRES = ("nearest", "square")
COUNTS = ("round", "floor")


READINGS = (
    Reading(
        "A linear probe on the final class token scores {probe/final/cls/accuracy} held-out accuracy "
        "(95 % interval {probe/final/cls/ci_low}–{probe/final/cls/ci_high}), on the mean of the patch "
        "tokens {probe/final/mean/accuracy}; chance is {probe/chance}."
    ),
)

HEADLINES = (
    Headline(
        "probe: class token, held-out accuracy",
        ("probe", "final", "cls", "accuracy"),
        "0.9630 (88 images, 27 tested)",
    ),
    Headline(
        "probe: mean of patch tokens, held-out accuracy", ("probe", "final", "mean", "accuracy"), "0.9259"
    ),
    Headline(
        "masking: random 50%, agreement with unmasked top-1",
        ("masking", "results", "random", "0.50", "agreement"),
        "— (one image)",
        skipped_at=("masking", "skipped", "results"),
    ),
    Headline(
        "masking: centre 50%, agreement with unmasked top-1",
        ("masking", "results", "centre", "0.50", "agreement"),
        "—",
        skipped_at=("masking", "skipped", "results"),
    ),
)


class VitDataConfig(DrawsSection):
    images: list[str] = Field(
        [],
        description="photos (files or folders) for predict and attention; "
        "empty: scikit-learn's two sample photos",
    )
    dataset: Literal[NAMES] = "cifar10"  # type: ignore[valid-type]
    train_images: int | None = Field(
        5000, ge=2, description="a fixed random draw of the training split the probes fit on (null: all)"
    )
    test_images: int | None = Field(
        2000, ge=2, description="a fixed random draw of the test split they are scored on (null: all)"
    )


class VitModelConfig(FrozenModelSection):
    name: str = Field(
        "vit_small_patch16_224.augreg_in21k_ft_in1k",
        description="any timm ViT (the original: vit_base_patch16_224)",
    )
    weights: str = Field(
        "pretrained", description="pretrained (the name's tag) | another tag | a local file | none"
    )
    img_size: int | None = Field(
        None, ge=16, description="input side; null: the weights' own (position embeddings are resampled)"
    )
    batch_size: int = Field(64, ge=1, description="images per no-grad forward")
    crop_pct: float | None = Field(
        None,
        gt=0,
        le=1,
        description="resize to size / crop_pct, then the centre crop (null: the weights' own; 1: resize "
        "straight to the input size, as the original's image processor did)",
    )
    interpolation: Literal["model", "bilinear", "bicubic"] = Field(
        "model", description="the resize: the weights' own or another"
    )

    _known_name = field_validator("name")(model_names.checked("timm"))


class PredictConfig(Strict):
    top_k: int = Field(5, ge=1)


class AttentionConfig(Strict):
    layer: int = Field(-1, description="the block whose attention is mapped (negative counts from the end)")
    alpha: float = Field(0.5, gt=0, le=1, description="opacity of the red overlay at the map's maximum")
    rollout_residual: float = Field(
        0.5, ge=0, le=1, description="weight of the identity (residual path) in each rollout layer"
    )


class MaskingConfig(Strict):
    source: Literal["dataset", "photos"] = Field(
        "dataset",
        description="dataset: `images` test images of data.dataset, scored against their labels | "
        "photos: data.images, each masked once per scheme and ratio, its top-1 shown (the original)",
    )
    ratios: list[float] = Field([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], min_length=1)
    schemes: list[Literal[SCHEMES]] = Field(list(SCHEMES), min_length=1)  # type: ignore[valid-type]
    centre: Literal[CENTRES] = Field(  # type: ignore[valid-type]
        "nearest",
        description="nearest: the ratio's share of patches nearest the centre | square: a centred square "
        "of side 2·(s // 2) + 1, s = int(sqrt(ratio · patches)) (the original: 5×5, 7×7, 9×9 of 14×14)",
    )
    count: Literal[COUNTS] = Field(  # type: ignore[valid-type]
        "round", description="random masks hide round(ratio · patches), or floor (the original's int())"
    )
    fill: Literal[FILLS] = Field(
        "drop",
        description="drop: masked patch tokens leave the sequence; zero: their pixels become the "  # type: ignore[valid-type]
        "normalisation mean; noise: a standard normal draw",
    )
    images: int = Field(500, ge=1, description="test images of data.dataset masked")
    examples: int = Field(2, ge=1, description="images shown masked in the figure")


class ProbeConfig(Strict):
    layers: list[int] | None = Field(
        None,
        description="blocks probed (null: every block; []: none); the final normed output is always probed",
    )
    split: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="null: fit on the training draw, score on the test draw | a share: one draw of the "
        "test split (data.test_images) split by train_test_split, not stratified, this share scored "
        "(the original: 0.3 of 88 images)",
    )
    standardise: bool = Field(True, description="features standardised before the fit (the original: no)")
    pca_images: Literal["scored", "all"] = Field(
        "scored",
        description="the PCA figure's images: those scored | all, the fitted ones too (the original's 88)",
    )
    c: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")
    max_iter: int = Field(1000, ge=10)


class Config(Strict):
    seed: Seed = 0
    fixed_seeds: FixedSeeds = FixedSeeds()
    data: VitDataConfig = VitDataConfig()
    model: VitModelConfig = VitModelConfig()
    predict: PredictConfig = PredictConfig()
    attention: AttentionConfig = AttentionConfig()
    masking: MaskingConfig = MaskingConfig()
    probe: ProbeConfig = ProbeConfig()


class VitResult(Result):
    """What every ViT part records about its model."""

    model: str
    weights: dict[str, Any]
    random_weights: bool
    precision: str
    input_size: int


class PredictResult(VitResult):
    photos: dict[str, list[dict[str, Any]]]  # photo → its top-k classes and probabilities


class AttentionResult(VitResult):
    photos: list[str]
    grid: list[int]
    prefix_tokens: int
    layer: int
    uniform_entropy: float
    last_layer_entropy_per_head: list[float]
    last_layer_spread_per_head: list[float]
    entropy_by_layer: list[float]
    spread_by_layer: list[float]
    cls_attention_on_patches_by_layer: list[float]


class MaskedResult(Result):
    agreement: float
    accuracy: float
    confidence: float


class PhotoMasked(Result):
    top1: str
    probability: float
    patches_masked: int
    same_top1_as_unmasked: bool


class MaskingResult(VitResult):
    source: str = "dataset"
    fill: str
    grid: list[int]
    dataset: str | None = None  # source = dataset: the masked test images, scored against labels
    images: int | None = None
    probe_fitted_on: str | None = None
    chance: float | None = None
    results: dict[str, dict[str, MaskedResult]] = {}  # scheme → masked share ("0.50") → scores
    photos: dict[str, dict[str, dict[str, PhotoMasked]]] = {}  # source = photos: photo → scheme → share
    skipped: dict[str, str] = {}


class ProbeScore(Result):
    accuracy: float
    ci_low: float
    ci_high: float
    n_test: int
    n_train: int


class ProbeResult(VitResult):
    dataset: str
    train: str
    test: str
    chance: float
    final: dict[str, ProbeScore]  # readout (cls, mean) → score
    by_layer: dict[str, dict[str, ProbeScore]]


def predict_rows(m: PredictResult) -> list[dict]:
    return [
        {
            "what": f"{photo}: top-1{weights_mark(m)}",
            "value": f"{top[0]['class'].split(',')[0]} ({number(top[0]['probability'])})",
        }
        for photo, top in m.photos.items()
    ]


def attention_rows(m: AttentionResult) -> list[dict]:
    return [
        {
            "what": f"block {m.layer} class-token entropy, mean over heads (uniform {m.uniform_entropy:.2f})"
            f"{weights_mark(m)}",
            "value": round(float(np.mean(m.last_layer_entropy_per_head)), 3),
        }
    ]


def masking_rows(m: MaskingResult) -> list[dict]:
    if m.source == "photos":
        rows = []
        for photo, schemes in m.photos.items():
            for scheme, per in schemes.items():
                worst = max(per)
                rows.append(
                    {
                        "what": f"{photo}, {scheme} {float(worst):.0%} masked: top-1{weights_mark(m)}",
                        "value": f"{per[worst].top1} ({number(per[worst].probability)})",
                    }
                )
        return rows
    return [
        {
            "what": f"{scheme} {float(max(per)):.0%} masked: agreement / probe accuracy{weights_mark(m)}",
            "value": f"{number(per[max(per)].agreement)} / {number(per[max(per)].accuracy)}",
        }
        for scheme, per in m.results.items()
    ]


def probe_rows(m: ProbeResult) -> list[dict]:
    return [
        {
            "what": f"{m.dataset} probe, {name} (95% CI){weights_mark(m)}",
            "value": f"{number(s.accuracy)} [{number(s.ci_low)}, {number(s.ci_high)}]",
        }
        for readout, name in (("cls", "class token"), ("mean", "patch mean"))
        for s in [m.final[readout]]
    ]


def vit_weights(cfg: Config) -> list[Need]:
    return [Weights("timm", cfg.model.name, cfg.model.weights)]


def drawn_splits(cfg: Config) -> list[Need]:
    return [DatasetSplit(cfg.data.dataset, split, cfg.data.root) for split in ("train", "test")]


def masking_needs(cfg: Config) -> list[Need]:
    return [] if cfg.masking.source == "photos" else drawn_splits(cfg)


PARTS = (
    Part(
        "predict",
        PredictResult,
        "run_predict",
        predict_rows,
        (
            Figure(
                "predict_topk", "each photo and the model's top-k ImageNet classes with probabilities", True
            ),
        ),
        prepare="prepare_photos",
    ),
    Part(
        "attention",
        AttentionResult,
        "run_attention",
        attention_rows,
        (
            Figure(
                "attention_overlay",
                "where the class token looks: the chosen block's head-mean attention and the rollout over "
                "all blocks, over each photo",
                True,
            ),
            Figure("attention_heads", "the chosen block's class-token attention, head by head", True),
            Figure(
                "attention_raw",
                "the chosen block's head-mean class-token attention on the patch grid, as computed, with its "
                "scale (the original's raw map)",
            ),
            Figure(
                "attention_entropy", "entropy of the class token's attention by block, against uniform", True
            ),
            Figure("attention_spread", "spatial spread of the class token's attention by block"),
        ),
        prepare="prepare_attention",
    ),
    Part(
        "masking",
        MaskingResult,
        "run_masking",
        masking_rows,
        (
            Figure(
                "masking_agreement",
                "share of images whose top-1 matches the unmasked one, against the masked share",
                True,
            ),
            Figure("masking_accuracy", "probe accuracy on the masked images, against the masked share"),
            Figure("masking_confidence", "mean top-1 probability, against the masked share"),
            Figure("masking_examples", "example inputs as masked at each share"),
            Figure("masking_photos", "the photos masked at each share, with the top-1 of each", True),
        ),
        prepare="prepare_masking",
        needs=masking_needs,
    ),
    Part(
        "probe",
        ProbeResult,
        "run_probe",
        probe_rows,
        (
            Figure(
                "probe_by_layer", "linear-probe held-out accuracy by block, class token vs patch mean", True
            ),
            Figure("probe_pca", "2-D PCA of the final features of the scored images, by class", True),
        ),
        prepare="prepare_probe",
        needs=drawn_splits,
    ),
)


def weights_files() -> list:
    return timm_rows((VitModelConfig().name,))


EXPERIMENT = Experiment(
    name="vit",
    title=__doc__.strip().splitlines()[0],
    parts=PARTS,
    config=Config,
    code=f"{__name__}.parts",
    headlines=HEADLINES,
    readings=READINGS,
    weights_files=weights_files,
    needs_always=vit_weights,
    non_result_keys=("model.cache", "model.batch_size", "masking.examples"),
)
