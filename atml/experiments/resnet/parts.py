"""resnet: the parts' code — `prepare` and one runner per part (imports torch; the
experiment's settings and results are in its __init__)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from atml import distributed, plots
from atml.analysis.embeddings import project_2d
from atml.analysis.separability import knn_accuracy, silhouette
from atml.data.batching import TensorBatches
from atml.data.draws import Draw, train_test_draws
from atml.data.preprocess import Preprocess, to_model_input
from atml.errors import UserError
from atml.experiments import RunContext, per_seed
from atml.experiments.resnet import (
    BaselineResult,
    CompareDepthResult,
    Config,
    ConfusionResult,
    FeaturesResult,
    FinetuneConfig,
    HeadTrainConfig,
    NoResidualResult,
    TransferConfig,
    TransferResult,
)
from atml.feature_cache import Outputs
from atml.models.frozen import FrozenModel
from atml.models.modes import evaluating
from atml.models.resnet import (
    Policy,
    PooledFeatures,
    apply_policy,
    remove_shortcuts,
    replace_head,
    residual_blocks,
)
from atml.runs import Run
from atml.runtime import autocast, resolve_precision
from atml.training import Checkpointing, fit

log = logging.getLogger("atml")


HEAD_LAYER = "layer4"  # the head reads layer4's pooled output, which is what ResNet's avgpool gives fc


TRANSFER_POLICY: dict[str, Policy] = {
    "frozen": "frozen",
    "last-block": "last-block",
    "full": "full",
    "scratch": "full",
}


def splits(cfg: Config) -> tuple[Draw, Draw]:
    d = cfg.data
    return train_test_draws(d.dataset, d.root, d.download, d.train_images, d.test_images, d.subset_seed)


@dataclass(frozen=True)
class ResnetContext(RunContext):
    models: dict[tuple[str, str], FrozenModel]  # (arch, weights) → the frozen model on the device
    draws: dict[str, tuple[Draw, Draw]]  # dataset → its (training, validation) draws

    def frozen(self, arch: str, weights: str | None = None) -> FrozenModel:
        """`arch` with the run's weights (or `weights`, e.g. "none" for the from-scratch setting)."""
        return self.models[(arch, weights or self.cfg.model.weights)]

    def splits(self, cfg: Config | None = None) -> tuple[Draw, Draw]:
        """The draws of `cfg`'s dataset (default: the run's; the transfer part's is another)."""
        return self.draws[(cfg or self.cfg).data.dataset]


def load_model(cfg: Config, arch: str, weights: str, device: torch.device) -> FrozenModel:
    """A frozen torchvision model, its inputs resized to model.img_size with its weights' normalisation."""
    model = FrozenModel.load(
        "torchvision", arch, weights, allow_download=cfg.data.download, init_seed=cfg.seed, device=device,
        precision=precision_of(cfg, device),
    )  # fmt: skip
    p = model.preprocess
    return model.with_preprocess(Preprocess(cfg.model.img_size, p.mean, p.std, p.interpolation))


def precision_of(cfg: Config, device: torch.device) -> str:
    """model.precision resolved: `auto` is bf16 where the hardware runs it natively, except with
    random weights. An untrained ResNet in eval mode (BatchNorm with unit running statistics) lets
    activations grow to ~1e4 over 50 blocks, and bf16's 8-bit mantissa then erases most of what
    tells images apart (measured: FashionMNIST head accuracy 0.41 in bf16, near 0.5 in fp32)."""
    if cfg.model.precision == "auto" and cfg.model.weights == "none":
        return "fp32"
    return resolve_precision(device, cfg.model.precision)


def on_dataset(cfg: Config, dataset: str) -> Config:
    """The run's config with another dataset (same sizes, root, resolution): the transfer target."""
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"dataset": dataset})})


def shortcuts_off(cfg: Config) -> tuple[str, ...]:
    """The blocks every part switches off: none, unless --no-residual."""
    return tuple(cfg.no_residual.blocks) if cfg.model.no_residual else ()


def backbone(frozen_model: FrozenModel, off: tuple[str, ...]) -> torch.nn.Module:
    """A copy of the frozen model with the shortcuts of blocks `off` switched off: the caller may
    move or reformat it without touching the model other parts copy from."""
    model = frozen_model.copy_of_model()
    remove_shortcuts(model, list(off))
    return model


