"""The pieces the pretrained-model experiments share: image datasets, device preprocessing,
weights resolution and the feature cache."""

import pickle
import urllib.error

import numpy as np
import pytest
import torch

from atml.data.draws import load_images
from atml.data.fake import write_fake_dataset
from atml.data.preprocess import Preprocess, to_model_input
from atml.errors import DataCorruptError, DataNotFoundError, UserError
from atml.feature_cache import FeatureCache, batched_outputs
from atml.models import weights as weights_mod
from atml.models.weights import fetch_url, sha256, torchvision_classifier


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for name in ("cifar10", "cifar100", "stl10"):
        write_fake_dataset(name, root, n_train=30, n_test=12)
    return root


@pytest.mark.parametrize(
    "name, tv_class, shape, n_classes",
    [
        ("cifar10", "CIFAR10", (3, 32, 32), 10),
        ("cifar100", "CIFAR100", (3, 32, 32), 100),
        ("stl10", "STL10", (3, 96, 96), 10),
    ],
)
def test_fakes_read_the_same_through_atml_and_torchvision(
    image_root, monkeypatch, name, tv_class, shape, n_classes
):
    import torchvision.datasets as tvd

    cls = getattr(tvd, tv_class)
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)  # torchvision checks the real files' md5
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    for split in ("train", "test"):
        ours = load_images(name, split, image_root, allow_download=False)
        theirs = cls(
            str(image_root),
            download=False,
            **({"split": split} if name == "stl10" else {"train": split == "train"}),
        )
        reference = theirs.data if name == "stl10" else theirs.data.transpose(0, 3, 1, 2)  # CIFAR: HWC
        assert ours.images.shape == (len(theirs), *shape) and ours.images.dtype == torch.uint8
        assert np.array_equal(ours.images.numpy(), reference)
        assert ours.labels.tolist() == [
            int(t) for t in (theirs.labels if name == "stl10" else theirs.targets)
        ]
        assert len(ours.classes) == n_classes and ours.labels.max() < n_classes


def test_idx_datasets_come_as_one_channel_images(fake_root):
    data = load_images("fashion-mnist", "test", fake_root, allow_download=False)
    assert data.images.shape == (300, 1, 28, 28) and data.classes[0] == "T-shirt/top"


def test_missing_and_damaged_image_files_are_named(tmp_path, image_root):
    with pytest.raises(DataNotFoundError, match="test_batch, batches.meta in .*cifar-10-batches-py"):
        load_images("cifar10", "test", tmp_path, allow_download=False)
    with pytest.raises(UserError, match="unknown dataset 'svhn'"):
        load_images("svhn", "test", tmp_path, allow_download=False)
    broken = tmp_path / "cifar-10-batches-py"
    broken.mkdir()
    (broken / "batches.meta").write_bytes((image_root / "cifar-10-batches-py" / "batches.meta").read_bytes())
    (broken / "test_batch").write_bytes(pickle.dumps({"data": np.zeros(10, np.uint8)})[:20])
    with pytest.raises(DataCorruptError, match="test_batch is not a readable CIFAR pickle"):
        load_images("cifar10", "test", tmp_path, allow_download=False)
    stl = tmp_path / "stl10_binary"
    stl.mkdir()
    (stl / "test_X.bin").write_bytes(bytes(1000))
    (stl / "test_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(DataCorruptError, match="not 2 images of 3×96×96"):
        load_images("stl10", "test", tmp_path, allow_download=False)


def test_preprocessing_on_the_device():
    pp = Preprocess(size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    gray = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    gray[:, :, :, :2] = 255  # left half white
    x = to_model_input(gray, pp)
    assert x.shape == (2, 3, 8, 8) and torch.allclose(x[:, 0], x[:, 2])
    assert x[0, 0, 0, 0].item() == pytest.approx((1 - 0.5) / 0.25) and x[0, 0, 0, -1].item() == pytest.approx(
        -2.0
    )
    assert torch.equal(to_model_input(gray, pp, flip=True), x.flip(-1))


def test_weights_none_and_local_file(tmp_path):
    random = torchvision_classifier("resnet18", "none", allow_download=False)
    assert (
        random.record.source == "none"
        and random.preprocess.size == 224
        and random.preprocess.mean[0] == pytest.approx(0.485)
    )
    path = tmp_path / "mine.pth"
    torch.save(random.model.state_dict(), path)
    loaded = torchvision_classifier("resnet18", str(path), allow_download=False)
    assert (
        loaded.record.source == "file"
        and loaded.record.sha256 == sha256(path)
        and len(loaded.record.sha256) == 64
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.model.state_dict().values(), random.model.state_dict().values())
    )
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "foreign.pth")
    with pytest.raises(DataCorruptError, match="foreign.pth does not load into ResNet"):
        torchvision_classifier("resnet18", str(tmp_path / "foreign.pth"), allow_download=False)
    with pytest.raises(UserError, match="unknown weights 'V9' for resnet18; accepted: IMAGENET1K_V1"):
        torchvision_classifier("resnet18", "V9", allow_download=False)


