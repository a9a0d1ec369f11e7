"""Experiment 5: CLIP's modality gap — zero-shot classification, the gap, Procrustes alignment.

Parts: `zeroshot` (accuracy and per-class accuracy of every prompt strategy in the config, CLIP's
published ensemble among them), `gap` (joint t-SNE/UMAP of image and text embeddings, norms,
matched vs unmatched similarity, the gap as a number and the share of pair distance it explains),
`procrustes` (an orthogonal map from image to text embeddings fitted on one split and measured on
another). Image embeddings come from one cached pass and serve every part.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from atml.config import DrawsSection, FixedSeeds, FrozenModelSection, Seed, Strict
from atml.data.images import NAMES
from atml.data.prompts import PUBLISHED
from atml.experiments import Experiment, Figure, Headline, Part, Reading
from atml.models import model_names
from atml.models.weight_files import open_clip_rows
from atml.needs import DatasetSplit, Need, Weights
from atml.results import Result, weights_mark
from atml.tables import number

READINGS = (
    Reading(
        "Zero-shot accuracy: plain label {zeroshot/strategies/plain/accuracy}, one template "
        "{zeroshot/strategies/template/accuracy}, descriptive prompts "
        "{zeroshot/strategies/descriptive/accuracy} (chance {zeroshot/chance})."
    ),
    Reading(
        "The modality gap ‖mean x̂ − mean ŷ‖ is {gap/gap} (Liang et al. measured "
        "{gap/liang_mscoco_gap} on MSCOCO); matched pairs' cosine {gap/matched_cosine} against "
        "unmatched pairs' {gap/unmatched_cosine}."
    ),
    Reading(
        "An orthogonal Procrustes map fitted on {procrustes/n_fit} images takes the held-out matched "
        "cosine from {procrustes/held_out/before/matched_cosine} to "
        "{procrustes/held_out/after/matched_cosine} and zero-shot accuracy from "
        "{procrustes/held_out/before/accuracy} to {procrustes/held_out/after/accuracy}."
    ),
)

HEADLINES = (
    Headline("zero-shot: plain label", ("zeroshot", "strategies", "plain", "accuracy"), "0.9389 (STL-10)"),
    Headline("zero-shot: one template", ("zeroshot", "strategies", "template", "accuracy"), "0.9485"),
    Headline("zero-shot: descriptive", ("zeroshot", "strategies", "descriptive", "accuracy"), "0.9483"),
    Headline(
        "zero-shot: CLIP's published ensemble",
        ("zeroshot", "strategies", "clip-published", "accuracy"),
        "— (published: 0.972)",
        skipped_at=("zeroshot", "skipped", "clip-published"),
    ),
    Headline("cosine, matched pairs", ("gap", "matched_cosine"), "0.2791"),
    Headline("cosine, unmatched pairs", ("gap", "unmatched_cosine"), "0.2175"),
    Headline("modality gap ‖mean x̂ − mean ŷ‖", ("gap", "gap"), "— (Liang et al., MSCOCO: 0.82)"),
    Headline(
        "Procrustes, held out: matched cosine after",
        ("procrustes", "held_out", "after", "matched_cosine"),
        "— (the original scored in-sample only: 0.8903)",
        skipped_at=("procrustes", "skipped", "held_out"),
    ),
    Headline(
        "Procrustes, held out: accuracy after",
        ("procrustes", "held_out", "after", "accuracy"),
        "— (the original scored in-sample only: 1.0000)",
        skipped_at=("procrustes", "skipped", "held_out"),
    ),
    Headline(
        "Procrustes, fit split: matched cosine after",
        ("procrustes", "fit_split_not_held_out", "after", "matched_cosine"),
        "0.8903",
    ),
    Headline(
        "Procrustes, fit split: accuracy after",
        ("procrustes", "fit_split_not_held_out", "after", "accuracy"),
        "1.0000",
    ),
)


class ClipDataConfig(DrawsSection):
    dataset: Literal[NAMES] = "stl10"  # type: ignore[valid-type]
    pair_indices: list[int] | None = Field(
        None,
        min_length=4,
        description="test-split indices of the images the gap and procrustes parts use, in this order "
        "(the original's 100; null: the whole draw); zeroshot always uses the whole draw",
    )

    @field_validator("pair_indices")
    @classmethod
    def _distinct_indices(cls, indices: list[int] | None) -> list[int] | None:
        if indices is not None and (min(indices) < 0 or len(set(indices)) != len(indices)):
            raise ValueError("indices must be distinct and non-negative")
        return indices


class ClipModelConfig(FrozenModelSection):
    name: str = Field("ViT-B-32", description="any open_clip model")
    weights: str = Field("openai", description="an open_clip pretrained tag | a local checkpoint | none")
    batch_size: int = Field(256, ge=1, description="images per no-grad forward")
    normalise: bool = Field(
        True, description="the model's mean/std on the input (false: [0, 1] pixels, as the original fed them)"
    )
    interpolation: Literal["model", "bilinear", "bicubic"] = Field(
        "model", description="the resize: the model's own (CLIP: bicubic) or another"
    )

    _known_name = field_validator("name")(model_names.checked("open_clip"))


Templates = list[str] | Literal["published"] | None


class ZeroShotConfig(Strict):
    strategies: dict[str, Templates] = Field(
        {
            "plain": ["{}"],
            "template": ["a photo of a {}."],
            "descriptive": [
                "a good photo of a {}, a kind of object.",
                "a close-up photo of the {}.",
                "a centered photo of a {}.",
            ],
            "clip-published": PUBLISHED,
        },
        min_length=1,
        description="name → prompt templates ({} is the class name), "
        "or `published`: CLIP's own ensemble for the dataset, or null: no such strategy",
    )
    renormalise_ensemble: bool = Field(
        True,
        description="a class's mean of unit prompt embeddings is made unit again (false: the original's "
        "plain mean, whose norm then weighs the class)",
    )
    class_names: dict[str, str] = Field({}, description="dataset class name → the text a prompt uses instead")

    @field_validator("strategies")
    @classmethod
    def _templates_name_the_class(cls, strategies: dict) -> dict:
        strategies = {name: t for name, t in strategies.items() if t is not None}
        if not strategies:
            raise ValueError("at least one strategy")
        for name, templates in strategies.items():
            if templates != PUBLISHED and (not templates or any(t.count("{}") != 1 for t in templates)):
                raise ValueError(
                    f"strategy '{name}': each template needs exactly one {{}} where the class name goes"
                )
        return strategies


class GapConfig(Strict):
    images: int = Field(
        100, ge=2, description="test images in the t-SNE/UMAP maps (the numbers use the whole draw)"
    )
    strategy: str = Field(
        "template", description="the zero-shot strategy whose class texts pair with the images"
    )
    maps: list[Literal["tsne", "umap", "pca"]] = Field(["tsne", "umap"], min_length=1)
    embeddings: list[Literal["normalised", "raw"]] = Field(
        ["normalised"], min_length=1, description="mapped as unit vectors, as the model outputs them, or both"
    )
    map_texts: Literal["classes", "captions"] = Field(
        "classes",
        description="texts in the maps: one per class, or the caption of every image (the original)",
    )
    text_norms: Literal["prompts", "captions"] = Field(
        "prompts",
        description="the text norms recorded: of every prompt of every class (each once) | of every "
        "image's caption, its class's text (class-frequency weighted; the original's)",
    )
    unmatched: Literal["other-classes", "other-captions"] = Field(
        "other-classes",
        description="unmatched cosine: each image against the other classes' texts, or against every "
        "other image's caption, same-class captions included (the original's off-diagonal)",
    )


class ProcrustesConfig(Strict):
    images: int | None = Field(
        2000, ge=4, description="test images aligned (null: the whole draw), split into fit and held-out"
    )
    fit_fraction: float = Field(
        0.5, gt=0, lt=1, description="share of them the rotation is fitted on; the rest are held out"
    )
    strategy: str = Field(
        "template", description="the zero-shot strategy whose class texts the images are aligned to"
    )
    scoring: Literal["held-out", "in-sample"] = Field(
        "held-out",
        description="held-out: fitted on fit_fraction, scored on the rest | in-sample: fitted and scored "
        "on every image (the original's; optimistic)",
    )
    maps: list[Literal["tsne", "umap", "pca"]] = Field(["tsne"], min_length=1)


class Config(Strict):
    seed: Seed = 0
    fixed_seeds: FixedSeeds = FixedSeeds()
    data: ClipDataConfig = ClipDataConfig()
    model: ClipModelConfig = ClipModelConfig()
    zeroshot: ZeroShotConfig = ZeroShotConfig()
    gap: GapConfig = GapConfig()
    procrustes: ProcrustesConfig = ProcrustesConfig()


class ClipResult(Result):
    """What every CLIP part records about its model and images."""

    model: str
    weights: dict[str, Any]
    random_weights: bool
    precision: str
    dataset: str
    images: str


class StrategyScores(Result):
    accuracy: float
    ci_low: float
    ci_high: float
    templates: list[str]
    per_class: dict[str, float]


class ZeroshotResult(ClipResult):
    n_images: int
    chance: float
    strategies: dict[str, StrategyScores]
    skipped: dict[str, str]  # strategy → why it has no number


class GapResult(ClipResult):
    n_images: int
    strategy: str
    gap: float
    gap_share_of_pair_distance: float
    liang_mscoco_gap: float
    matched_cosine: float
    unmatched_cosine: float
    norms_before: dict[str, dict[str, float]]
    norms_after: dict[str, dict[str, float]]
    map_images: int


class Alignment(Result):
    matched_cosine: float
    unmatched_cosine: float
    gap: float
    accuracy: float


class BeforeAfter(Result):
    before: Alignment
    after: Alignment


class ProcrustesResult(ClipResult):
    strategy: str
    scoring: str = "held-out"
    n_fit: int
    n_held_out: int
    scale: float | None = None  # scipy's Procrustes scale on the fit split (the original printed 89.1015)
    dim: int
    held_out: BeforeAfter | None
    fit_split_not_held_out: BeforeAfter
    skipped: dict[str, str] = {}  # what has no number, and why
    note: str


def zeroshot_rows(m: ZeroshotResult) -> list[dict]:
    rows = [
        {
            "what": f"{name} accuracy, {m.n_images} images (95% CI){weights_mark(m)}",
            "value": f"{number(r.accuracy)} [{number(r.ci_low)}, {number(r.ci_high)}]",
        }
        for name, r in m.strategies.items()
    ]
    return rows + [{"what": f"{name}", "value": f"skipped: {why}"} for name, why in m.skipped.items()]


def gap_rows(m: GapResult) -> list[dict]:
    return [
        {
            "what": f"modality gap ‖mean x̂ − mean ŷ‖ (Liang MSCOCO {m.liang_mscoco_gap}){weights_mark(m)}",
            "value": number(m.gap),
        },
        {
            "what": f"share of matched-pair distance the gap explains{weights_mark(m)}",
            "value": number(m.gap_share_of_pair_distance),
        },
        {
            "what": f"cosine matched / unmatched{weights_mark(m)}",
            "value": f"{number(m.matched_cosine)} / {number(m.unmatched_cosine)}",
        },
    ]


def procrustes_rows(m: ProcrustesResult) -> list[dict]:
    """Held-out numbers where there are any, then the fit split's (not held out, and said so)."""
    f, h = m.fit_split_not_held_out, m.held_out
    if h is None:
        return [
            {
                "what": f"in-sample ({m.n_fit}, fitted and scored on them) matched cosine / accuracy, "
                f"before → after{weights_mark(m)}",
                "value": f"{number(f.before.matched_cosine)} / {number(f.before.accuracy)} → "
                f"{number(f.after.matched_cosine)} / {number(f.after.accuracy)}",
            }
        ]
    return [
        {
            "what": f"held-out ({m.n_held_out}) cosine matched / unmatched, before → after{weights_mark(m)}",
            "value": f"{number(h.before.matched_cosine)} / {number(h.before.unmatched_cosine)} → "
            f"{number(h.after.matched_cosine)} / {number(h.after.unmatched_cosine)}",
        },
        {
            "what": f"held-out gap, before → after{weights_mark(m)}",
            "value": f"{number(h.before.gap)} → {number(h.after.gap)}",
        },
        {
            "what": f"held-out accuracy, before → after (after: uses fit labels){weights_mark(m)}",
            "value": f"{number(h.before.accuracy)} → {number(h.after.accuracy)}",
        },
        {
            "what": f"fit split ({m.n_fit}, NOT held out) matched cosine / accuracy after{weights_mark(m)}",
            "value": f"{number(f.after.matched_cosine)} / {number(f.after.accuracy)}",
        },
    ]


