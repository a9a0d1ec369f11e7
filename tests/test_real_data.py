"""Checks on the real datasets of these machines; each skips, saying why, where its data is absent."""

import hashlib
import json

import pytest
import torch

from atml.analysis.sample_stats import frechet_distance
from atml.config import ClassifierConfig
from atml.data.mnist import DATASETS, ImageDataConfig, locate
from atml.data.mnist_sets import load_split, load_train_heldout, to_signed_range
from atml.experiments.gan import GanEvalConfig, GanModelConfig, GanRunSettings, GanTrainConfig
from atml.experiments.gan.parts import generate, train_together
from atml.models.mlp_gan import Generator
from atml.models.sample_classifier import get_classifier
from atml.runs import Run
from atml.seeding import Seeds
from tests.conftest import REAL_DATA

MNIST_TEST_IMAGES = REAL_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
needs_mnist = pytest.mark.skipif(
    not MNIST_TEST_IMAGES.is_file(),
    reason=f"real MNIST test split not at {MNIST_TEST_IMAGES} (set ATML_REAL_DATA)",
)
needs_fashion = pytest.mark.skipif(
    locate(DATASETS["fashion-mnist"], "train", "/nonexistent") is None,
    reason="FashionMNIST not installed: apt-get install dataset-fashion-mnist",
)


@needs_mnist
@pytest.mark.realdata
def test_real_mnist_test_split_is_torchvisions_file():
    assert hashlib.md5(MNIST_TEST_IMAGES.read_bytes()).hexdigest() == "9fb629c4189551a2d022fa330f9573f3"
    split = load_split("mnist", "test", REAL_DATA, allow_download=False)
    assert split.images.shape == (10000, 28, 28)
    assert torch.bincount(split.labels).min() > 850  # every digit present


@needs_mnist
@pytest.mark.realdata
def test_short_gan_on_real_digits_moves_towards_the_data(tmp_path):
    data_cfg = ImageDataConfig(root=str(REAL_DATA), download=False, train_split="test", heldout=1000)
    data = load_train_heldout("mnist", data_cfg)
    train_x, heldout_x = to_signed_range(data.train.images), to_signed_range(data.heldout.images)
    judge = get_classifier(
        "mnist", train_x, data.train.labels, heldout_x, data.heldout.labels, ClassifierConfig(epochs=2)
    )
    assert judge.heldout_accuracy > 0.95  # a judge worth trusting, measured on images it never saw
    _, real_features = judge.predict(heldout_x)

    settings = GanRunSettings(
        data=data_cfg, model=GanModelConfig(), train=GanTrainConfig(epochs=6, grid_every=6)
    )
    run = Run.create(tmp_path, "gan", "real", {}, env={})
    torch.manual_seed(0)
    untrained = generate(Generator(), torch.randn(1000, 100))
    (one,) = train_together(
        "real", "real", settings, data, [Seeds(0)], GanEvalConfig(), [run], torch.device("cpu")
    )
    history = one.history
    trained = generate(one.G, torch.randn(1000, 100))

    def fd(images):
        return frechet_distance(judge.predict(images)[1].double().numpy(), real_features.double().numpy())

    assert fd(trained) < 0.6 * fd(untrained)  # measured here: 840 vs 1683 after 6 epochs
    assert history.epochs[-1]["d_real"] > history.epochs[-1]["d_fake"]


@needs_fashion
@pytest.mark.realdata
def test_fashion_mnist_found_at_the_debian_location():
    train = load_split("fashion-mnist", "train", "/nonexistent-root", allow_download=False)
    test = load_split("fashion-mnist", "test", "/nonexistent-root", allow_download=False)
    assert "/usr/share/datasets/fashion-mnist" in train.source
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10


@needs_fashion
@pytest.mark.realdata
def test_short_vae_on_real_fashion_mnist_learns_and_uses_its_latents(tmp_path, cli):
    code, _, err = cli(
        "run",
        "vae",
        "--part",
        "collapse",
        "--out",
        tmp_path,
        "--set",
        "data.train_subset=6000",
        "--set",
        "train.epochs=2",
        "--set",
        "eval.test_images=2000",
        "--set",
        "eval.latent_map=pca",
    )
    assert code == 0, err
    (folder,) = (tmp_path / "vae").iterdir()
    m = json.loads((folder / "metrics.json").read_text())["collapse"]["constant"]
    assert (
        "/usr/share/datasets/fashion-mnist"
        in json.loads((folder / "metrics.json").read_text())["collapse"]["data"]
    )
    assert m["test_recon"] < 40  # an untrained decoder scores ~100 (mean image ~50)
    assert m["active_units"] >= 3 and m["mutual_information"] > 1.0
