"""Experiment 5: CLIP's modality gap — zero-shot classification, the gap, Procrustes alignment.

Parts: `zeroshot` (accuracy and per-class accuracy of every prompt strategy in the config, CLIP's
published ensemble among them), `gap` (joint t-SNE/UMAP of image and text embeddings, norms,
matched vs unmatched similarity, the gap as a number and the share of pair distance it explains),
`procrustes` (an orthogonal map from image to text embeddings fitted on one split and measured on
another). Image embeddings come from one cached pass and serve every part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from atml import plots, seeding
from atml.analysis.embeddings import project_2d
from atml.analysis.modality_gap import (
    Similarities,
    caption_cosines,
    gap_share,
    modality_gap,
    norm_summary,
    pair_cosines,
    similarities,
)
from atml.analysis.probe import wilson_interval
from atml.analysis.procrustes import apply_rotation, fit_rotation
from atml.analysis.zero_shot import class_embeddings, per_class_accuracy, predict
from atml.config import Precision, Seed, Strict
from atml.data.images import NAMES, Draw, draw
from atml.data.prompts import PUBLISHED, class_prompt_names, fill, published_templates
from atml.errors import UserError
from atml.experiments import Experiment, Headline, RunContext
from atml.models.frozen import FrozenModel
from atml.models.weights import open_clip_tokenizer
from atml.results import Result
from atml.runs import Run
from atml.runtime import autocast, resolve_precision

log = logging.getLogger("atml")

PARTS = ("zeroshot", "gap", "procrustes")
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
KEY_FIGURES = (
    "zeroshot_per_class",
    "gap_maps",
    "gap_norms_similarity",
    "procrustes_maps",
    "procrustes_before_after",
)
LIANG_MSCOCO_GAP = 0.82


class ClipDataConfig(Strict):
    dataset: Literal[NAMES] = "stl10"  # type: ignore[valid-type]
    root: str = "data"
    download: bool = True
    test_images: int | None = Field(
        None, ge=2, description="a fixed random draw of the test split (null: all of it; STL-10: 8,000)"
    )
    subset_seed: Seed = 0
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


class ClipModelConfig(Strict):
    name: str = Field("ViT-B-32", description="any open_clip model")
    weights: str = Field("openai", description="an open_clip pretrained tag | a local checkpoint | none")
    batch_size: int = Field(256, ge=1, description="images per no-grad forward")
    precision: Precision = "auto"
    cache: bool = Field(
        True, description="reuse image embeddings across parts and runs (~/.cache/atml/features)"
    )
    normalise: bool = Field(
        True, description="the model's mean/std on the input (false: [0, 1] pixels, as the original fed them)"
    )
    interpolation: Literal["model", "bilinear", "bicubic"] = Field(
        "model", description="the resize: the model's own (CLIP: bicubic) or another"
    )


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
    data: ClipDataConfig = ClipDataConfig()
    model: ClipModelConfig = ClipModelConfig()
    zeroshot: ZeroShotConfig = ZeroShotConfig()
    gap: GapConfig = GapConfig()
    procrustes: ProcrustesConfig = ProcrustesConfig()


# --- model, data, embeddings ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClipContext(RunContext):
    clip: FrozenModel
    test: Draw  # the images every part embeds
    pair_positions: torch.Tensor  # positions in `test` of the images gap and procrustes use

    @property
    def pairs(self) -> Draw:
        return self.test.at(self.pair_positions)


def load_model(cfg: Config, device: torch.device) -> FrozenModel:
    m = cfg.model
    model = FrozenModel.load(
        "open_clip", m.name, m.weights, allow_download=cfg.data.download, init_seed=cfg.seed, device=device,
        precision=resolve_precision(device, m.precision), key=f"open_clip:{m.name}",
    )  # fmt: skip
    p = model.preprocess
    return model.with_preprocess(
        replace(
            p,
            mean=p.mean if m.normalise else (0.0, 0.0, 0.0),
            std=p.std if m.normalise else (1.0, 1.0, 1.0),
            interpolation=p.interpolation if m.interpolation == "model" else m.interpolation,
        )
    )


def pair_positions(cfg: Config, test: Draw) -> torch.Tensor:
    """Where data.pair_indices' images sit in the test draw (all of it when none are given)."""
    if cfg.data.pair_indices is None:
        return torch.arange(len(test.labels))
    where = {int(i): pos for pos, i in enumerate(test.indices)}
    missing = [i for i in cfg.data.pair_indices if i not in where]
    if missing:
        raise UserError(
            f"data.pair_indices: {len(missing)} of them (e.g. {missing[0]}) are not in the test draw "
            f"({test.source}); set data.test_images=null to draw the whole split"
        )
    return torch.tensor([where[i] for i in cfg.data.pair_indices])