def clip_reads(cfg: Config) -> list[Need]:
    """Every part reads the test split's draw and the model."""
    return [
        DatasetSplit(cfg.data.dataset, "test", cfg.data.root),
        Weights("open_clip", cfg.model.name, cfg.model.weights),
    ]


PARTS = (
    Part(
        "zeroshot",
        ZeroshotResult,
        "run_zeroshot",
        zeroshot_rows,
        (Figure("zeroshot_per_class", "zero-shot accuracy per class, one bar per prompt strategy", True),),
    ),
    Part(
        "gap",
        GapResult,
        "run_gap",
        gap_rows,
        (
            Figure(
                "gap_maps", "2-D maps of image and text embeddings together: the two modalities apart", True
            ),
            Figure(
                "gap_norms_similarity",
                "embedding norms per modality, and cosine similarity of matched and unmatched pairs",
                True,
            ),
        ),
        prepare="check_strategy",
    ),
    Part(
        "procrustes",
        ProcrustesResult,
        "run_procrustes",
        procrustes_rows,
        (
            Figure(
                "procrustes_maps", "image and text embeddings before and after the Procrustes rotation", True
            ),
            Figure(
                "procrustes_before_after",
                "matched and unmatched cosine, gap and accuracy before and after the rotation",
                True,
            ),
        ),
        prepare="prepare_procrustes",
    ),
)


def weights_files() -> list:
    default = ClipModelConfig()
    return open_clip_rows(((default.name, default.weights),))


EXPERIMENT = Experiment(
    name="clip",
    title=__doc__.strip().splitlines()[0],
    parts=PARTS,
    config=Config,
    code=f"{__name__}.parts",
    headlines=HEADLINES,
    readings=READINGS,
    weights_files=weights_files,
    needs_always=clip_reads,
    non_result_keys=("model.cache", "model.batch_size"),
)
