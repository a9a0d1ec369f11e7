"""Experiment 1: inside ResNet-152 — transfer learning on CIFAR-10 from ImageNet weights.

Parts: `baseline` (the original's frozen backbone and a trained 10-class head), `no-residual`
(shortcuts switched off: head only, whole network fine-tuned, gradient norm per block), `features`
(early / middle / late features: t-SNE and UMAP maps, and class separability as numbers),
`transfer` (frozen / last block / full fine-tuning / from scratch on another dataset: accuracy,
wall time and trainable parameters), `confusion` (the baseline head's confusion matrix, its
most-confused pairs and their feature similarity), `compare-depth` (ResNet-18 against ResNet-152
as frozen feature extractors).
A frozen backbone runs once: its pooled features (both horizontal flips when flip augmentation is
on) go to the feature cache, and heads train on them in seconds. Fine-tuning runs data-parallel
under torchrun (atml.distributed).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from atml.config import DrawsSection, FixedSeeds, FrozenModelSection, Precision, Seed, Strict
from atml.data.images import NAMES
from atml.experiments import Experiment, Figure, Flag, Headline, Part, Reading
from atml.models.weight_files import torchvision_rows
from atml.needs import DatasetSplit, Need, Weights
from atml.results import KeyedResult, Result, weights_mark
from atml.tables import number

FLAGS = (
    Flag(
        "--no-residual",
        "model.no_residual",
        "every part with the shortcuts of no_residual.blocks switched off",
        bool,
    ),
)


READINGS = (
    Reading("A linear head on the frozen backbone reaches {baseline/val_acc} validation accuracy."),
    Reading(
        "Turning the shortcuts off: the head-only accuracy goes from {no-residual/head_only/with "
        "shortcuts/val_acc} to {no-residual/head_only/shortcuts off*/val_acc}; fine-tuned without "
        "them, {no-residual/finetuned/shortcuts off*/val_acc}."
    ),
    Reading(
        "Features: a {features/knn_k}-nearest-neighbour classifier on layer1's features scores "
        "{features/layers/layer1/knn_accuracy}, on layer4's {features/layers/layer4/knn_accuracy}."
    ),
    Reading(
        "Transfer, validation accuracy: frozen backbone {transfer/settings/frozen/val_acc}, last "
        "block trained {transfer/settings/last-block/val_acc}, everything fine-tuned "
        "{transfer/settings/full/val_acc}, from random initialisation "
        "{transfer/settings/scratch/val_acc}."
    ),
)

HEADLINES = (
    Headline(
        "baseline: frozen backbone + head, val accuracy",
        ("baseline", "val_acc"),
        "0.83 ('about 83%'; notebook 0.8332, CIFAR-10, 3 epochs; published linear probe 0.935)",
    ),
    Headline(
        "no-residual: head only, val accuracy",
        ("no-residual", "head_only", "shortcuts off*", "val_acc"),
        "0.22 ('roughly 22%'; notebook 0.2233)",
    ),
    Headline(
        "transfer: frozen, val accuracy",
        ("transfer", "settings", "frozen", "val_acc"),
        "— ('less accurate'; notebook 0.6281, CIFAR-100, 3 epochs)",
    ),
    Headline(
        "transfer: last block, val accuracy",
        ("transfer", "settings", "last-block", "val_acc"),
        "0.72 ('around 72%'; notebook 0.7223)",
    ),
    Headline(
        "transfer: full fine-tune, val accuracy",
        ("transfer", "settings", "full", "val_acc"),
        "— ('the best accuracy', which its notebook contradicts: notebook 0.5495)",
    ),
    Headline(
        "transfer: random init, val accuracy",
        ("transfer", "settings", "scratch", "val_acc"),
        "— (notebook 0.1654, at lr 1e-2)",
    ),
    Headline(
        "compare-depth: ResNet-18 frozen, val accuracy",
        ("compare-depth", "archs", "resnet18", "val_acc"),
        "— (notebook 0.8043)",
    ),
)


class ResnetDataConfig(DrawsSection):
    dataset: Literal[NAMES] = "cifar10"  # type: ignore[valid-type]
    train_images: int | None = Field(
        None, ge=2, description="a fixed random draw of the training split (null: all)"
    )


# torchvision's ResNet family: the parts hook layer1…layer4 and its residual blocks
ResnetArch = Literal[
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
    "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
]  # fmt: skip


class ResnetModelConfig(FrozenModelSection):
    name: ResnetArch = "resnet152"
    weights: str = Field(
        "imagenet", description="imagenet (= IMAGENET1K_V1) | IMAGENET1K_V2 | a state-dict file | none"
    )
    img_size: int = Field(
        224, ge=16, description="side of the model's input; the weights' metadata gives 224"
    )
    batch_size: int = Field(128, ge=1, description="images per no-grad forward of the frozen backbone")
    precision: Precision = Field(
        "auto",
        description="backbone passes and fine-tuning: auto = bf16 autocast + channels_last "
        "where the hardware runs bf16 natively",
    )
    no_residual: bool = Field(
        False, description="every part runs with no_residual.blocks' shortcuts switched off"
    )


class FinetuneConfig(Strict):
    """Training a ResNet's layers (not only a head on cached features)."""

    epochs: int = Field(1, ge=1)
    images: int | None = Field(
        None, ge=2, description="the first images of the training draw used (null: all)"
    )
    batch_size: int = Field(
        32,
        ge=2,
        description="the global batch: under torchrun each of N ranks takes batch_size / N (BatchNorm "
        "cannot train on one image)",
    )
    lr: float = Field(1e-4, gt=0, le=10, description="Adam")