def test_draw(cfg: Config) -> Draw:
    d = cfg.data
    return draw(d.dataset, "test", d.root, d.download, d.test_images, d.subset_seed)


def strategy_templates(cfg: Config, strategy: str) -> list[str] | None:
    """A strategy's templates (None: a published ensemble this dataset has none of)."""
    templates = cfg.zeroshot.strategies[strategy]
    if templates == PUBLISHED:
        published = published_templates(cfg.data.dataset)
        return list(published) if published else None
    return list(templates)


def prepare(cfg: Config, device: torch.device, parts: list[str]) -> ClipContext:
    """Weights, tokenizer, data and every strategy name checked before a run folder exists."""
    clip = load_model(cfg, device)
    open_clip_tokenizer(cfg.model.name)
    test = test_draw(cfg)
    positions = pair_positions(cfg, test)
    strategies = cfg.zeroshot.strategies
    for part, name in (("gap", cfg.gap.strategy), ("procrustes", cfg.procrustes.strategy)):
        if part not in parts:
            continue
        if name not in strategies:
            raise UserError(
                f"{part}.strategy='{name}' is not a zeroshot strategy; defined: {', '.join(strategies)}"
            )
        if strategy_templates(cfg, name) is None:
            raise UserError(
                f"{part}.strategy='{name}' is CLIP's published ensemble, and CLIP published none for "
                f"{cfg.data.dataset}"
            )
    if "procrustes" in parts and cfg.procrustes.scoring == "held-out":
        n = min(cfg.procrustes.images or len(positions), len(positions))
        n_fit = round(n * cfg.procrustes.fit_fraction)
        if n_fit < 2 or n - n_fit < 2:
            raise UserError(
                f"procrustes: {n} images split {n_fit}/{n - n_fit} leaves fewer than 2 to fit on or to hold "
                "out; "
                "raise procrustes.images or data.test_images"
            )
    return ClipContext(cfg, device, tuple(parts), clip, test, positions)


def common_metrics(ctx: ClipContext) -> dict:
    return {
        "model": ctx.cfg.model.name,
        **ctx.clip.describe(),
        "dataset": ctx.cfg.data.dataset,
        "images": ctx.test.source,
    }


def weights_note(cfg: Config) -> str:
    return " — RANDOM weights" if cfg.model.weights == "none" else f" — {cfg.model.name} {cfg.model.weights}"


def image_embeddings(ctx: ClipContext) -> torch.Tensor:
    """The test draw's image embeddings (before normalisation), from one cached no-grad pass."""
    cfg, model = ctx.cfg, ctx.clip.model
    outputs = ctx.clip.features(
        lambda x: {"image": model.encode_image(x)},
        ctx.test,
        dataset=cfg.data.dataset,
        split_name="test",
        readouts=["image_embedding"],
        batch_size=cfg.model.batch_size,
        cache=cfg.model.cache,
        label=f"{cfg.model.name} {cfg.data.dataset} test image embeddings",
    )
    return outputs["image"]


def text_embeddings(ctx: ClipContext, texts: list[str]) -> torch.Tensor:
    """Text embeddings (before normalisation) of `texts`, in batches, as float32 on the CPU."""
    model, batch, device = ctx.clip.model, ctx.cfg.model.batch_size, ctx.device
    tokenizer = open_clip_tokenizer(ctx.cfg.model.name)
    out = []
    with torch.no_grad(), autocast(device, ctx.clip.precision):
        for start in range(0, len(texts), batch):
            out.append(model.encode_text(tokenizer(texts[start : start + batch]).to(device)).float().cpu())
    return torch.cat(out)


