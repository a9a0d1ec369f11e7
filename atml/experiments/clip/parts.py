"""clip: the parts' code — `prepare` and one runner per part (imports torch; the
experiment's settings and results are in its __init__)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from atml import plots
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
from atml.data.draws import Draw, draw
from atml.data.prompts import PUBLISHED, class_prompt_names, fill, published_templates
from atml.errors import UserError, shorten
from atml.experiments import RunContext, per_seed
from atml.experiments.clip import Config, GapResult, ProcrustesResult, ZeroshotResult
from atml.models.frozen import FrozenModel
from atml.models.weights import open_clip_tokenizer
from atml.runs import Run
from atml.runtime import autocast, resolve_precision

log = logging.getLogger("atml")


LIANG_MSCOCO_GAP = 0.82


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
    unknown = sorted(set(cfg.zeroshot.class_names) - set(test.classes))
    if unknown:
        raise UserError(
            f"zeroshot.class_names: {shorten(unknown[0], 60)} is not a class of {cfg.data.dataset}; "
            f"its classes: {', '.join(test.classes)}"
        )
    return ClipContext(cfg, device, tuple(parts), clip, test, pair_positions(cfg, test))


def check_strategy(part: str, ctx: ClipContext) -> None:
    """The part's `strategy` names a zeroshot strategy with templates for this dataset."""
    cfg = ctx.cfg
    name = getattr(cfg, part).strategy
    if name not in cfg.zeroshot.strategies:
        defined = ", ".join(cfg.zeroshot.strategies)
        raise UserError(f"{part}.strategy='{name}' is not a zeroshot strategy; defined: {defined}")
    if strategy_templates(cfg, name) is None:
        raise UserError(
            f"{part}.strategy='{name}' is CLIP's published ensemble, and CLIP published none for "
            f"{cfg.data.dataset}"
        )


def prepare_procrustes(part: str, ctx: ClipContext) -> None:
    """Its strategy, and (held-out scoring) enough images to fit on and to hold out."""
    check_strategy(part, ctx)
    p = ctx.cfg.procrustes
    if p.scoring == "held-out":
        n = min(p.images or len(ctx.pair_positions), len(ctx.pair_positions))
        n_fit = round(n * p.fit_fraction)
        if n_fit < 2 or n - n_fit < 2:
            raise UserError(
                f"procrustes: {n} images split {n_fit}/{n - n_fit} leaves fewer than 2 to fit on or to hold "
                "out; raise procrustes.images or data.test_images"
            )


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


@per_seed
def run_zeroshot(ctx: ClipContext, run: Run) -> ZeroshotResult:
    figures: dict[str, bytes] = {}
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
        figures["zeroshot_per_class"] = plots.grouped_bars(
            {f"{s} ({r['accuracy']:.3f})": list(r["per_class"].values()) for s, r in results.items()},
            list(test.classes),
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
    ).with_outputs(figures)


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


@per_seed
def run_gap(ctx: ClipContext, run: Run) -> GapResult:
    """The gap as a number, norms before and after normalisation, matched vs unmatched cosine, and
    the joint maps. Slightly over 60 lines: numbers, two figures and the result, in that order."""
    figures: dict[str, bytes] = {}
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
            ctx.seeds.value("projection"),
            text_labels,
            normalise=kind == "normalised",
        )
        for kind in cfg.gap.embeddings
        for m in cfg.gap.maps
    }
    figures["gap_maps"] = plots.modality_maps(
        maps,
        test.classes,
        f"image and text embeddings together ({' vs '.join(cfg.gap.embeddings)}){weights_note(cfg)}",
        columns=len(cfg.gap.maps),
    )
    if cfg.gap.text_norms == "prompts":
        text_norms, text_what = prompts.flatten(0, 1), "text (every prompt)"
    else:  # each image's caption: its class's text, raw (the mean of its prompts' embeddings)
        text_norms, text_what = prompts.mean(1)[test.labels], "text (every image's caption)"
    figures["gap_norms_similarity"] = plots.histograms(
        {
            "norms before normalisation": {
                "image": images.norm(dim=-1).numpy(),
                text_what: text_norms.norm(dim=-1).numpy(),
            },
            "cosine similarity, image vs class text": {
                "matched (own class)": matched.numpy(),
                "unmatched": unmatched.numpy(),
            },
        },
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
            "norms_before": {"image": norm_summary(images), "text": norm_summary(text_norms)},
            "norms_after": {
                "image": norm_summary(torch.nn.functional.normalize(images, dim=-1)),
                "text": norm_summary(torch.nn.functional.normalize(text_norms, dim=-1)),
            },
            "map_images": n,
        }
    ).with_outputs(figures)


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


@per_seed
def run_procrustes(ctx: ClipContext, run: Run) -> ProcrustesResult:
    """The rotation is fitted on one part of the images (with their labels' texts as targets) and
    scored on the rest: the held-out numbers are the result; fit-split numbers are labelled.
    Slightly over 60 lines: fit, score both splits, log, two figures and the metrics in order."""
    figures: dict[str, bytes] = {}
    cfg, p = ctx.cfg, ctx.cfg.procrustes
    test = ctx.pairs
    texts = class_texts(ctx, p.strategy)
    n = min(p.images or len(test.labels), len(test.labels))
    order = torch.randperm(n, generator=ctx.seeds.generator("split"))
    n_fit = n if p.scoring == "in-sample" else round(n * p.fit_fraction)
    fit, held = order[:n_fit], order[n_fit:]
    embedded = image_embeddings(ctx)[ctx.pair_positions[:n]]
    images = torch.nn.functional.normalize(embedded.double(), dim=-1).float()
    rotation, scale = fit_rotation(images[fit], texts[test.labels[fit]])
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
    figures["procrustes_maps"] = plots.modality_maps(
        {
            title: joint_map(points[shown], test.labels[shown], texts, method, ctx.seeds.value("projection"))
            for method in p.maps
            for title, points in (
                (f"{METHOD_NAMES[method]}: {which}, before alignment (n={len(shown)})", images),
                (f"{METHOD_NAMES[method]}, after: images {after}", aligned),
            )
        },
        test.classes,
        f"orthogonal Procrustes, unit embeddings{weights_note(cfg)}",
        columns=2,
    )
    quantities = ("matched_cosine", "unmatched_cosine", "gap", "accuracy")
    figures["procrustes_before_after"] = plots.grouped_bars(
        {
            f"{split.replace('_', ' ')}, {when}": [scores[split][when][q] for q in quantities]
            for split in scores
            for when in ("before", "after")
        },
        [q.replace("_", " ") for q in quantities],
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
            "scale": scale,
            "dim": int(images.shape[1]),
            "held_out": scores.get("held_out"),
            "fit_split_not_held_out": scores["fit_split"],
            "skipped": {}
            if len(held)
            else {"held_out": "procrustes.scoring = in-sample: fitted and scored on the same images"},
            "note": "after alignment the classifier has used the fit split's labels: not zero-shot any more",
        }
    ).with_outputs(figures)