def prepare(cfg: Config, device: torch.device, parts: list[str]) -> ResnetContext:
    """The model's weights (offline, a missing file is named at once), its shortcuts when every
    part runs without them, and the dataset's draws, checked against the batch size."""
    models = {(cfg.model.name, cfg.model.weights): load_model(cfg, cfg.model.name, cfg.model.weights, device)}
    if cfg.model.no_residual:
        check_shortcut_blocks(models[(cfg.model.name, cfg.model.weights)], cfg)
    draws = {cfg.data.dataset: splits(cfg)}
    train, _ = draws[cfg.data.dataset]
    if len(train.labels) < cfg.train.batch_size:
        raise UserError(
            f"train.batch_size={cfg.train.batch_size} exceeds the {len(train.labels)} training images"
        )
    return ResnetContext(cfg, device, tuple(parts), models, draws)


def check_shortcut_blocks(frozen_model: FrozenModel, cfg: Config) -> None:
    try:
        backbone(frozen_model, tuple(cfg.no_residual.blocks))
    except ValueError as exc:
        raise UserError(f"no_residual.blocks: {exc}") from None


def check_splits_over_ranks(key: str, ft: FinetuneConfig, cfg: Config, images: int) -> None:
    """Every fine-tuning batch, the last partial one too where train.drop_last is false, splits
    evenly over the ranks and gives BatchNorm more than one image."""
    ranks, last = distributed.world_size(), 0 if cfg.train.drop_last else images % ft.batch_size
    if ft.batch_size % ranks or last % ranks or (last and last // ranks < 2):
        what = f"{key}.batch_size={ft.batch_size}" + (
            f" (last batch {last} of {images} images)" if last else ""
        )
        raise UserError(
            f"{what} does not split into batches of 2 or more images over {ranks} rank{'s' * (ranks > 1)}"
            + ("; set train.drop_last=true" if last else "")
        )


def prepare_no_residual(part: str, ctx: ResnetContext) -> None:
    check_shortcut_blocks(ctx.frozen(ctx.cfg.model.name), ctx.cfg)
    ft, (train, _) = ctx.cfg.no_residual.finetune, ctx.splits()
    check_splits_over_ranks(
        "no_residual.finetune", ft, ctx.cfg, min(ft.images or len(train.labels), len(train.labels))
    )


def prepare_features(part: str, ctx: ResnetContext) -> None:
    """The layer names (checked by hooking them) and enough images for the k-NN folds."""
    cfg = ctx.cfg
    try:
        hooks = PooledFeatures(ctx.frozen(cfg.model.name).model, cfg.features.layers)
    except ValueError as exc:
        raise UserError(f"features.layers: {exc}") from None
    hooks.remove()
    _, val = ctx.splits()
    n = min(cfg.features.images, len(val.labels))
    if n < cfg.features.folds or cfg.features.knn_k >= n - n // cfg.features.folds:
        raise UserError(
            f"features: {n} images cannot serve {cfg.features.folds}-fold k-NN with k={cfg.features.knn_k}"
        )


def prepare_transfer(part: str, ctx: ResnetContext) -> None:
    """The target dataset's draws, and untrained weights for the from-scratch setting."""
    cfg, t = ctx.cfg, ctx.cfg.transfer
    target = t.target(cfg.data)
    ctx.draws[target] = splits(on_dataset(cfg, target))
    train, _ = ctx.draws[target]
    if len(train.labels) < t.batch_size:
        raise UserError(
            f"transfer.batch_size={t.batch_size} exceeds the {len(train.labels)} training images of {target}"
        )
    ft = transfer_finetune(t, "full")
    check_splits_over_ranks("transfer", ft, cfg, min(ft.images or len(train.labels), len(train.labels)))
    if "scratch" in t.settings:
        ctx.models[(cfg.model.name, "none")] = load_model(cfg, cfg.model.name, "none", ctx.device)


def prepare_compare_depth(part: str, ctx: ResnetContext) -> None:
    cfg = ctx.cfg
    for arch in cfg.compare_depth.archs:
        if (arch, cfg.model.weights) not in ctx.models:
            ctx.models[(arch, cfg.model.weights)] = load_model(cfg, arch, cfg.model.weights, ctx.device)


def frozen_features(
    ctx: ResnetContext,
    cfg: Config,
    arch: str,
    split: Draw,
    split_name: str,
    layers: list[str],
    flip: bool,
    off: tuple[str, ...] | None = None,
) -> Outputs:
    """Pooled outputs of `layers` for every image of `split` (of cfg's dataset), from the cache when
    it has them; `off` names blocks whose shortcut is switched off (default: the run's
    --no-residual setting). The backbone is copied only when the cache misses."""
    off = shortcuts_off(cfg) if off is None else off
    frozen_model = ctx.frozen(arch)
    memory_format = torch.channels_last if frozen_model.precision == "bf16" else torch.preserve_format
    built: dict = {}

    def forward(x):
        if not built:
            model = backbone(frozen_model, off).to(ctx.device, memory_format=memory_format)
            built["model"], built["hooks"] = model, PooledFeatures(model, layers)
        built["model"](x)
        return dict(built["hooks"].outputs)

    label = (
        f"{arch} {cfg.data.dataset} {split_name} {'+'.join(sorted(layers))}"
        f"{' flipped' if flip else ''}{' no-residual' if off else ''}"
    )
    try:
        return frozen_model.features(
            forward,
            split,
            dataset=cfg.data.dataset,
            split_name=split_name,
            readouts={"layers": sorted(layers), "shortcuts_off": list(off)},
            batch_size=cfg.model.batch_size,
            cache=cfg.model.cache,
            label=label,
            flip=flip,
        )
    finally:
        if built:
            built["hooks"].remove()


class HeadStep:
    """One Adam step of a linear head on cached features; with flips, each image's view is drawn at random."""

    def __init__(self, head: torch.nn.Linear, t: HeadTrainConfig, generator: torch.Generator):
        self.head, self.flip, self.generator = head, t.flip, generator  # checkpointed with the run
        self.optimizer = torch.optim.Adam(head.parameters(), lr=t.lr)

    def __call__(self, batch):
        plain, flipped, y = batch
        if self.flip:
            heads = torch.rand(len(y), 1, generator=self.generator, device=plain.device) < 0.5
            x = torch.where(heads, flipped, plain)
        else:
            x = plain
        logits = self.head(x)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "acc": (logits.argmax(1) == y).float().mean()}


