"""vit: the parts' code — `prepare` and one runner per part (imports torch; the
experiment's settings and results are in its __init__)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from atml import plots
from atml.analysis.attention import cls_maps, entropy, rollout, spatial_spread, uniform_entropy, upsample
from atml.analysis.embeddings import project_2d
from atml.analysis.masking import (
    fill_patches,
    kept_patches,
    masked_patches,
    pixel_mask,
)
from atml.analysis.probe import fit_probe, probe_accuracy
from atml.data.draws import Draw, train_test_draws
from atml.data.photos import Photo, load_photos
from atml.data.photos import to_model_input as photo_input
from atml.data.preprocess import Preprocess, to_model_input
from atml.errors import UserError
from atml.experiments import RunContext, per_seed
from atml.experiments.vit import (
    AttentionResult,
    Config,
    MaskedResult,
    MaskingResult,
    PhotoMasked,
    PredictResult,
    ProbeResult,
)
from atml.feature_cache import Outputs
from atml.models.frozen import FrozenModel
from atml.models.vit import (
    AttentionMaps,
    check_is_vit,
    check_vit_name,
    forward_tokens,
    patch_grid,
    patch_size,
    pooled,
    prefix_tokens,
)
from atml.models.weights import timm_data_config
from atml.runs import Run
from atml.runtime import autocast, resolve_precision

log = logging.getLogger("atml")


DROPPED_COLOUR = (0.25, 0.45, 0.85)


@dataclass(frozen=True)
class VitContext(RunContext):
    vit: FrozenModel
    draws: dict[str, Draw] = field(default_factory=dict)  # the probe's train and test (prepare_draws)

    @property
    def train(self) -> Draw:
        return self.draws["train"]

    @property
    def test(self) -> Draw:
        return self.draws["test"]


def load_model(cfg: Config, device: torch.device) -> FrozenModel:
    m = cfg.model
    model = FrozenModel.load(
        "timm", m.name, m.weights, allow_download=cfg.data.download, init_seed=cfg.seed, device=device,
        precision=resolve_precision(device, m.precision), **({"img_size": m.img_size} if m.img_size else {}),
    )  # fmt: skip
    p = model.preprocess
    return model.with_preprocess(
        replace(
            p,
            crop_pct=m.crop_pct or p.crop_pct,
            interpolation=p.interpolation if m.interpolation == "model" else m.interpolation,
        )
    )


def splits(cfg: Config) -> tuple[Draw, Draw]:
    d = cfg.data
    return train_test_draws(d.dataset, d.root, d.download, d.train_images, d.test_images, d.subset_seed)


def probed_layers(ctx: VitContext) -> list[int]:
    depth, layers = len(ctx.vit.model.blocks), ctx.cfg.probe.layers
    return sorted({i % depth for i in layers}) if layers is not None else list(range(depth))


def prepare(cfg: Config, device: torch.device, parts: list[str]) -> VitContext:
    """The model, its name checked before its weights are read; each part then adds its checks."""
    try:
        check_vit_name(cfg.model.name)
    except ValueError as exc:
        raise UserError(f"model.name: {exc}") from None
    vit = load_model(cfg, device)
    try:
        check_is_vit(vit.model)
    except ValueError as exc:
        raise UserError(f"model.name: {exc}") from None
    return VitContext(cfg, device, tuple(parts), vit)


def check_block(ctx: VitContext, setting: str, index: int) -> None:
    depth = len(ctx.vit.model.blocks)
    if not -depth <= index < depth:
        raise UserError(f"{setting}: {ctx.cfg.model.name} has blocks 0…{depth - 1}")


def prepare_photos(part: str, ctx: VitContext) -> None:
    load_photos(ctx.cfg.data.images)  # a missing or unreadable photo is named now


def prepare_attention(part: str, ctx: VitContext) -> None:
    check_block(ctx, f"attention.layer={ctx.cfg.attention.layer}", ctx.cfg.attention.layer)
    prepare_photos(part, ctx)


def prepare_masking(part: str, ctx: VitContext) -> None:
    m = ctx.cfg.masking
    if any(not 0 <= r < 1 for r in m.ratios):
        raise UserError(f"masking.ratios={m.ratios}: each must be in [0, 1)")
    if m.source == "photos":
        prepare_photos(part, ctx)
    else:
        prepare_draws(ctx)


def prepare_probe(part: str, ctx: VitContext) -> None:
    for index in ctx.cfg.probe.layers or ():
        check_block(ctx, f"probe.layers={ctx.cfg.probe.layers}", index)
    prepare_draws(ctx)


def prepare_draws(ctx: VitContext) -> None:
    """The probe's training and test draws (masking scores the masked images with that probe),
    drawn once per run and checked against probe.split."""
    if ctx.draws:
        return
    cfg = ctx.cfg
    train, test = splits(cfg)
    fitted_on = train.labels if cfg.probe.split is None else test.labels
    if len(set(fitted_on.tolist())) < 2:
        raise UserError(f"the probe's fitting images of {cfg.data.dataset} hold one class; draw more")
    scored = len(test.labels) * cfg.probe.split if cfg.probe.split else len(test.labels)
    if cfg.probe.split and not 1 <= scored <= len(test.labels) - 2:
        raise UserError(
            f"probe.split={cfg.probe.split} of {len(test.labels)} test images leaves too few to fit "
            "or to score"
        )
    ctx.draws.update(train=train, test=test)


def weights_note(cfg: Config) -> str:
    return " — RANDOM weights" if cfg.model.weights == "none" else f" — {cfg.model.name}"


def common_metrics(ctx: VitContext) -> dict:
    return {
        "model": ctx.cfg.model.name,
        **ctx.vit.describe(),
        "input_size": ctx.vit.preprocess.size,
    }


def photo_batch(ctx: VitContext) -> tuple[list[Photo], torch.Tensor]:
    """The photos through timm's own eval transform (resize, centre crop, normalise)."""
    photos = load_photos(ctx.cfg.data.images)
    pp = ctx.vit.preprocess  # the weights' own, or the config's crop_pct and interpolation
    data_config = timm_data_config(ctx.vit.model) | {
        "crop_pct": pp.crop_pct,
        "interpolation": pp.interpolation,
    }
    return photos, torch.stack([photo_input(p, data_config) for p in photos])