def prompt_embeddings(ctx: ClipContext, templates: list[str]) -> torch.Tensor:
    """[classes, templates, dim] text embeddings of every class under every template."""
    names = class_prompt_names(ctx.test.classes, ctx.cfg.zeroshot.class_names)
    flat = text_embeddings(ctx, [prompt for name in names for prompt in fill(templates, name)])
    return flat.view(len(names), len(templates), -1)


def class_texts(ctx: ClipContext, strategy: str) -> torch.Tensor:
    """[classes, dim] class embeddings of a strategy (its unit prompt embeddings averaged; unit
    again unless zeroshot.renormalise_ensemble is off)."""
    prompts = prompt_embeddings(ctx, strategy_templates(ctx.cfg, strategy))
    return class_embeddings(prompts, renormalise=ctx.cfg.zeroshot.renormalise_ensemble)


# --- results ------------------------------------------------------------------------------------


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
    dim: int
    held_out: BeforeAfter | None
    fit_split_not_held_out: BeforeAfter
    skipped: dict[str, str] = {}  # what has no number, and why
    note: str


# --- parts -----------------------------------------------------------------------------------------


def run_zeroshot(ctx: ClipContext, run: Run) -> ZeroshotResult:
    cfg = ctx.cfg
    test = ctx.test
    images = image_embeddings(ctx)
    results, skipped = {}, {}
    for strategy in cfg.zeroshot.strategies:
        templates = strategy_templates(cfg, strategy)
        if templates is None:
            skipped[strategy] = f"CLIP published no prompt ensemble for {cfg.data.dataset}"
            log.info(f"  {strategy}: skipped ({skipped[strategy]})")
            continue
        predicted = predict(images, class_texts(ctx, strategy))
        correct = int((predicted == test.labels).sum())
        low, high = wilson_interval(correct, len(test.labels))
        results[strategy] = {
            "accuracy": correct / len(test.labels),
            "ci_low": low,
            "ci_high": high,
            "templates": templates,
            "per_class": dict(
                zip(test.classes, per_class_accuracy(predicted, test.labels, len(test.classes)))
            ),
        }
        log.info(
            f"  {strategy} ({len(templates)} template{'s' * (len(templates) > 1)}): accuracy "
            f"{correct / len(test.labels):.4f} "
            f"[{low:.4f}, {high:.4f}]",
        )
    if results:
        plots.grouped_bars(
            {f"{s} ({r['accuracy']:.3f})": list(r["per_class"].values()) for s, r in results.items()},
            list(test.classes),
            run.plot_path("zeroshot_per_class"),
            f"zero-shot accuracy per class, {len(test.labels)} {cfg.data.dataset} test images (chance "
            f"{1 / len(test.classes):.2f})"
            f"{weights_note(cfg)}",
            "accuracy",
        )
    return ZeroshotResult.model_validate(
        common_metrics(ctx)
        | {
            "n_images": len(test.labels),
            "chance": 1 / len(test.classes),
            "strategies": results,
            "skipped": skipped,
        }
    )


def joint_map(
    image_emb: torch.Tensor,
    image_labels: torch.Tensor,
    texts: torch.Tensor,
    method: str,
    seed: int,
    text_labels: torch.Tensor | None = None,
    normalise: bool = True,
) -> plots.ModalityMap:
    """A 2-D map of images and texts together (class texts, or captions with `text_labels`), as
    unit vectors or as the model gave them."""
    points = torch.cat([image_emb.float(), texts.float()])
    points = (torch.nn.functional.normalize(points, dim=-1) if normalise else points).numpy()
    text_labels = torch.arange(len(texts)) if text_labels is None else text_labels
    labels = np.concatenate([image_labels.numpy(), text_labels.numpy()])
    is_text = np.r_[np.zeros(len(image_emb), bool), np.ones(len(texts), bool)]
    return plots.ModalityMap(project_2d(points, method, seed), labels, is_text)


