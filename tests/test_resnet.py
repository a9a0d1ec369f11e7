import json
import os

import pytest
import torch

from atml.config import resolve
from atml.data.fake import write_fake_dataset
from atml.experiments import resnet
from atml.experiments.resnet import parts as resnet_parts
from tests.conftest import error_lines


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_fake_dataset("cifar10", root, n_train=300, n_test=150)
    write_fake_dataset(
        "cifar100", root, n_train=300, n_test=150
    )  # the transfer part's target when data.dataset is cifar10
    return root


def test_smoke_run_of_every_resnet_part(cli, cifar_root, tmp_path):
    code, out, err = cli(
        "run",
        "resnet",
        "--smoke",
        "--set",
        f"data.root={cifar_root}",
        "--set",
        "data.dataset=cifar10",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    (folder,) = (tmp_path / "resnet").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert list(metrics) == list(resnet.EXPERIMENT.part_names)
    assert all(m["random_weights"] and m["weights"]["source"] == "none" for m in metrics.values())
    assert len(metrics["baseline"]["val_acc_per_epoch"]) == 2 and 0 <= metrics["baseline"]["val_acc"] <= 1
    assert set(metrics["features"]["layers"]) == {"layer1", "layer3", "layer4"}
    assert all(
        -1 <= v["silhouette"] <= 1 and 0 <= v["knn_accuracy"] <= 1
        for v in metrics["features"]["layers"].values()
    )
    assert metrics["confusion"]["val_acc"] == pytest.approx(
        metrics["baseline"]["val_acc"]
    )  # the same head, from its checkpoint
    assert len(metrics["confusion"]["most_confused"]) == 5
    no_res = metrics["no-residual"]
    assert (
        no_res["blocks_off"] == ["layer2.2", "layer3.3"]
        and len(no_res["head_only"]) == len(no_res["finetuned"]) == 2
    )
    norms = list(no_res["gradient_norms"].values())
    assert len(norms[0]) == len(norms[1]) == 50 and all(
        v > 0 for v in norms[1].values()
    )  # ResNet-152: 3+8+36+3 blocks
    assert set(metrics["compare-depth"]["archs"]) == {"resnet18", "resnet152"}
    assert metrics["compare-depth"]["archs"]["resnet18"]["feature_dim"] == 512
    transfer = metrics["transfer"]
    assert transfer["dataset"] == "cifar100" and list(transfer["settings"]) == [
        "frozen",
        "last-block",
        "full",
        "scratch",
    ]
    params = {k: v["trainable_params"] for k, v in transfer["settings"].items()}
    assert params["frozen"] == 2048 * 100 + 100 < params["last-block"] < params["full"] == params["scratch"]
    assert all(v["wall_s"] > 0 and 0 <= v["val_acc"] <= 1 for v in transfer["settings"].values())
    for plot in (
        "baseline_curves",
        "no-residual_curves",
        "no-residual_gradient_norms",
        "features_maps",
        "features_separability",
        "confusion_matrix",
        "compare_depth",
        "compare_depth_curves",
        "transfer_curves",
        "transfer_tradeoff",
    ):
        assert (folder / "plots" / f"{plot}.png").stat().st_size > 10_000
    assert "feature cache hit" in out and "(random weights)" in out
    an_earlier_atmls_run_still_reports(cli, folder, tmp_path)


def an_earlier_atmls_run_still_reports(cli, folder, tmp_path):
    """A run folder whose config.yaml has the keys' names before ResNet, ViT and CLIP shared them
    reads back under the new names (typed, reported); a new command with an old name is refused."""
    import shutil

    import yaml

    from atml import records

    old = tmp_path / "old-run"
    shutil.copytree(folder, old)
    config = yaml.safe_load((old / "config.yaml").read_text())
    model = config["model"]
    config["model"] = {"arch": model.pop("name"), **model}
    config["data"]["val_images"] = config["data"].pop("test_images")
    config["train"]["precision"] = config["model"].pop("precision")
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    records.check_run(old, resnet.EXPERIMENT)
    code, _, err = cli("report", old, "--to", tmp_path / "report")
    assert code == 0, err
    text = (tmp_path / "report" / "report.md").read_text()
    assert "  name: resnet152" in text and "arch:" not in text and "val_images" not in text
    code, _, err = cli("config", "resnet", "--set", "data.val_images=5")
    assert code == 2 and "config key 'data.val_images' is now 'data.test_images'" in err


def test_offline_named_weights_fail_before_a_run_folder(cli, cifar_root, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    code, _, err = cli(
        "run",
        "resnet",
        "--part",
        "baseline",
        "--set",
        f"data.root={cifar_root}",
        "--set",
        "data.download=false",
        "--set",
        "model.weights=imagenet",
        "--out",
        tmp_path / "out",
    )
    assert code == 3 and "resnet152-394f9c45.pth" in err and str(tmp_path / "hub" / "checkpoints") in err
    assert len(error_lines(err)) == 1 and not (tmp_path / "out").exists()


def test_cached_and_uncached_features_are_the_same(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ATML_CACHE_DIR", str(tmp_path))
    _, cfg = resolve(
        "resnet",
        resnet.Config,
        smoke=True,
        sets=[
            f"data.root={cifar_root}",
            "data.dataset=cifar10",
            "data.train_images=40",
            "train.batch_size=8",
        ],
    )
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": "resnet18"})})
    ctx = resnet.EXPERIMENT.prepare(cfg, torch.device("cpu"), ["baseline"])
    train, _ = ctx.splits()
    computed = resnet_parts.frozen_features(ctx, cfg, "resnet18", train, "train", ["layer4"], False)
    cached = resnet_parts.frozen_features(ctx, cfg, "resnet18", train, "train", ["layer4"], False)
    uncached_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"cache": False})})
    direct = resnet_parts.frozen_features(ctx, uncached_cfg, "resnet18", train, "train", ["layer4"], False)
    assert torch.equal(computed["layer4"], cached["layer4"]) and torch.equal(
        computed["layer4"], direct["layer4"]
    )
    flipped = resnet_parts.frozen_features(ctx, cfg, "resnet18", train, "train", ["layer4"], True)
    assert not torch.equal(flipped["layer4"], computed["layer4"])