def displayable(x: torch.Tensor, p: Preprocess) -> np.ndarray:
    """A normalised model input (3, H, W) back to an RGB array in [0, 1]: exactly what the model saw."""
    mean, std = torch.tensor(p.mean).view(3, 1, 1), torch.tensor(p.std).view(3, 1, 1)
    return (x.cpu().float() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


@per_seed
def run_predict(ctx: VitContext, run: Run) -> PredictResult:
    figures: dict[str, bytes] = {}
    cfg, device, p = ctx.cfg, ctx.device, ctx.vit
    photos, x = photo_batch(ctx)
    with torch.no_grad(), autocast(device, p.precision):
        probabilities = p.model(x.to(device)).float().softmax(-1).cpu()
    names = p.categories or tuple(f"class {i}" for i in range(probabilities.shape[1]))
    top = {}
    for photo, row in zip(photos, probabilities):
        values, indices = row.topk(min(cfg.predict.top_k, len(row)))
        top[photo.name] = [(names[i], float(v)) for v, i in zip(values, indices)]
        log.info(
            f"  {photo.name}: " + ", ".join(f"{n.split(',')[0]} {v:.3f}" for n, v in top[photo.name]),
        )
    figures["predict_topk"] = plots.predictions(
        {ph.name: displayable(xi, ctx.vit.preprocess) for ph, xi in zip(photos, x)},
        top,
        f"top-{cfg.predict.top_k} ImageNet classes{weights_note(cfg)}",
    )
    return PredictResult.model_validate(
        common_metrics(ctx)
        | {
            "photos": {
                name: [{"class": n, "probability": round(v, 5)} for n, v in t] for name, t in top.items()
            }
        }
    ).with_outputs(figures)


def attention_overlays(
    ctx: VitContext,
    photos: list[Photo],
    x: torch.Tensor,
    heads: torch.Tensor,
    rolled: torch.Tensor,
    layer: int,
    depth: int,
) -> dict[str, bytes]:
    """Each photo with its head-mean and rolled-out class-token attention in red; and each head's."""
    figures: dict[str, bytes] = {}
    cfg = ctx.cfg
    size = tuple(x.shape[-2:])
    mean_map, rolled_map, head_maps = (
        upsample(heads.mean(1), size),
        upsample(rolled, size),
        upsample(heads, size),
    )
    figures["attention_raw"] = plots.heatmaps(
        {photo.name: heads.mean(1)[i].float().numpy() for i, photo in enumerate(photos)},
        f"block {layer}: class-token attention on the {'×'.join(map(str, heads.shape[-2:]))} patches, head "
        f"mean, unsmoothed{weights_note(cfg)}",
        "attention weight",
    )
    overlays, per_head_rows = {}, {}
    for i, photo in enumerate(photos):
        image = displayable(x[i], ctx.vit.preprocess)
        overlays[photo.name] = {
            "model input": (image, None),
            f"block {layer}: class-token attention, head mean": (image, mean_map[i].numpy()),
            f"rollout over {depth} blocks": (image, rolled_map[i].numpy()),
        }
        per_head_rows[photo.name] = {
            f"head {h}": (image, head_maps[i, h].numpy()) for h in range(heads.shape[1])
        }
    alpha = cfg.attention.alpha
    figures["attention_overlay"] = plots.overlay_grid(
        overlays,
        f"where the class token looks (red){weights_note(cfg)}",
        alpha,
    )
    figures["attention_heads"] = plots.overlay_grid(
        per_head_rows,
        f"block {layer}, each head's class-token attention{weights_note(cfg)}",
        alpha,
    )
    return figures


def attention_by_block_figures(
    cfg: Config, head_entropy: torch.Tensor, head_spread: torch.Tensor, grid: tuple[int, int]
) -> dict[str, bytes]:
    """Entropy and spatial spread of the class token's attention, block by block."""
    figures: dict[str, bytes] = {}
    layers = list(range(len(head_entropy)))
    figures["attention_entropy"] = plots.lines(
        {
            "mean over heads": (layers, head_entropy.mean(1).tolist()),
            "least (most focused) head": (layers, head_entropy.min(1).values.tolist()),
            f"uniform over {grid[0] * grid[1]} patches": (layers, [uniform_entropy(grid)] * len(layers)),
        },
        f"class-token attention entropy by block{weights_note(cfg)}",
        "block",
        "entropy (nats)",
    )
    figures["attention_spread"] = plots.lines(
        {
            "mean over heads": (layers, head_spread.mean(1).tolist()),
            "least head": (layers, head_spread.min(1).values.tolist()),
        },
        f"spatial spread of class-token attention by block{weights_note(cfg)}",
        "block",
        "spread (patches, weighted std of position)",
    )
    return figures


@per_seed
def run_attention(ctx: VitContext, run: Run) -> AttentionResult:
    cfg, device = ctx.cfg, ctx.device
    model = ctx.vit.model
    photos, x = photo_batch(ctx)
    n_prefix, grid = prefix_tokens(model), patch_grid(model)
    with torch.no_grad(), AttentionMaps(model) as captured:
        model(x.to(device))  # fp32: attention maps are read, not only used
    attentions = [captured.maps[i].cpu() for i in sorted(captured.maps)]
    layer = cfg.attention.layer % len(attentions)
    heads = cls_maps(attentions[layer], n_prefix, grid)  # (photos, heads, rows, cols)
    rolled = rollout(attentions, cfg.attention.rollout_residual)[:, 0, n_prefix:].reshape(len(photos), *grid)
    figures = attention_overlays(ctx, photos, x, heads, rolled, layer, len(attentions))
    all_cls = torch.stack(
        [cls_maps(a, n_prefix, grid) for a in attentions], 1
    )  # (photos, layers, heads, rows, cols)
    head_entropy, head_spread = (
        entropy(all_cls).mean(0),
        spatial_spread(all_cls).mean(0),
    )  # (layers, heads), mean over photos
    figures |= attention_by_block_figures(cfg, head_entropy, head_spread, grid)
    cls_share = torch.stack([a[:, :, 0, n_prefix:].sum(-1).mean() for a in attentions])
    return AttentionResult.model_validate(
        common_metrics(ctx)
        | {
            "photos": [p.name for p in photos],
            "grid": list(grid),
            "prefix_tokens": n_prefix,
            "layer": layer,
            "uniform_entropy": uniform_entropy(grid),
            "last_layer_entropy_per_head": [round(v, 4) for v in head_entropy[layer].tolist()],
            "last_layer_spread_per_head": [round(v, 4) for v in head_spread[layer].tolist()],
            "entropy_by_layer": [round(v, 4) for v in head_entropy.mean(1).tolist()],
            "spread_by_layer": [round(v, 4) for v in head_spread.mean(1).tolist()],
            "cls_attention_on_patches_by_layer": [round(v, 4) for v in cls_share.tolist()],
        }
    ).with_outputs(figures)


def token_features(ctx: VitContext, split: Draw, split_name: str) -> Outputs:
    """Class-token and mean-patch features after every probed block and after the final norm,
    from one no-grad pass over `split`, through the feature cache."""
    model, taps = ctx.vit.model, probed_layers(ctx)
    n_prefix = prefix_tokens(model)

    def forward(x):
        final, tapped = forward_tokens(model, x, taps=taps)
        out = {f"final/{k}": v for k, v in pooled(final, n_prefix).items()}
        for layer, tokens in tapped.items():
            out |= {f"block{layer}/{k}": v for k, v in pooled(tokens, n_prefix).items()}
        return out

    cfg = ctx.cfg
    return ctx.vit.features(
        forward,
        split,
        dataset=cfg.data.dataset,
        split_name=split_name,
        readouts={"taps": taps, "pooled": ["cls", "mean"]},
        batch_size=cfg.model.batch_size,
        cache=cfg.model.cache,
        label=f"{cfg.model.name} {cfg.data.dataset} {split_name} ({len(taps)} blocks + final, cls + mean)",
    )


def probe_data(ctx: VitContext) -> tuple[dict, dict, np.ndarray, np.ndarray, str, str]:
    """(training features, scored features, their labels, where each comes from): the training and
    test draws, or with probe.split one test draw split by scikit-learn (not stratified)."""
    cfg = ctx.cfg
    if cfg.probe.split is None:
        train_f, test_f = token_features(ctx, ctx.train, "train"), token_features(ctx, ctx.test, "test")
        return (
            train_f,
            test_f,
            ctx.train.labels.numpy(),
            ctx.test.labels.numpy(),
            ctx.train.source,
            ctx.test.source,
        )
    from sklearn.model_selection import train_test_split

    features = token_features(ctx, ctx.test, "test")
    fit, scored = train_test_split(
        np.arange(len(ctx.test.labels)), test_size=cfg.probe.split, random_state=ctx.seeds.value("split")
    )
    labels = ctx.test.labels.numpy()
    where = f"{ctx.test.source}, split {len(fit)}/{len(scored)} (seed {cfg.seed})"
    return (
        {k: v[fit] for k, v in features.items()},
        {k: v[scored] for k, v in features.items()},
        labels[fit],
        labels[scored],
        f"{where}: the {len(fit)}",
        f"{where}: the {len(scored)}",
    )


@per_seed
def run_probe(ctx: VitContext, run: Run) -> ProbeResult:
    figures: dict[str, bytes] = {}
    cfg = ctx.cfg
    train_f, test_f, y_train, y_test, train_source, test_source = probe_data(ctx)
    keys = [*(f"block{i}" for i in probed_layers(ctx)), "final"]
    scores = {}
    for key in keys:
        scores[key] = {
            readout: probe_accuracy(
                train_f[f"{key}/{readout}"].numpy(),
                y_train,
                test_f[f"{key}/{readout}"].numpy(),
                y_test,
                cfg.probe.c,
                cfg.probe.max_iter,
                ctx.seeds.value("solver"),
                cfg.probe.standardise,
            ).describe()
            for readout in ("cls", "mean")
        }
        log.info(
            f"  {key}: class token {scores[key]['cls']['accuracy']:.3f}, patch mean "
            f"{scores[key]['mean']['accuracy']:.3f}",
        )
    label = {"cls": "class token", "mean": "mean of patch tokens"}
    figures["probe_by_layer"] = plots.lines(
        {label[r]: (keys, [scores[k][r]["accuracy"] for k in keys]) for r in ("cls", "mean")},
        f"linear probe on {cfg.data.dataset}, held-out accuracy (95% CI){weights_note(cfg)}",
        "block",
        "accuracy",
        bands={
            label[r]: ([scores[k][r]["ci_low"] for k in keys], [scores[k][r]["ci_high"] for k in keys])
            for r in ("cls", "mean")
        },
    )
    every = cfg.probe.pca_images == "all"  # the fitted images too (the original's figure)
    shown = {
        r: torch.cat([train_f[f"final/{r}"], test_f[f"final/{r}"]]) if every else test_f[f"final/{r}"]
        for r in ("cls", "mean")
    }
    shown_labels = np.concatenate([y_train, y_test]) if every else y_test
    figures["probe_pca"] = plots.scatter_grid(
        {
            "PCA": {
                f"{label[r]} (held-out accuracy {scores['final'][r]['accuracy']:.3f})": (
                    project_2d(shown[r].numpy(), "pca", ctx.seeds.value("projection")),
                    shown_labels,
                )
                for r in ("cls", "mean")
            }
        },
        ctx.test.classes,
        f"final features of the {len(shown_labels)} {'fitted and scored' if every else 'scored'} images, "
        f"2-D PCA{weights_note(cfg)}",
    )
    return ProbeResult.model_validate(
        common_metrics(ctx)
        | {
            "dataset": cfg.data.dataset,
            "train": train_source,
            "test": test_source,
            "chance": 1 / len(ctx.test.classes),
            "final": scores["final"],
            "by_layer": scores,
        }
    ).with_outputs(figures)


def masked_images(ctx: VitContext, x: torch.Tensor, masked: torch.Tensor) -> list[np.ndarray]:
    """Model inputs with their `masked` patches as the figure shows them: dropped patches in a
    colour no dataset image has (the model never sees them), filled ones as the model sees them."""
    cfg, model = ctx.cfg, ctx.vit.model
    grid, patch = patch_grid(model), patch_size(model)
    hidden = torch.stack([pixel_mask(grid, patch, row) for row in masked]).unsqueeze(1)
    if cfg.masking.fill != "drop":
        x = fill_patches(x, hidden, cfg.masking.fill, ctx.seeds.generator("masking"))
    images = [displayable(xi, ctx.vit.preprocess) for xi in x]
    if cfg.masking.fill == "drop":
        for image, h in zip(images, hidden):
            image[h[0].numpy()] = DROPPED_COLOUR
    return images


def masking_figures(
    cfg: Config, results: dict[str, dict[str, MaskedResult]], examples: dict
) -> dict[str, bytes]:
    """Each quantity against the masked share, one line per scheme; the masked example inputs."""
    figures: dict[str, bytes] = {}
    m = cfg.masking
    fill_note = {
        "drop": "masked tokens dropped (shown blue)",
        "zero": "masked pixels set to the mean",
        "noise": "masked pixels replaced by noise",
    }[m.fill]
    for quantity, what in (
        ("agreement", "agreement with the unmasked top-1"),
        ("accuracy", f"probe accuracy on {cfg.data.dataset}"),
        ("confidence", "mean top-1 probability"),
    ):
        figures[f"masking_{quantity}"] = plots.lines(
            {s: (m.ratios, [getattr(results[s][f"{r:.2f}"], quantity) for r in m.ratios]) for s in m.schemes},
            f"{what} against the masked share ({fill_note}){weights_note(cfg)}",
            "share of patches masked",
            quantity,
        )
    figures["masking_examples"] = plots.overlay_grid(examples, f"masked inputs: {fill_note}")
    return figures


def draw_masks(
    ctx: VitContext, scheme: str, ratio: float, n: int, generator: torch.Generator
) -> torch.Tensor:
    """[n, k] indices of the patches each of n images hides (one stream: `generator`)."""
    m, grid = ctx.cfg.masking, patch_grid(ctx.vit.model)
    return torch.stack([masked_patches(grid, ratio, scheme, generator, m.centre, m.count) for _ in range(n)])


def masked_forward(
    ctx: VitContext, x: torch.Tensor, masked: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ImageNet logits, final class-token features) of inputs with `masked` patches hidden."""
    model, fill = ctx.vit.model, ctx.cfg.masking.fill
    grid, patch = patch_grid(model), patch_size(model)
    with torch.no_grad(), autocast(ctx.device, ctx.vit.precision):
        if fill == "drop":
            keep = torch.stack([kept_patches(grid, row) for row in masked])
            final, _ = forward_tokens(model, x, keep=keep)
        else:
            pixels = torch.stack([pixel_mask(grid, patch, row) for row in masked]).unsqueeze(1)
            final, _ = forward_tokens(model, fill_patches(x, pixels, fill, generator))
        return model.forward_head(final).float(), final[:, 0].float()


def run_masking_photos(ctx: VitContext, run: Run) -> MaskingResult:
    """The original's masking: each photo masked once per scheme and ratio, the ImageNet head's
    top-1 (and its probability) per masked photo; a figure of the masked photos with their top-1."""
    figures: dict[str, bytes] = {}
    cfg, m = ctx.cfg, ctx.cfg.masking
    photos, x = photo_batch(ctx)
    x = x.to(ctx.device)
    names = ctx.vit.categories or ()
    generator = ctx.seeds.generator("masking")
    results: dict[str, dict[str, dict[str, PhotoMasked]]] = {photo.name: {} for photo in photos}
    examples: dict[str, dict[str, tuple[np.ndarray, None]]] = {}
    captions: dict[str, dict[str, str]] = {}
    unmasked = masked_forward(ctx, x, torch.zeros(len(photos), 0, dtype=torch.long), generator)[0].softmax(-1)
    for scheme in m.schemes:
        for ratio in m.ratios:
            masked = draw_masks(ctx, scheme, ratio, len(photos), generator)
            probabilities = masked_forward(ctx, x, masked, generator)[0].softmax(-1)
            shown = masked_images(ctx, x, masked)
            for i, photo in enumerate(photos):
                top = int(probabilities[i].argmax())
                name = names[top].split(",")[0] if top < len(names) else f"class {top}"
                results[photo.name].setdefault(scheme, {})[f"{ratio:.2f}"] = PhotoMasked(
                    top1=name,
                    probability=float(probabilities[i, top]),
                    patches_masked=int(masked.shape[1]),
                    same_top1_as_unmasked=top == int(unmasked[i].argmax()),
                )
                row, column = f"{photo.name}, {scheme}", f"{ratio:.0%} masked"
                examples.setdefault(row, {})[column] = (shown[i], None)
                captions.setdefault(row, {})[column] = (
                    f"{masked.shape[1]} patches: {name[:22]} {float(probabilities[i, top]):.3f}"
                )
            log.info(
                f"  {scheme} {ratio:.1f}: "
                + ", ".join(f"{p.name} → {results[p.name][scheme][f'{ratio:.2f}'].top1}" for p in photos)
            )
    figures["masking_photos"] = plots.overlay_grid(
        examples,
        f"masked photos and the top-1 of each ({m.fill} fill, {m.centre} centre){weights_note(cfg)}",
        captions=captions,
    )
    return MaskingResult.model_validate(
        common_metrics(ctx)
        | {
            "source": "photos",
            "fill": m.fill,
            "grid": list(patch_grid(ctx.vit.model)),
            "photos": results,
            "skipped": {"results": "masking.source = photos: no labelled dataset was masked"},
        }
    ).with_outputs(figures)


@per_seed
def run_masking(ctx: VitContext, run: Run) -> MaskingResult:
    """Every test image masked at every ratio by each scheme; the ImageNet head's top-1 compared
    with its unmasked top-1, and a probe fitted on unmasked training features scoring the masked
    images against their labels. Every mask of a run comes from one generator, one reproducible
    stream. With masking.source = photos, the original's way instead (run_masking_photos)."""
    if ctx.cfg.masking.source == "photos":
        return run_masking_photos(ctx, run)
    cfg, device, p = ctx.cfg, ctx.device, ctx.vit
    m = cfg.masking
    train, test = ctx.train, ctx.test
    test = test.head(min(m.images, len(test.labels)))
    train_f = token_features(ctx, train, "train")
    probe = fit_probe(
        train_f["final/cls"].numpy(),
        train.labels.numpy(),
        cfg.probe.c,
        cfg.probe.max_iter,
        ctx.seeds.value("solver"),
    )
    grid = patch_grid(p.model)
    generator = ctx.seeds.generator("masking")
    nothing = torch.zeros(0, dtype=torch.long)
    reference_top1 = torch.cat(
        [
            masked_forward(
                ctx, to_model_input(chunk.to(device), p.preprocess), nothing.expand(len(chunk), 0), generator
            )[0]
            .argmax(1)
            .cpu()
            for chunk in test.images.split(cfg.model.batch_size)
        ]
    )
    results: dict[str, dict[str, MaskedResult]] = {}
    examples: dict[str, dict[str, tuple[np.ndarray, None]]] = {}
    shown = [0.0, *sorted(m.ratios)[len(m.ratios) // 2 :: max(1, len(m.ratios) // 4)]][:4]
    for scheme in m.schemes:
        results[scheme] = {}
        for ratio in m.ratios:
            top1, confidence, features = [], [], []
            for start in range(0, len(test.labels), cfg.model.batch_size):
                chunk = test.images[start : start + cfg.model.batch_size]
                x = to_model_input(chunk.to(device), p.preprocess)
                masked = draw_masks(ctx, scheme, ratio, len(chunk), generator)
                logits, cls = masked_forward(ctx, x, masked, generator)
                probabilities = logits.softmax(-1)
                top1.append(probabilities.argmax(1).cpu())
                confidence.append(probabilities.max(1).values.cpu())
                features.append(cls.cpu())
                if start == 0 and ratio in shown:
                    for i, image in enumerate(masked_images(ctx, x[: m.examples], masked[: m.examples])):
                        examples.setdefault(f"{scheme}, image {i}", {})[f"{ratio:.0%} masked"] = (image, None)
            predicted = probe.predict(torch.cat(features).numpy())
            results[scheme][f"{ratio:.2f}"] = MaskedResult(
                agreement=float((torch.cat(top1) == reference_top1).float().mean()),
                accuracy=float((predicted == test.labels.numpy()).mean()),
                confidence=float(torch.cat(confidence).mean()),
            )
            r = results[scheme][f"{ratio:.2f}"]
            log.info(
                f"  {scheme} {ratio:.1f}: agreement {r.agreement:.3f}, probe accuracy {r.accuracy:.3f}, "
                f"confidence {r.confidence:.3f}",
            )
    figures = masking_figures(cfg, results, examples)
    return MaskingResult.model_validate(
        common_metrics(ctx)
        | {
            "source": "dataset",
            "dataset": cfg.data.dataset,
            "images": len(test.labels),
            "fill": m.fill,
            "grid": list(grid),
            "probe_fitted_on": f"{train.source} (unmasked, final class token)",
            "chance": 1 / len(test.classes),
            "results": results,
        }
    ).with_outputs(figures)