@dataclass
class TrainedHead:
    head: torch.nn.Linear
    history: object
    val_logits: torch.Tensor
    val_features: torch.Tensor
    feature_seconds: float  # what the backbone's passes cost when computed (from the cache entry on a hit)
    model: torch.nn.Module | None = None  # the whole network, when its BatchNorm statistics moved


def train_head(
    ctx: ResnetContext,
    cfg: Config,
    arch: str,
    run: Run,
    key: str,
    off: tuple[str, ...] | None = None,
    start: TrainedHead | None = None,
) -> TrainedHead:
    """A linear head on `arch`'s frozen layer4 features, checkpointed, so a resumed or repeated
    part reuses it; `start`: a trained head (and, with BatchNorm in train mode, its network) to
    continue from instead of a new one. With train.backbone_bn = eval the backbone runs once (per
    flip) and the head trains for every epoch on the cached features."""
    if cfg.train.backbone_bn == "train":
        return train_head_bn_moving(ctx, cfg, arch, run, key, off, start)
    device = ctx.device
    train, val = ctx.splits(cfg)
    views = [
        frozen_features(ctx, cfg, arch, train, "train", [HEAD_LAYER], flip, off)
        for flip in (False, True)[: 1 + cfg.train.flip]
    ]
    validation = frozen_features(ctx, cfg, arch, val, "test", [HEAD_LAYER], False, off)
    plain, flipped, val_features = views[0][HEAD_LAYER], views[-1][HEAD_LAYER], validation[HEAD_LAYER]
    # Standardised with the training features' statistics (both views): the same linear function
    # class, but Adam is not at the mercy of the feature scale (a random ResNet-152 gives ~1e4).
    seen = torch.cat([plain, flipped]) if cfg.train.flip else plain
    mean, std = seen.mean(0), seen.std(0).clamp_min(1e-6)
    standardise = lambda x: ((x - mean) / std).to(device)  # noqa: E731
    with ctx.seeds.initialising():
        head = torch.nn.Linear(plain.shape[1], len(train.classes)).to(device)
    if start is not None:
        head.load_state_dict(start.head.state_dict())
    step = HeadStep(head, cfg.train, ctx.seeds.generator("training", device))
    batches = TensorBatches(
        standardise(plain),
        standardise(flipped),
        train.labels.to(device),
        batch_size=cfg.train.batch_size,
        seed=ctx.seeds.value("batches"),
        drop_last=cfg.train.drop_last,
    )
    val_x, val_y = standardise(val_features), val.labels.to(device)

    def evaluate(epoch: int) -> dict:
        with evaluating(head):
            logits = head(val_x)
        return {
            "val_loss": F.cross_entropy(logits, val_y).item(),
            "val_acc": (logits.argmax(1) == val_y).float().mean().item(),
        }

    history = fit(
        step,
        batches,
        cfg.train.epochs,
        label=f"resnet/{key}",
        log_every=cfg.train.log_every,
        evaluate=evaluate,
        checkpointing=Checkpointing(
            run, key, {"head": head, "optimizer": step.optimizer, "batches": batches}, step.generator
        ),
        shown=("loss", "acc", "val_acc"),
    )
    with evaluating(head):
        logits = head(val_x).cpu()
    return TrainedHead(
        head, history, logits, val_features, sum(o.compute_seconds for o in (*views, validation))
    )