class NoResidualConfig(Strict):
    blocks: list[str] = Field(
        ["layer2.2", "layer3.3"],
        min_length=1,
        description="blocks whose shortcut is switched off (0-based, torchvision's names)",
    )
    start: Literal["fresh", "baseline"] = Field(
        "fresh",
        description="the shortcuts-off head: fresh (atml's: both variants trained alike from the same "
        "new head) | baseline (the original's: the baseline's trained model, its head trained further)",
    )
    grad_images: int = Field(
        32, ge=2, description="training images of the one batch whose gradient is measured per block"
    )
    finetune: FinetuneConfig = FinetuneConfig(epochs=1, images=2000, batch_size=32, lr=1e-4)


TRANSFER_SETTINGS = ("frozen", "last-block", "full", "scratch")


class TransferConfig(Strict):
    dataset: Literal[NAMES] | None = Field(  # type: ignore[valid-type]
        None,
        description="the target dataset; null: cifar100 when data.dataset is cifar10 "
        "(the original's pairing), else data.dataset",
    )
    settings: list[Literal[TRANSFER_SETTINGS]] = Field(list(TRANSFER_SETTINGS), min_length=1)  # type: ignore[valid-type]
    epochs: int = Field(3, ge=1, description="every setting trains this many epochs on the same images")
    batch_size: int = Field(64, ge=2, description="BatchNorm cannot train on one image")
    lr: dict[str, float] = Field(
        {"frozen": 1e-3, "last-block": 1e-4, "full": 1e-4, "scratch": 1e-3},
        description="Adam's learning rate per setting",
    )

    @field_validator("lr")
    @classmethod
    def _one_lr_per_setting(cls, lr: dict[str, float]) -> dict[str, float]:
        if set(lr) != set(TRANSFER_SETTINGS):
            raise ValueError(f"give one learning rate for each of {', '.join(TRANSFER_SETTINGS)}")
        bad = [f"{k}={v}" for k, v in lr.items() if not (0 < v < 10)]
        if bad:
            raise ValueError(f"learning rates must lie in (0, 10): {', '.join(bad)}")
        return lr

    def target(self, data: ResnetDataConfig) -> str:
        if self.dataset:
            return self.dataset
        return "cifar100" if data.dataset == "cifar10" else data.dataset


class HeadTrainConfig(Strict):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(64, ge=2, description="BatchNorm cannot train on one image")
    lr: float = Field(1e-3, gt=0, le=10)
    drop_last: bool = Field(
        True,
        description="every training loop (heads and fine-tuning) drops an epoch's last partial batch: "
        "true (atml's: every step a full batch) | false (the original's: CIFAR-10 at 64 is 782 batches)",
    )
    flip: bool = Field(True, description="random horizontal flips (both views of every image are cached)")
    backbone_bn: Literal["eval", "train"] = Field(
        "eval",
        description="the frozen backbone's BatchNorm while a head trains: eval (atml's: fixed ImageNet "
        "statistics, so features are cached once) | train (the original's: batch statistics, running "
        "statistics drift to the new data; the backbone runs on every batch)",
    )
    log_every: int = Field(50, ge=1)


