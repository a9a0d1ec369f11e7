"""The original notebooks' last details, each a config key its `--preset original` sets (audited
value by value against shared/ORIGINAL_SETTINGS.md), or a sentence in the preset file where atml
cannot express it."""

import csv
import json
import math

import pytest
import torch

from atml.analysis.posterior import collapse_ratio
from atml.config import resolve
from atml.experiments import clip, resnet, vae, vit
from atml.experiments.vae.parts import VaeStep
from atml.models.vae import ConvVAE, StackedConvVAE
from atml.schedules import BetaSchedule


def test_each_detail_is_a_key_the_original_preset_sets():
    _, r = resolve("resnet", resnet.Config, preset="original")
    _, v = resolve("vae", vae.Config, preset="original")
    _, t = resolve("vit", vit.Config, preset="original")
    _, c = resolve("clip", clip.Config, preset="original")
    assert r.train.drop_last is False  # 782 batches of CIFAR-10 at 64, heads and fine-tuning
    assert (v.train.drop_last, v.train.loss, v.eval.collapse_strict) == (False, "batch-sum", True)
    assert t.probe.pca_images == "all" and c.gap.text_norms == "captions"
    _, default = resolve("vae", vae.Config)
    assert (default.train.drop_last, default.train.loss, default.eval.collapse_strict) == (
        True,
        "image-mean",
        False,
    )


@pytest.mark.parametrize(
    ("preset", "sentence"),
    [
        ("resnet", "the PCA before t-SNE: the notebook's had no random_state"),
        ("vit", "LayerNorm eps: 1e-12 in the notebook's Hugging Face model, 1e-6 in timm's"),
        ("vit", "the probe's resizing: the notebook resized each 32 px PIL image (uint8)"),
        ("clip", "resizing: the notebook resized each PIL image (uint8)"),
        ("gan", "atml trains on 59,000: its last batch is 56"),
    ],
)
def test_what_cannot_be_a_key_is_said_in_the_preset_file(preset, sentence):
    from atml.config import config_dir

    text = " ".join((config_dir(preset) / "original.yaml").read_text().replace("#", " ").split())
    assert " ".join(sentence.split()) in text


def test_the_collapse_ratio_counts_the_boundary_only_when_not_strict():
    logvar = torch.tensor([[0.0, math.log(1.5), 2.0]])
    at = float((logvar.exp() - 1).abs()[0, 1])  # exactly on the tolerance
    assert collapse_ratio(logvar, at) == pytest.approx(2 / 3)
    assert collapse_ratio(logvar, at, strict=True) == pytest.approx(1 / 3)


def test_a_batch_sum_step_descends_the_batch_times_the_image_mean():
    """The same step from the same weights: stepping on the batch's sum is the per-image mean's
    gradient times the batch size (Adam then moves almost alike; its eps is where they part)."""
    x = torch.rand(1, 16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    grads = {}
    for loss in ("image-mean", "batch-sum"):
        torch.manual_seed(0)
        model = StackedConvVAE([ConvVAE()])
        t = vae.VaeTrainConfig(loss=loss, precision="fp32")
        step = VaeStep(model, t, BetaSchedule(), 10, torch.device("cpu"), [torch.Generator().manual_seed(1)])
        step.optimizer.step = lambda: None  # the gradient alone
        step((x,))
        grads[loss] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(grads["batch-sum"], 16 * grads["image-mean"], rtol=1e-4, atol=1e-6)


def test_keeping_the_last_partial_batch_adds_a_step(cli, fake_root, tmp_path):
    """800 fake training images less 100 held out at batch 64: 10 full batches and one of 60."""
    common = ["--smoke", "--part", "train", "--set", f"data.root={fake_root}", "--set", "data.heldout=100"]
    common += ["--set", "data.train_subset=null", "--set", "train.batch_size=64"]
    steps = {}
    for drop in ("true", "false"):
        out = tmp_path / drop
        code, _, err = cli("run", "vae", *common, "--set", f"train.drop_last={drop}", "--out", out)
        assert code == 0, err
        (folder,) = (out / "vae").iterdir()
        with (folder / "history" / "train-constant_steps.csv").open() as rows:
            last = list(csv.DictReader(rows))[-1]
        epochs = json.loads((folder / "metrics.json").read_text())["train"]["constant"]["epochs"]
        steps[drop] = int(last["step"]) / epochs
    assert steps == {"true": 10, "false": 11}


def test_a_last_batch_batchnorm_cannot_train_on_is_refused_before_a_run_folder(cli, tmp_path):
    from atml.data.fake import write_fake_dataset

    root = tmp_path / "data"
    write_fake_dataset("fashion-mnist", root, n_train=65, n_test=40)
    code, _, err = cli(
        "run", "resnet", "--smoke", "--part", "no-residual", "--set", f"data.root={root}",
        "--set", "data.train_images=65", "--set", "data.test_images=40", "--set", "train.drop_last=false",
        "--set", "no_residual.finetune.images=null", "--set", "no_residual.finetune.batch_size=32",
        "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 2 and "last batch 1 of 65 images" in err and "train.drop_last=true" in err
    assert not (tmp_path / "out").exists()


def test_compare_depth_can_plot_the_baselines_own_head(cli, fake_root, tmp_path):
    """compare_depth.reuse_baseline: model.name's entry is the baseline's head and history (its
    checkpoint), as the original plotted ResNet-18 against the baseline it had trained."""
    code, _, err = cli(
        "run", "resnet", "--smoke", "--part", "baseline", "--part", "compare-depth",
        "--set", f"data.root={fake_root}", "--set", "model.name=resnet18",
        "--set", "compare_depth.archs=[resnet18]",
        "--set", "compare_depth.reuse_baseline=true", "--set", "train.epochs=2", "--keep-checkpoints",
        "--out", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    (folder,) = (tmp_path / "resnet").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    baseline, reused = metrics["baseline"], metrics["compare-depth"]["archs"]["resnet18"]
    assert (
        reused["val_acc_per_epoch"] == baseline["val_acc_per_epoch"]
        and reused["train_loss"] == baseline["train_loss"]
    )
    assert not (folder / "checkpoints" / "compare-depth-resnet18.pt").exists()  # not trained again