METHOD_NAMES = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}


def run_gap(ctx: ClipContext, run: Run) -> GapResult:
    """The gap as a number, norms before and after normalisation, matched vs unmatched cosine, and
    the joint maps. Slightly over 60 lines: numbers, two figures and the result, in that order."""
    cfg = ctx.cfg
    test = ctx.pairs
    images = image_embeddings(ctx)[ctx.pair_positions]
    templates = strategy_templates(cfg, cfg.gap.strategy)
    prompts = prompt_embeddings(ctx, templates)  # [classes, templates, dim], unnormalised
    texts = class_embeddings(prompts, renormalise=cfg.zeroshot.renormalise_ensemble)
    paired = texts[test.labels]
    gap, share = modality_gap(images, paired), gap_share(images, paired)
    if cfg.gap.unmatched == "other-classes":
        matched, unmatched = pair_cosines(images, texts, test.labels)
    else:
        matched, unmatched = caption_cosines(images, paired)
    sims = Similarities.of(matched, unmatched)
    log.info(
        f"  gap {gap:.4f} (Liang et al., CLIP on MSCOCO: {LIANG_MSCOCO_GAP}); share of matched-pair "
        f"distance {share:.3f}; "
        f"cosine matched {sims.matched:.4f} vs unmatched {sims.unmatched:.4f}",
    )
    n = min(cfg.gap.images, len(test.labels))
    kinds = {"normalised": texts, "raw": prompts.mean(1)}  # raw: the mean of the prompts' raw embeddings
    captions = cfg.gap.map_texts == "captions"
    text_labels = test.labels[:n] if captions else None
    what = f"{n} images + {n if captions else len(texts)} {'captions' if captions else 'class texts'}"
    maps = {
        f"{METHOD_NAMES[m]}, {kind}: {what}": joint_map(
            images[:n],
            test.labels[:n],
            kinds[kind][text_labels] if captions else kinds[kind],
            m,
            cfg.seed,
            text_labels,
            normalise=kind == "normalised",
        )
        for kind in cfg.gap.embeddings
        for m in cfg.gap.maps
    }
    plots.modality_maps(
        maps,
        test.classes,
        run.plot_path("gap_maps"),
        f"image and text embeddings together ({' vs '.join(cfg.gap.embeddings)}){weights_note(cfg)}",
        columns=len(cfg.gap.maps),
    )
    flat_prompts = prompts.flatten(0, 1)
    plots.histograms(
        {
            "norms before normalisation": {
                "image": images.norm(dim=-1).numpy(),
                "text (every prompt)": flat_prompts.norm(dim=-1).numpy(),
            },
            "cosine similarity, image vs class text": {
                "matched (own class)": matched.numpy(),
                "unmatched": unmatched.numpy(),
            },
        },
        run.plot_path("gap_norms_similarity"),
        f"{cfg.data.dataset}, strategy '{cfg.gap.strategy}'{weights_note(cfg)}",
        ["L2 norm", "cosine"],
    )
    return GapResult.model_validate(
        common_metrics(ctx)
        | {
            "n_images": len(test.labels),
            "strategy": cfg.gap.strategy,
            "gap": gap,
            "gap_share_of_pair_distance": share,
            "liang_mscoco_gap": LIANG_MSCOCO_GAP,
            "matched_cosine": sims.matched,
            "unmatched_cosine": sims.unmatched,
            "norms_before": {"image": norm_summary(images), "text": norm_summary(flat_prompts)},
            "norms_after": {
                "image": norm_summary(torch.nn.functional.normalize(images, dim=-1)),
                "text": norm_summary(torch.nn.functional.normalize(flat_prompts, dim=-1)),
            },
            "map_images": n,
        }
    )


def alignment_scores(images: torch.Tensor, labels: torch.Tensor, texts: torch.Tensor) -> dict:
    """Matched/unmatched cosine, gap and zero-shot accuracy of unit image embeddings against unit
    class texts."""
    sims = similarities(images, texts, labels)
    return {
        "matched_cosine": sims.matched,
        "unmatched_cosine": sims.unmatched,
        "gap": modality_gap(images, texts[labels]),
        "accuracy": float((predict(images, texts) == labels).float().mean()),
    }