def train_head_bn_moving(
    ctx: ResnetContext,
    cfg: Config,
    arch: str,
    run: Run,
    key: str,
    off: tuple[str, ...] | None,
    start: TrainedHead | None,
) -> TrainedHead:
    """The original's "frozen" training: only the head learns, but the network runs in train mode,
    so BatchNorm normalises with batch statistics and its running statistics drift to the new data.
    The backbone runs on every batch (nothing can be cached); validation in eval mode."""
    off = shortcuts_off(cfg) if off is None else off
    train, val = ctx.splits(cfg)
    if start is not None and start.model is not None:
        model = copy.deepcopy(start.model)
        remove_shortcuts(model, list(off))
        apply_policy(model, "frozen")
        model.train()
    else:
        model, _ = fresh_model(ctx, arch, off, len(train.classes), "frozen")
    ft = FinetuneConfig(
        epochs=cfg.train.epochs, images=None, batch_size=cfg.train.batch_size, lr=cfg.train.lr
    )
    history = finetune(ctx, cfg, arch, model, ft, run, key).history
    logits, features = network_outputs(ctx, cfg, arch, model, val.images, [HEAD_LAYER])
    return TrainedHead(model.fc, history, logits, features[HEAD_LAYER], 0.0, model)


def network_outputs(
    ctx: ResnetContext,
    cfg: Config,
    arch: str,
    model: torch.nn.Module,
    images: torch.Tensor,
    layers: list[str],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A trained network's logits and the pooled outputs of `layers` for `images`, in eval mode."""
    hooks = PooledFeatures(model, layers)
    preprocess, logits, features = ctx.frozen(arch).preprocess, [], {layer: [] for layer in layers}
    try:
        with evaluating(model), torch.no_grad(), autocast(ctx.device, precision_of(cfg, ctx.device)):
            for chunk in images.split(cfg.model.batch_size):
                logits.append(model(to_model_input(chunk.to(ctx.device), preprocess)).float().cpu())
                for layer in layers:
                    features[layer].append(hooks.outputs[layer].cpu())
    finally:
        hooks.remove()
    return torch.cat(logits), {layer: torch.cat(v) for layer, v in features.items()}


HEAD_CURVES = [
    plots.Panel(
        "loss",
        [plots.Series("loss", "train", "epochs"), plots.Series("val_loss", "validation", "epochs")],
        "cross-entropy",
    ),
    plots.Panel(
        "accuracy",
        [plots.Series("acc", "train", "epochs"), plots.Series("val_acc", "validation", "epochs")],
        "accuracy",
    ),
]


def head_metrics(trained: TrainedHead) -> dict:
    last = trained.history.epochs[-1]
    return {
        "val_acc": last["val_acc"],
        "val_loss": last["val_loss"],
        "train_acc": last["acc"],
        "train_loss": last["loss"],
        "epochs": last["epoch"],
        "val_acc_per_epoch": [r["val_acc"] for r in trained.history.epochs],
    }


def weights_note(cfg: Config) -> str:
    """Marks every figure title made with random weights, so no one reads it as ImageNet's."""
    return " — RANDOM weights" if cfg.model.weights == "none" else f" — weights {cfg.model.weights}"


def common_metrics(ctx: ResnetContext, cfg: Config, arch: str) -> dict:
    train, val = ctx.splits(cfg)
    return {
        "data": f"train: {train.source}; validation: {val.source}",
        "resolution": cfg.model.img_size,
        **ctx.frozen(arch).describe(),  # cfg (the transfer target's) shares the run's weights and precision
    }


def head_key(off: tuple[str, ...], warm: bool = False) -> str:
    return ("head-no-residual" + "-from-baseline" * warm) if off else "head"


@per_seed
def run_baseline(ctx: ResnetContext, run: Run) -> BaselineResult:
    cfg = ctx.cfg
    trained = train_head(ctx, cfg, cfg.model.name, run, head_key(shortcuts_off(cfg)))
    curves = plots.training_curves(
        {cfg.model.name: {"steps": trained.history.steps, "epochs": trained.history.epochs}},
        HEAD_CURVES,
        f"{cfg.model.name}, frozen backbone: the {cfg.data.dataset} head{weights_note(cfg)}",
    )
    return BaselineResult.model_validate(
        common_metrics(ctx, cfg, cfg.model.name) | head_metrics(trained)
    ).with_outputs({"baseline_curves": curves}, {"baseline": trained.history.epochs})


def fresh_model(
    ctx: ResnetContext,
    arch: str,
    off: tuple[str, ...],
    n_classes: int,
    policy: Policy = "full",
    weights: str | None = None,
) -> tuple[torch.nn.Module, int]:
    """A trainable copy of the pretrained model (or of `weights`) with a new head (the same for
    every variant), the shortcuts of `off` switched off and the policy's parameters trainable;
    returns it and its count of trainable parameters."""
    model = backbone(ctx.frozen(arch, weights), off)
    with ctx.seeds.initialising():
        replace_head(model, n_classes)
    return model.train(), apply_policy(model, policy)


def block_gradient_norms(ctx: ResnetContext, arch: str, off: tuple[str, ...]) -> dict[str, float]:
    """‖∂loss/∂θ‖ of every residual block's parameters on one training batch, at the start of
    training (new head, training mode): how much learning signal reaches each depth."""
    cfg, device = ctx.cfg, ctx.device
    train, _ = ctx.splits()
    n = min(cfg.no_residual.grad_images, len(train.labels))
    model, _ = fresh_model(ctx, arch, off, len(train.classes))
    model.to(device)
    x = to_model_input(train.images[:n].to(device), ctx.frozen(arch).preprocess)
    F.cross_entropy(model(x), train.labels[:n].to(device)).backward()
    return {
        name: float(torch.sqrt(sum(p.grad.pow(2).sum() for p in block.parameters())))
        for name, block in residual_blocks(model).items()
    }


@dataclass
class Finetuned:
    history: object
    ranks: dict | None  # under torchrun: every rank's weight checksum


def finetune(
    ctx: ResnetContext, cfg: Config, arch: str, model: torch.nn.Module, ft: FinetuneConfig, run: Run, key: str
) -> Finetuned:
    """Train `model`'s trainable parameters on the run's training draw, preprocessing and flips on
    the device, through the shared training loop; checkpointed for --resume; data-parallel under
    torchrun (every rank takes its slice of each batch; gradients are averaged)."""
    device = ctx.device
    train, val = ctx.splits(cfg)
    n = min(ft.images or len(train.labels), len(train.labels))
    precision = precision_of(cfg, device)
    channels_last = precision == "bf16"
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    trainable = distributed.wrap(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=ft.lr)
    preprocess = ctx.frozen(arch).preprocess
    batches = TensorBatches(
        train.images[:n].to(device),
        train.labels[:n].to(device),
        batch_size=ft.batch_size,
        seed=ctx.seeds.value("batches"),
        drop_last=cfg.train.drop_last,
    )
    flips = ctx.seeds.generator("training", device)
    val_images, val_labels = val.images.to(device), val.labels.to(device)

    def step(batch):
        images, y = distributed.shard(batch)
        x = to_model_input(images, preprocess, channels_last=channels_last)
        if cfg.train.flip:
            x = torch.where(
                torch.rand(len(y), 1, 1, 1, generator=flips, device=x.device) < 0.5, x.flip(-1), x
            )
        with autocast(device, precision):
            logits = trainable(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), "acc": (logits.argmax(1) == y).float().mean()}

    def evaluate(epoch: int) -> dict:
        distributed.sync_buffers(model)
        with evaluating(model), torch.no_grad(), autocast(device, precision):
            logits = torch.cat(
                [
                    model(to_model_input(chunk, preprocess, channels_last=channels_last)).float()
                    for chunk in val_images.split(cfg.model.batch_size)
                ]
            )
        return {
            "val_loss": F.cross_entropy(logits, val_labels).item(),
            "val_acc": (logits.argmax(1) == val_labels).float().mean().item(),
        }

    history = fit(
        step,
        batches,
        ft.epochs,
        label=f"resnet/{key}",
        log_every=cfg.train.log_every,
        evaluate=evaluate,
        checkpointing=Checkpointing(
            run, key, {"model": model, "optimizer": optimizer, "batches": batches}, flips
        ),
        shown=("loss", "acc", "val_acc"),
    )
    return Finetuned(history, distributed.agreement(model))