class FeaturesConfig(Strict):
    layers: list[str] = Field(["layer1", "layer3", "layer4"], min_length=1)
    images: int = Field(1000, ge=10, description="validation images mapped and scored")
    draw: Literal["first", "random"] = Field(
        "first", description="the first `images` of the validation draw, or a random draw of them (seeded)"
    )
    pca_before_tsne: int | None = Field(
        None, ge=2, description="PCA to this many dimensions before t-SNE (the original: 50; UMAP never)"
    )
    knn_k: int = Field(10, ge=1)
    folds: int = Field(5, ge=2, description="cross-validation folds of the k-NN accuracy")
    maps: list[Literal["tsne", "umap", "pca"]] = Field(["tsne", "umap"], min_length=1)


class ConfusionConfig(Strict):
    pairs: int = Field(5, ge=1, description="most-confused class pairs listed")


class CompareDepthConfig(Strict):
    archs: list[ResnetArch] = Field(["resnet18", "resnet152"], min_length=1)
    reuse_baseline: bool = Field(
        False,
        description="model.name's entry is the baseline part's head and history (its checkpoint; trained "
        "once per run), not a head trained for this part (the original did not retrain it)",
    )


class Config(Strict):
    renamed: ClassVar[dict[str, str]] = {
        "model.arch": "model.name",
        "data.val_images": "data.test_images",
        "data.resolution": "model.img_size",
        "train.feature_batch_size": "model.batch_size",
        "train.precision": "model.precision",
        "train.cache": "model.cache",
    }
    seed: Seed = 0
    fixed_seeds: FixedSeeds = FixedSeeds()
    data: ResnetDataConfig = ResnetDataConfig()
    model: ResnetModelConfig = ResnetModelConfig()
    train: HeadTrainConfig = HeadTrainConfig()
    no_residual: NoResidualConfig = NoResidualConfig()
    features: FeaturesConfig = FeaturesConfig()
    transfer: TransferConfig = TransferConfig()
    confusion: ConfusionConfig = ConfusionConfig()
    compare_depth: CompareDepthConfig = CompareDepthConfig()


class ResnetResult(Result):
    """What every ResNet part records about its run."""

    data: str
    weights: dict[str, Any]
    resolution: int
    random_weights: bool
    precision: str


class HeadResult(Result):
    val_acc: float
    val_loss: float
    train_acc: float
    train_loss: float
    epochs: int
    val_acc_per_epoch: list[float]


class BaselineResult(ResnetResult, HeadResult):
    pass


class FinetunedResult(Result):
    val_acc: float
    train_loss: float
    images: int


class NoResidualResult(ResnetResult, KeyedResult):
    blocks_off: list[str]
    head_only: dict[str, HeadResult]
    finetuned: dict[str, FinetunedResult]
    gradient_norms: dict[str, dict[str, float]]
    __pydantic_extra__: dict[str, dict[str, float]] = Field(init=False)  # gradient_norm_<first block>


class LayerSeparability(Result):
    dim: int
    knn_accuracy: float
    silhouette: float


class FeaturesResult(ResnetResult):
    images: int
    knn_k: int
    layers: dict[str, LayerSeparability]


class TransferSettingResult(Result):
    val_acc: float
    val_loss: float
    train_loss: float
    wall_s: float
    trainable_params: int
    epochs: int
    val_acc_per_epoch: list[float]
    weights: str
    distributed: dict[str, Any] | None = None  # under torchrun: every rank's weight checksum


class TransferResult(ResnetResult):
    dataset: str
    settings: dict[str, TransferSettingResult]


class ConfusedPair(Result):
    classes: list[str]
    confusion_share_sum: float
    share_first_as_second: float
    share_second_as_first: float
    centred_feature_cosine: float


class ConfusionResult(ResnetResult):
    val_acc: float
    most_confused: list[ConfusedPair]
    mean_centred_feature_cosine_all_pairs: float


class ArchResult(HeadResult):
    weights: dict[str, Any]
    feature_dim: int


class CompareDepthResult(ResnetResult):
    archs: dict[str, ArchResult]


def accuracy_row(m: BaselineResult | ConfusionResult) -> list[dict]:
    return [{"what": f"val accuracy{weights_mark(m)}", "value": m.val_acc}]


def no_residual_rows(m: NoResidualResult) -> list[dict]:
    return [
        {"what": f"{kind.replace('_', ' ')}, {name}: val accuracy{weights_mark(m)}", "value": v.val_acc}
        for kind, runs in (("head_only", m.head_only), ("finetuned", m.finetuned))
        for name, v in runs.items()
    ]