def run_procrustes(ctx: ClipContext, run: Run) -> ProcrustesResult:
    """The rotation is fitted on one part of the images (with their labels' texts as targets) and
    scored on the rest: the held-out numbers are the result; fit-split numbers are labelled.
    Slightly over 60 lines: fit, score both splits, log, two figures and the metrics in order."""
    cfg, p = ctx.cfg, ctx.cfg.procrustes
    test = ctx.pairs
    texts = class_texts(ctx, p.strategy)
    n = min(p.images or len(test.labels), len(test.labels))
    order = torch.randperm(n, generator=seeding.generator(cfg.seed))
    n_fit = n if p.scoring == "in-sample" else round(n * p.fit_fraction)
    fit, held = order[:n_fit], order[n_fit:]
    embedded = image_embeddings(ctx)[ctx.pair_positions[:n]]
    images = torch.nn.functional.normalize(embedded.double(), dim=-1).float()
    rotation = fit_rotation(images[fit], texts[test.labels[fit]])
    aligned = apply_rotation(images, rotation)
    splits = {"held_out": held, "fit_split": fit} if len(held) else {"fit_split": fit}
    scores = {
        split: {
            "before": alignment_scores(images[idx], test.labels[idx], texts),
            "after": alignment_scores(aligned[idx], test.labels[idx], texts),
        }
        for split, idx in splits.items()
    }
    for split, s in scores.items():
        log.info(
            f"  {split} ({len(splits[split])} images): matched cosine "
            f"{s['before']['matched_cosine']:.4f} → "
            f"{s['after']['matched_cosine']:.4f}, accuracy {s['before']['accuracy']:.4f} → "
            f"{s['after']['accuracy']:.4f}, "
            f"gap {s['before']['gap']:.4f} → {s['after']['gap']:.4f}",
        )
    shown = (held if len(held) else fit)[: cfg.gap.images]
    which = "held-out images" if len(held) else "images R was fitted on (in-sample)"
    after = "rotated by R fitted on the other split" if len(held) else "rotated by R"
    plots.modality_maps(
        {
            title: joint_map(points[shown], test.labels[shown], texts, method, cfg.seed)
            for method in p.maps
            for title, points in (
                (f"{METHOD_NAMES[method]}: {which}, before alignment (n={len(shown)})", images),
                (f"{METHOD_NAMES[method]}, after: images {after}", aligned),
            )
        },
        test.classes,
        run.plot_path("procrustes_maps"),
        f"orthogonal Procrustes, unit embeddings{weights_note(cfg)}",
        columns=2,
    )
    quantities = ("matched_cosine", "unmatched_cosine", "gap", "accuracy")
    plots.grouped_bars(
        {
            f"{split.replace('_', ' ')}, {when}": [scores[split][when][q] for q in quantities]
            for split in scores
            for when in ("before", "after")
        },
        [q.replace("_", " ") for q in quantities],
        run.plot_path("procrustes_before_after"),
        f"before vs after alignment: {'held out (the result) and ' * bool(len(held))}fit split "
        f"(optimistic){weights_note(cfg)}",
        "value",
    )
    return ProcrustesResult.model_validate(
        common_metrics(ctx)
        | {
            "strategy": cfg.procrustes.strategy,
            "scoring": p.scoring,
            "n_fit": len(fit),
            "n_held_out": len(held),
            "dim": int(images.shape[1]),
            "held_out": scores.get("held_out"),
            "fit_split_not_held_out": scores["fit_split"],
            "skipped": {}
            if len(held)
            else {"held_out": "procrustes.scoring = in-sample: fitted and scored on the same images"},
            "note": "after alignment the classifier has used the fit split's labels: not zero-shot any more",
        }
    )


RUNNERS = {"zeroshot": run_zeroshot, "gap": run_gap, "procrustes": run_procrustes}