@per_seed
def run_no_residual(ctx: ResnetContext, run: Run) -> NoResidualResult:
    """Shortcuts on vs off: a head on the frozen backbone, the whole network fine-tuned, and the
    gradient norm per block. Just over 60 lines: three measurements, two figures, the result."""
    cfg = ctx.cfg
    arch, off = cfg.model.name, tuple(cfg.no_residual.blocks)
    variants = {"with shortcuts": (), f"shortcuts off in {', '.join(off)}": off}
    heads = {"with shortcuts": train_head(ctx, cfg, arch, run, head_key(()), off=())}
    warm = heads["with shortcuts"] if cfg.no_residual.start == "baseline" else None
    for name, o in list(variants.items())[1:]:
        heads[name] = train_head(ctx, cfg, arch, run, head_key(o, warm is not None), off=o, start=warm)
    n_classes, n_train = len(ctx.splits()[0].classes), len(ctx.splits()[0].labels)
    tuned = {
        name: finetune(
            ctx,
            cfg,
            arch,
            fresh_model(ctx, arch, o, n_classes)[0],
            cfg.no_residual.finetune,
            run,
            f"finetune{'-no-residual' if o else ''}",
        ).history
        for name, o in variants.items()
    }
    norms = {name: block_gradient_norms(ctx, arch, o) for name, o in variants.items()}
    curves = {
        f"{name}: head only": {"steps": h.history.steps, "epochs": h.history.epochs}
        for name, h in heads.items()
    }
    curves |= {f"{name}: fine-tuned": {"steps": h.steps, "epochs": h.epochs} for name, h in tuned.items()}
    figures = {}
    figures["no-residual_curves"] = plots.training_curves(
        curves,
        HEAD_CURVES,
        f"{arch}: shortcuts on vs off, frozen backbone + head and whole network "
        f"fine-tuned{weights_note(cfg)}",
    )
    figures["no-residual_gradient_norms"] = plots.lines(
        {name: (list(v), list(v.values())) for name, v in norms.items()},
        f"gradient norm per residual block at the start of training{weights_note(cfg)}",
        "block",
        "‖∇θ_block‖",
        logy=True,
    )
    histories = {f"no-residual-{head_key(variants[name])}": h.history.epochs for name, h in heads.items()}
    histories |= {
        f"no-residual-finetune{'-off' if variants[name] else ''}": h.epochs for name, h in tuned.items()
    }
    first_block = next(iter(norms["with shortcuts"]))
    return NoResidualResult.model_validate(
        common_metrics(ctx, cfg, arch)
        | {
            "blocks_off": list(off),
            "head_only": {name: head_metrics(h) for name, h in heads.items()},
            "finetuned": {
                name: {
                    "val_acc": h.epochs[-1]["val_acc"],
                    "train_loss": h.epochs[-1]["loss"],
                    "images": min(cfg.no_residual.finetune.images or n_train, n_train),
                }
                for name, h in tuned.items()
            },
            "gradient_norms": norms,
            f"gradient_norm_{first_block}": {name: v[first_block] for name, v in norms.items()},
        }
    ).with_outputs(figures, histories)