def test_no_residual_flag_switches_shortcuts_off_everywhere(cli, cifar_root, tmp_path):
    code, out, _ = cli("config", "resnet", "--no-residual")
    assert code == 0 and "no_residual: true" in out
    code, _, err = cli("run", "resnet", "--no-residual=yes")
    assert code == 2 and "--no-residual is a switch" in err
    code, _, err = cli(
        "run",
        "resnet",
        "--smoke",
        "--no-residual",
        "--set",
        "no_residual.blocks=[layer9.0]",
        "--out",
        tmp_path,
    )
    assert (
        code == 2
        and "no_residual.blocks: no residual block 'layer9.0'" in err
        and not (tmp_path / "resnet").exists()
    )
    code, out, err = cli(
        "run",
        "resnet",
        "--smoke",
        "--no-residual",
        "--part",
        "baseline",
        "--set",
        f"data.root={cifar_root}",
        "--set",
        "data.dataset=cifar10",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    assert "no-residual" in out  # the features were computed (or cached) with the shortcuts off


def test_data_parallel_fine_tuning_under_torchrun(cifar_root, tmp_path):
    """Two CPU processes (gloo) fine-tune one model: both end with the same weights (checksums
    gathered across ranks), rank 0's checkpoint holds them, and there is one run folder."""
    import subprocess
    import sys

    from atml.distributed import state_checksum

    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "atml",
        "run",
        "resnet",
        "--smoke",
        "--part",
        "transfer",
        "--set",
        f"data.root={cifar_root}",
        "--set",
        "data.dataset=cifar10",
        "--set",
        "transfer.dataset=cifar10",
        "--set",
        "transfer.settings=[full]",
        "--set",
        "model.name=resnet18",
        "--set",
        "data.train_images=64",
        "--keep-checkpoints",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ATML_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (tmp_path / "resnet").iterdir()
    ranks = json.loads((folder / "metrics.json").read_text())["transfer"]["settings"]["full"]["distributed"]
    assert ranks["world_size"] == 2 and ranks["backend"] == "gloo"
    first, second = ranks["state_checksum_per_rank"]
    assert first == second and ranks["ranks_agree"]
    saved = torch.load(folder / "checkpoints" / "transfer-full.pt", weights_only=True)
    assert state_checksum(saved["states"]["model"]) == first
    assert json.loads((folder / "env.json").read_text())["world_size"] == 2
    assert done.stdout.count("== resnet/transfer done") == 1  # rank 1 is silent


def test_the_original_preset_is_the_notebooks_resnet():
    """ORIGINAL_SETTINGS.md §1, value by value."""
    _, cfg = resolve("resnet", resnet.Config, preset="original")
    assert (cfg.data.dataset, cfg.data.train_images, cfg.data.test_images, cfg.model.img_size) == (
        "cifar10",
        None,
        None,
        224,
    )
    assert (cfg.model.name, cfg.model.weights) == ("resnet152", "imagenet")
    t = cfg.train
    assert (t.epochs, t.batch_size, t.lr, t.flip, t.backbone_bn, cfg.model.precision) == (
        3,
        64,
        1e-3,
        True,
        "train",
        "fp32",
    )
    assert cfg.no_residual.blocks == ["layer2.2", "layer3.3"] and cfg.no_residual.start == "baseline"
    f = cfg.features
    assert (f.layers, f.images, f.draw, f.pca_before_tsne) == (
        ["layer1", "layer3", "layer4"],
        1024,
        "first",
        50,
    )
    assert cfg.transfer.target(cfg.data) == "cifar100" and cfg.transfer.epochs == 3
    assert cfg.transfer.lr == {"frozen": 1e-3, "last-block": 1e-3, "full": 1e-3, "scratch": 1e-2}
    assert cfg.compare_depth.archs == ["resnet18", "resnet152"]


def test_transfer_needs_one_usable_learning_rate_per_setting(cli):
    code, _, err = cli("config", "resnet", "--set", "transfer.lr.scratch=1e-2")
    assert code == 0
    code, _, err = cli("config", "resnet", "--set", "transfer.lr.warm=1.0e-3")
    assert code == 2 and "one learning rate for each of" in err
    code, _, err = cli("config", "resnet", "--set", "transfer.lr.full=1e300")
    assert code == 2 and "(0, 10)" in err


def bn_train_context(cifar_root, *sets):
    _, cfg = resolve(
        "resnet",
        resnet.Config,
        smoke=True,
        sets=[
            f"data.root={cifar_root}",
            "data.dataset=cifar10",
            "data.train_images=32",
            "data.test_images=16",
            "train.batch_size=16",
            "train.epochs=1",
            "model.cache=false",
            "model.name=resnet18",
            "no_residual.blocks=[layer2.1]",
            *sets,
        ],
    )
    return resnet.EXPERIMENT.prepare(cfg, torch.device("cpu"), ["baseline"])


def test_backbone_bn_train_moves_statistics_but_only_the_head_learns(cifar_root, tmp_path):
    from atml.runs import Run

    ctx = bn_train_context(cifar_root, "train.backbone_bn=train")
    before = ctx.frozen("resnet18").model.state_dict()
    run = Run.create(tmp_path, "resnet", "t", ctx.cfg.model_dump(), {})
    trained = resnet_parts.train_head(ctx, ctx.cfg, "resnet18", run, "head")
    after = trained.model.state_dict()
    assert not torch.equal(after["bn1.running_mean"], before["bn1.running_mean"])  # statistics drifted
    assert torch.equal(after["layer1.0.conv1.weight"], before["layer1.0.conv1.weight"])
    assert torch.equal(after["bn1.weight"], before["bn1.weight"])  # BatchNorm's affine weights stay frozen
    assert trained.val_logits.shape == (16, 10) and trained.val_features.shape == (16, 512)

    # the original's warm start: the shortcuts-off run continues from the trained baseline network
    warm = resnet_parts.train_head(
        ctx, ctx.cfg, "resnet18", run, "head-no-residual-from-baseline", ("layer2.1",), trained
    )
    fresh = resnet_parts.train_head(ctx, ctx.cfg, "resnet18", run, "head-no-residual", ("layer2.1",))
    head = trained.model.state_dict()
    assert not torch.equal(warm.model.state_dict()["fc.weight"], head["fc.weight"])  # trained further
    start = (warm.model.state_dict()["fc.weight"] - head["fc.weight"]).abs().max()
    assert start < (fresh.model.state_dict()["fc.weight"] - head["fc.weight"]).abs().max()
    assert torch.equal(trained.model.state_dict()["fc.weight"], head["fc.weight"])  # the baseline untouched


def test_features_draw_first_or_random_and_pca_before_tsne(cifar_root):
    import numpy as np

    from atml.analysis.embeddings import project_2d

    ctx = bn_train_context(cifar_root)
    _, val = ctx.splits()
    assert torch.equal(val.head(5).indices, val.indices[:5])
    sample = val.sample(5, torch.Generator().manual_seed(0))
    assert torch.equal(
        sample.indices, val.sample(5, torch.Generator().manual_seed(0)).indices
    ) and not torch.equal(sample.indices, val.indices[:5])
    x = np.random.default_rng(0).normal(size=(40, 80)).astype("float32")
    assert project_2d(x, "tsne", 0, pca_first=10).shape == (40, 2)
    assert not np.allclose(project_2d(x, "tsne", 0, pca_first=10), project_2d(x, "tsne", 0))


def test_the_frozen_model_experiments_share_one_name_per_setting():
    from atml.config import DrawsSection, FrozenModelSection
    from atml.experiments import clip, vit

    for exp in (resnet, vit, clip):
        fields = exp.Config.model_fields
        assert issubclass(fields["model"].annotation, FrozenModelSection), exp.__name__
        assert issubclass(fields["data"].annotation, DrawsSection), exp.__name__