def _mark(m: dict) -> str:
    return " (random weights)" if m.get("random_weights") else ""


def summary(metrics: dict) -> list[dict]:
    """Held-out Procrustes numbers first, then the gap, then zero-shot accuracy. Over 60 lines only
    by its row literals (one per number the table shows)."""
    rows = []
    if "procrustes" in metrics and metrics["procrustes"]["held_out"] is None:
        m, f = metrics["procrustes"], metrics["procrustes"]["fit_split_not_held_out"]
        rows.append(
            {
                "part": "procrustes",
                "what": f"in-sample ({m['n_fit']}, fitted and scored on them) matched cosine / accuracy, "
                f"before → after{_mark(m)}",
                "value": f"{f['before']['matched_cosine']:.4f} / {f['before']['accuracy']:.4f} → "
                f"{f['after']['matched_cosine']:.4f} / {f['after']['accuracy']:.4f}",
            }
        )
    elif "procrustes" in metrics:
        m = metrics["procrustes"]
        h, f = m["held_out"], m["fit_split_not_held_out"]
        rows += [
            {
                "part": "procrustes",
                "what": f"held-out ({m['n_held_out']}) cosine matched / unmatched, before → after{_mark(m)}",
                "value": f"{h['before']['matched_cosine']:.4f} / {h['before']['unmatched_cosine']:.4f} → "
                f"{h['after']['matched_cosine']:.4f} / {h['after']['unmatched_cosine']:.4f}",
            },
            {
                "part": "procrustes",
                "what": f"held-out gap, before → after{_mark(m)}",
                "value": f"{h['before']['gap']:.4f} → {h['after']['gap']:.4f}",
            },
            {
                "part": "procrustes",
                "what": f"held-out accuracy, before → after (after: uses fit labels){_mark(m)}",
                "value": f"{h['before']['accuracy']:.4f} → {h['after']['accuracy']:.4f}",
            },
            {
                "part": "procrustes",
                "what": f"fit split ({m['n_fit']}, NOT held out) matched cosine / accuracy after{_mark(m)}",
                "value": f"{f['after']['matched_cosine']:.4f} / {f['after']['accuracy']:.4f}",
            },
        ]
    if "gap" in metrics:
        m = metrics["gap"]
        rows += [
            {
                "part": "gap",
                "what": f"modality gap ‖mean x̂ − mean ŷ‖ (Liang MSCOCO {m['liang_mscoco_gap']}){_mark(m)}",
                "value": f"{m['gap']:.4f}",
            },
            {
                "part": "gap",
                "what": f"share of matched-pair distance the gap explains{_mark(m)}",
                "value": f"{m['gap_share_of_pair_distance']:.3f}",
            },
            {
                "part": "gap",
                "what": f"cosine matched / unmatched{_mark(m)}",
                "value": f"{m['matched_cosine']:.4f} / {m['unmatched_cosine']:.4f}",
            },
        ]
    if "zeroshot" in metrics:
        m = metrics["zeroshot"]
        rows += [
            {
                "part": "zeroshot",
                "what": f"{name} accuracy, {m['n_images']} images (95% CI){_mark(m)}",
                "value": f"{r['accuracy']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]",
            }
            for name, r in m["strategies"].items()
        ]
        rows += [
            {"part": "zeroshot", "what": f"{name}", "value": f"skipped: {why}"}
            for name, why in m["skipped"].items()
        ]
    return rows


def weights_files() -> list:
    from atml.models.weights import cached_open_clip_weights

    default = ClipModelConfig()
    return cached_open_clip_weights(((default.name, default.weights),))


EXPERIMENT = Experiment(
    name="clip",
    title=__doc__.strip().splitlines()[0],
    parts=PARTS,
    config=Config,
    prepare=prepare,
    runners=RUNNERS,
    results={"zeroshot": ZeroshotResult, "gap": GapResult, "procrustes": ProcrustesResult},
    summary=summary,
    headlines=HEADLINES,
    key_figures=KEY_FIGURES,
    weights_files=weights_files,
    non_result_keys=("model.cache", "model.batch_size"),
)