def transfer_finetune(t: TransferConfig, setting: str) -> FinetuneConfig:
    return FinetuneConfig(epochs=t.epochs, images=None, batch_size=t.batch_size, lr=t.lr[setting])


@per_seed
def run_transfer(ctx: ResnetContext, run: Run) -> TransferResult:
    """The four ways to reuse (or not) ImageNet features on another dataset, each trained the same
    epochs on the same images. Wall time = backbone passes + training + per-epoch validation; the
    frozen setting's backbone passes count at what they cost when computed, even on a cache hit.
    One loop over the settings (over 60 lines with its two figures): each setting's numbers are
    recorded the same way whichever route (head on cached features, or fine-tuning) trained it."""
    cfg = ctx.cfg
    t = cfg.transfer
    arch, target = cfg.model.name, t.target(cfg.data)
    tcfg = on_dataset(cfg, target)
    train, _ = ctx.splits(tcfg)
    off = shortcuts_off(cfg)
    results, curves, histories = {}, {}, {}
    for setting in t.settings:
        key = f"transfer-{setting}"
        if setting == "frozen" and cfg.train.backbone_bn == "eval":
            head_cfg = tcfg.model_copy(
                update={
                    "train": tcfg.train.model_copy(
                        update={"epochs": t.epochs, "batch_size": t.batch_size, "lr": t.lr["frozen"]}
                    )
                }
            )
            trained = train_head(ctx, head_cfg, arch, run, key, off)
            history, params, extra = trained.history, sum(p.numel() for p in trained.head.parameters()), {}
            wall = trained.feature_seconds + history.epochs[-1]["time_s"]
        else:
            model, params = fresh_model(
                ctx,
                arch,
                off,
                len(train.classes),
                TRANSFER_POLICY[setting],
                "none" if setting == "scratch" else None,
            )
            tuned = finetune(ctx, tcfg, arch, model, transfer_finetune(t, setting), run, key)
            history, wall = tuned.history, tuned.history.epochs[-1]["time_s"]
            extra = {"distributed": tuned.ranks} if tuned.ranks else {}
        histories[key] = history.epochs
        curves[setting] = {"steps": history.steps, "epochs": history.epochs}
        last = history.epochs[-1]
        results[setting] = {
            "val_acc": last["val_acc"],
            "val_loss": last["val_loss"],
            "train_loss": last["loss"],
            "wall_s": round(wall, 2),
            "trainable_params": params,
            "epochs": last["epoch"],
            "val_acc_per_epoch": [r["val_acc"] for r in history.epochs],
            "weights": "none (random init)" if setting == "scratch" else cfg.model.weights,
        } | extra
        log.info(
            f"  {setting}: val accuracy {last['val_acc']:.3f}, {wall:.1f} s, {params:,} trainable parameters",
        )
    note = weights_note(cfg)
    figures = {}
    figures["transfer_curves"] = plots.training_curves(
        curves,
        HEAD_CURVES,
        f"{arch} on {target}: four transfer settings{note}",
    )
    figures["transfer_tradeoff"] = plots.tradeoff(
        {
            s: (r["wall_s"], r["val_acc"], f"{r['trainable_params'] / 1e6:.2f} M trainable")
            for s, r in results.items()
        },
        f"{arch} on {target}, {t.epochs} epochs each: accuracy against cost{note}",
        "wall time (s, log scale)",
        "validation accuracy",
    )
    return TransferResult.model_validate(
        common_metrics(ctx, tcfg, arch) | {"dataset": target, "settings": results}
    ).with_outputs(figures, histories)