def features_rows(m: FeaturesResult) -> list[dict]:
    return [
        {
            "what": f"{layer}: k-NN acc / silhouette{weights_mark(m)}",
            "value": f"{number(v.knn_accuracy)} / {number(v.silhouette)}",
        }
        for layer, v in m.layers.items()
    ]


def transfer_rows(m: TransferResult) -> list[dict]:
    return [
        {
            "what": f"{m.dataset} {setting}: val accuracy / wall s / trainable{weights_mark(m)}",
            "value": f"{number(v.val_acc)} / {v.wall_s:.1f} / {v.trainable_params:,}",
        }
        for setting, v in m.settings.items()
    ]


def compare_depth_rows(m: CompareDepthResult) -> list[dict]:
    return [
        {"what": f"{arch} val accuracy{weights_mark(m)}", "value": v.val_acc} for arch, v in m.archs.items()
    ]


def base_reads(cfg: Config) -> list[Need]:
    """Every part reads the dataset's splits and the model's weights."""
    d = cfg.data
    return [
        *(DatasetSplit(d.dataset, split, d.root) for split in ("train", "test")),
        Weights("torchvision", cfg.model.name, cfg.model.weights),
    ]


def transfer_reads(cfg: Config) -> list[Need]:
    target = cfg.transfer.target(cfg.data)
    return [DatasetSplit(target, split, cfg.data.root) for split in ("train", "test")]


def compare_depth_reads(cfg: Config) -> list[Need]:
    return [Weights("torchvision", arch, cfg.model.weights) for arch in cfg.compare_depth.archs]


# the baseline's head (shortcuts off where the config turns them off), which later parts continue from
BASELINE_HEAD = ("head", "head-no-residual")
PARTS = (
    Part(
        "baseline",
        BaselineResult,
        "run_baseline",
        accuracy_row,
        (
            Figure(
                "baseline_curves",
                "the head's training: loss and accuracy per epoch, train and validation",
                True,
            ),
        ),
    ),
    Part(
        "no-residual",
        NoResidualResult,
        "run_no_residual",
        no_residual_rows,
        (
            Figure(
                "no-residual_curves",
                "with and without shortcuts: the head alone and the whole network fine-tuned, per epoch",
                True,
            ),
            Figure("no-residual_gradient_norms", "gradient norm per block, with and without shortcuts", True),
        ),
        prepare="prepare_no_residual",
        reuses=BASELINE_HEAD,
    ),
    Part(
        "features",
        FeaturesResult,
        "run_features",
        features_rows,
        (
            Figure("features_maps", "t-SNE and UMAP maps of early, middle and late features, by class", True),
            Figure("features_separability", "k-NN accuracy and silhouette of each layer's features", True),
        ),
        prepare="prepare_features",
        reuses=BASELINE_HEAD,
    ),
    Part(
        "transfer",
        TransferResult,
        "run_transfer",
        transfer_rows,
        (
            Figure("transfer_curves", "validation accuracy per epoch of each transfer setting"),
            Figure(
                "transfer_tradeoff",
                "each setting's accuracy against its wall time and trainable parameters",
                True,
            ),
        ),
        prepare="prepare_transfer",
        needs=transfer_reads,
    ),
    Part(
        "confusion",
        ConfusionResult,
        "run_confusion",
        accuracy_row,
        (Figure("confusion_matrix", "the baseline head's confusion matrix on the validation images", True),),
        reuses=BASELINE_HEAD,
    ),
    Part(
        "compare-depth",
        CompareDepthResult,
        "run_compare_depth",
        compare_depth_rows,
        (
            Figure(
                "compare_depth_curves",
                "the heads' training per epoch on each backbone's frozen features",
                True,
            ),
            Figure(
                "compare_depth",
                "validation accuracy of a linear head on each backbone's frozen features",
                True,
            ),
        ),
        prepare="prepare_compare_depth",
        needs=compare_depth_reads,
        reuses=BASELINE_HEAD,
    ),
)


def weights_files() -> list:
    return torchvision_rows(tuple(dict.fromkeys([*CompareDepthConfig().archs, ResnetModelConfig().name])))


EXPERIMENT = Experiment(
    name="resnet",
    title=__doc__.strip().splitlines()[0],
    parts=PARTS,
    config=Config,
    code=f"{__name__}.parts",
    headlines=HEADLINES,
    readings=READINGS,
    flags=FLAGS,
    weights_files=weights_files,
    needs_always=base_reads,
    non_result_keys=("train.log_every", "model.cache", "model.batch_size", "confusion.pairs"),
)