def test_named_weights_offline_name_the_file_and_its_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(DataNotFoundError) as info:
        torchvision_classifier("resnet152", "imagenet", allow_download=False)
    message = str(info.value)
    assert (
        "resnet152-394f9c45.pth" in message
        and str(tmp_path / "hub" / "checkpoints") in message
        and "\n" not in message
    )

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(
        DataNotFoundError, match="could not be downloaded .*Name or service not known.*resnet152-f82ba261.pth"
    ):
        torchvision_classifier("resnet152", "IMAGENET1K_V2", allow_download=True)


def test_cached_file_is_checked_against_the_hash_in_its_name(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    payload = b"weights"
    import hashlib

    prefix = hashlib.sha256(payload).hexdigest()[:8]
    (tmp_path / "checkpoints").mkdir()
    good = tmp_path / "checkpoints" / f"net-{prefix}.pth"
    good.write_bytes(payload)
    assert fetch_url(f"https://example.invalid/net-{prefix}.pth", allow_download=False, what="net") == good
    good.write_bytes(b"damaged")
    weights_mod._sha256.cache_clear()
    with pytest.raises(DataCorruptError, match="does not match the sha256 prefix"):
        fetch_url(f"https://example.invalid/net-{prefix}.pth", allow_download=False, what="net")


def test_feature_cache_computes_once_and_recomputes_damaged_entries(tmp_path, capsys):
    from atml import logs

    logs.setup()  # as the CLI does: progress to stdout, warnings to stderr
    cache = FeatureCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"features": torch.arange(12.0).view(3, 4)}

    key = {"model": "m", "weights": "sha", "indices": "abc", "layer": "layer4", "flip": False}
    first = cache.get_or_compute(key, compute, "t")
    again = cache.get_or_compute(key, compute, "t")
    assert (
        len(calls) == 1
        and torch.equal(first["features"], again["features"])
        and "feature cache hit" in capsys.readouterr().out
    )
    cache.get_or_compute(key | {"flip": True}, compute, "t")
    assert len(calls) == 2
    path = cache.path(key)
    path.write_bytes(path.read_bytes()[:-40])  # a damaged entry
    recomputed = cache.get_or_compute(key, compute, "t")
    assert (
        len(calls) == 3
        and torch.equal(recomputed["features"], first["features"])
        and "damaged" in capsys.readouterr().err
    )
    FeatureCache(tmp_path, enabled=False).get_or_compute(key, compute, "t")
    assert len(calls) == 4


def test_batched_outputs_equal_one_big_forward():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    ).eval()
    images = torch.randint(0, 256, (10, 3, 12, 12), dtype=torch.uint8)
    pp = Preprocess(size=16)
    out = batched_outputs(lambda x: {"pooled": net(x)}, images, pp, torch.device("cpu"), batch_size=3)
    with torch.no_grad():
        expected = net(to_model_input(images, pp))
    assert torch.allclose(out["pooled"], expected, atol=1e-6)