@per_seed
def run_features(ctx: ResnetContext, run: Run) -> FeaturesResult:
    figures: dict[str, bytes] = {}
    cfg = ctx.cfg
    _, val = ctx.splits()
    f = cfg.features
    n = min(f.images, len(val.labels))
    if f.draw == "first":
        subset, name = val.head(n), f"test[:{n}]"
    else:
        subset, name = val.sample(n, ctx.seeds.generator("subset")), f"test[random {n}, seed {cfg.seed}]"
    if cfg.train.backbone_bn == "train":  # the baseline's network, its BatchNorm statistics moved
        model = train_head(ctx, cfg, cfg.model.name, run, head_key(shortcuts_off(cfg))).model
        _, features = network_outputs(ctx, cfg, cfg.model.name, model, subset.images, f.layers)
    else:
        features = frozen_features(ctx, cfg, cfg.model.name, subset, name, f.layers, False)
    labels = subset.labels.numpy()
    per_layer, maps = {}, {}
    for layer in f.layers:
        x = features[layer].numpy()
        per_layer[layer] = {
            "dim": int(x.shape[1]),
            "knn_accuracy": knn_accuracy(x, labels, f.knn_k, f.folds, ctx.seeds.value("split")),
            "silhouette": silhouette(x, labels),
        }
        maps[layer] = {
            method: (
                project_2d(
                    x,
                    method,
                    ctx.seeds.value("projection"),
                    pca_first=f.pca_before_tsne if method == "tsne" else None,
                ),
                labels,
            )
            for method in f.maps
        }
        log.info(
            f"  {layer}: k-NN accuracy {per_layer[layer]['knn_accuracy']:.3f}, silhouette "
            f"{per_layer[layer]['silhouette']:.3f}",
        )
    figures["features_maps"] = plots.scatter_grid(
        maps,
        val.classes,
        f"{cfg.model.name} features of {n} {cfg.data.dataset} test images, early → late{weights_note(cfg)}",
    )
    figures["features_separability"] = plots.lines(
        {
            "k-NN accuracy (5-fold)": (f.layers, [per_layer[layer]["knn_accuracy"] for layer in f.layers]),
            "silhouette": (f.layers, [per_layer[layer]["silhouette"] for layer in f.layers]),
        },
        f"class separability against depth ({cfg.model.name}){weights_note(cfg)}",
        "layer",
        "score",
    )
    return FeaturesResult.model_validate(
        common_metrics(ctx, cfg, cfg.model.name) | {"images": n, "knn_k": f.knn_k, "layers": per_layer}
    ).with_outputs(figures)


@per_seed
def run_confusion(ctx: ResnetContext, run: Run) -> ConfusionResult:
    figures: dict[str, bytes] = {}
    cfg = ctx.cfg
    _, val = ctx.splits()
    # the baseline's head, from its checkpoint
    trained = train_head(ctx, cfg, cfg.model.name, run, head_key(shortcuts_off(cfg)))
    predicted, truth = trained.val_logits.argmax(1).numpy(), val.labels.numpy()
    k = len(val.classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    # Class means centred on the mean of all features: ReLU features share one large positive
    # direction (for random weights, all cosines are then ~1), which says nothing about the pair.
    centred = trained.val_features - trained.val_features.mean(0)
    means = torch.stack(
        [
            centred[val.labels == c].mean(0) if (val.labels == c).any() else torch.zeros(centred.shape[1])
            for c in range(k)
        ]
    )
    similarity = F.cosine_similarity(means.unsqueeze(1), means.unsqueeze(0), dim=-1).numpy()
    shares = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None)
    pairs = sorted(
        ((shares[i, j] + shares[j, i], i, j) for i in range(k) for j in range(i + 1, k)), reverse=True
    )[: cfg.confusion.pairs]
    listed = [
        f"{val.classes[i]} ({i}) – {val.classes[j]} ({j}):\n  {shares[i, j]:.2f} → / {shares[j, i]:.2f} ←, "
        f"feature cosine {similarity[i, j]:.2f}"
        for _, i, j in pairs
    ]
    figures["confusion_matrix"] = plots.confusion_matrix(
        matrix,
        val.classes,
        f"{cfg.model.name} frozen + head on {cfg.data.dataset} (test){weights_note(cfg)}",
        listed,
    )
    return ConfusionResult.model_validate(
        common_metrics(ctx, cfg, cfg.model.name)
        | {
            "val_acc": float((predicted == truth).mean()),
            "most_confused": [
                {
                    "classes": [val.classes[i], val.classes[j]],
                    "confusion_share_sum": round(float(s), 4),
                    "share_first_as_second": round(float(shares[i, j]), 4),
                    "share_second_as_first": round(float(shares[j, i]), 4),
                    "centred_feature_cosine": round(float(similarity[i, j]), 4),
                }
                for s, i, j in pairs
            ],
            "mean_centred_feature_cosine_all_pairs": float(similarity[~np.eye(k, dtype=bool)].mean()),
        }
    ).with_outputs(figures)


@per_seed
def run_compare_depth(ctx: ResnetContext, run: Run) -> CompareDepthResult:
    figures: dict[str, bytes] = {}
    cfg = ctx.cfg
    results, histories = {}, {}
    for arch in cfg.compare_depth.archs:
        if cfg.compare_depth.reuse_baseline and arch == cfg.model.name:  # the baseline's own head
            trained = train_head(ctx, cfg, arch, run, head_key(shortcuts_off(cfg)))
        else:
            trained = train_head(ctx, cfg, arch, run, f"compare-depth-{arch}", off=())
        histories[arch] = trained.history
        results[arch] = {
            "weights": ctx.frozen(arch).weights,
            "feature_dim": int(trained.head.in_features),
        } | head_metrics(trained)
    figures["compare_depth_curves"] = plots.training_curves(
        {arch: {"steps": h.steps, "epochs": h.epochs} for arch, h in histories.items()},
        HEAD_CURVES,
        f"{' vs '.join(histories)}, frozen backbone + head on {cfg.data.dataset}{weights_note(cfg)}",
    )
    figures["compare_depth"] = plots.grouped_bars(
        {"validation accuracy": [results[a]["val_acc"] for a in results]},
        list(results),
        f"frozen features + linear head on {cfg.data.dataset}{weights_note(cfg)}",
        "accuracy",
    )
    return CompareDepthResult.model_validate(
        common_metrics(ctx, cfg, cfg.model.name) | {"archs": results}
    ).with_outputs(figures)
