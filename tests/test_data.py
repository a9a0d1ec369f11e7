import gzip

import numpy as np
import pytest
import torch

from atml.data.batching import TensorBatches
from atml.data.fake import fake_images
from atml.data.idx import read_idx, write_idx
from atml.data.mnist import DATASETS, ImageDataConfig, locate
from atml.data.mnist_sets import load_split, load_train_heldout, to_signed_range
from atml.errors import DataCorruptError, DataNotFoundError, UserError


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip(tmp_path, suffix):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / f"a{suffix}", array)
    assert np.array_equal(read_idx(tmp_path / f"a{suffix}"), array)


def test_idx_header_layout(tmp_path):
    write_idx(tmp_path / "labels", np.array([7, 2, 1], dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])


@pytest.mark.parametrize(
    "payload, name, message",
    [
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05", "bad-magic", "magic"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]), "truncated", "promises 9"),
        (b"not gzip at all", "x.gz", "gzip"),
    ],
)
def test_corrupt_files_are_named(tmp_path, payload, name, message):
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(DataCorruptError, match=message):
        read_idx(tmp_path / name)


def test_truncated_gzip_is_corrupt(tmp_path):
    full = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4]))
    (tmp_path / "t.gz").write_bytes(full[:-6])
    with pytest.raises(DataCorruptError):
        read_idx(tmp_path / "t.gz")


def test_fake_dataset_is_read_by_the_real_loader(fake_root):
    split = load_split("mnist", "train", fake_root, allow_download=False)
    assert split.images.shape == (800, 28, 28) and split.images.dtype == torch.uint8
    assert split.labels.dtype == torch.int64 and set(split.labels.tolist()) == set(range(10))
    assert "MNIST/raw" in split.source


def test_missing_dataset_names_files_and_place(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_split("mnist", "train", tmp_path, allow_download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "MNIST" / "raw") in message


def test_system_location_is_searched_after_the_root(tmp_path, monkeypatch):
    monkeypatch.delenv("ATML_NO_SYSTEM_DATA", raising=False)  # this test's own "system" folder
    system = tmp_path / "system"
    images, labels = fake_images(20)
    write_idx(system / "train-images-idx3-ubyte.gz", images)
    write_idx(system / "train-labels-idx1-ubyte.gz", labels)
    dataset = DATASETS["fashion-mnist"]
    patched = type(dataset)(dataset.name, dataset.folder, (str(system),), dataset.classes)
    assert locate(patched, "train", tmp_path / "empty")[0].parent == system


def test_label_out_of_range_is_corrupt(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.array([3, 12], np.uint8))
    with pytest.raises(DataCorruptError, match="label 12"):
        load_split("mnist", "test", tmp_path, allow_download=False)


def test_train_heldout_split_is_disjoint_and_subset_applies(fake_root):
    cfg = ImageDataConfig(root=str(fake_root), download=False, heldout=100, train_subset=300)
    split = load_train_heldout("mnist", cfg)
    full = load_split("mnist", "train", fake_root, False)
    assert len(split.train.images) == 300 and len(split.heldout.images) == 100
    as_rows = lambda images: {bytes(im.numpy()) for im in images}  # noqa: E731
    assert not as_rows(split.train.images) & as_rows(split.heldout.images)
    assert as_rows(split.train.images) | as_rows(split.heldout.images) <= as_rows(full.images)
    again = load_train_heldout("mnist", cfg)
    assert torch.equal(again.heldout.images, split.heldout.images)  # the same draw every time
    test_split = load_train_heldout("mnist", cfg.model_copy(update={"train_split": "test"}))
    assert "TEST split used as training set" in test_split.description
    with pytest.raises(UserError, match="heldout"):
        load_train_heldout("mnist", cfg.model_copy(update={"heldout": 800}))


def test_one_class_subset_applies_to_heldout_too(fake_root):
    cfg = ImageDataConfig(root=str(fake_root), download=False, heldout=300, train_class=4, train_subset=20)
    split = load_train_heldout("mnist", cfg)
    assert len(split.train.labels) == 20 and set(split.train.labels.tolist()) == {4}
    assert len(split.heldout.labels) > 0 and set(split.heldout.labels.tolist()) == {4}


def test_signed_range():
    x = to_signed_range(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert x.shape == (1, 1, 1, 2) and x.min() == -1 and x.max() == 1


def test_batches_cover_every_index_once_and_resume_the_order():
    x = torch.arange(10)
    batches = TensorBatches(x, batch_size=3, seed=0, drop_last=False)
    seen = torch.cat([b for (b,) in batches])
    assert sorted(seen.tolist()) == list(range(10)) and len(batches) == 4
    state = batches.state_dict()
    expected = [b.tolist() for (b,) in batches]
    again = TensorBatches(x, batch_size=3, seed=99, drop_last=False)
    again.load_state_dict(state)
    assert [b.tolist() for (b,) in again] == expected
    assert len(TensorBatches(x, batch_size=3)) == 3  # drop_last by default


def test_fixed_epoch_length_chains_reshuffled_passes():
    batches = TensorBatches(torch.arange(10), batch_size=4, seed=0, batches_per_epoch=5)
    out = [b.tolist() for (b,) in batches]
    assert len(batches) == 5 and len(out) == 5 and all(len(b) == 4 for b in out)
    seen_in_first_pass = set(out[0] + out[1])
    assert len(seen_in_first_pass) == 8
    with pytest.raises(ValueError, match="cannot fill"):
        TensorBatches(torch.arange(3), batch_size=4)


def test_gzip_with_a_corrupt_stream_is_a_data_error(tmp_path):
    full = bytearray(gzip.compress(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes()))
    full[40:60] = bytes(20)  # damage the deflate stream, keep the gzip header valid
    (tmp_path / "t.gz").write_bytes(bytes(full))
    with pytest.raises(DataCorruptError, match="t.gz"):
        read_idx(tmp_path / "t.gz")


def test_images_of_the_wrong_size_are_a_data_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((4, 32, 32), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataCorruptError, match="32×32 pixels"):
        load_split("mnist", "test", tmp_path, allow_download=False)


def test_explicit_index_ranges_replace_the_random_draw(fake_root):
    cfg = ImageDataConfig(root=str(fake_root), download=False, train_range=(0, 10), heldout_range=(20, 30))
    data = load_train_heldout("mnist", cfg)
    full = load_split("mnist", "train", fake_root, False)
    assert torch.equal(data.train.images, full.images[:10]) and torch.equal(
        data.heldout.images, full.images[20:30]
    )
    assert "file indices 0–9 trained on, 20–29 held out" in data.description


@pytest.mark.parametrize(
    "ranges, message",
    [
        ({"train_range": (0, 10)}, "go together"),
        ({"train_range": (0, 10), "heldout_range": (5, 15)}, "overlap"),
        ({"train_range": (10, 10), "heldout_range": (20, 30)}, "holds no image"),
    ],
)
def test_bad_index_ranges_are_refused(ranges, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        ImageDataConfig(**ranges)


def test_an_index_range_past_the_split_is_a_user_error(fake_root):
    cfg = ImageDataConfig(root=str(fake_root), download=False, train_range=(0, 10), heldout_range=(20, 10**6))
    with pytest.raises(UserError, match="reaches past"):
        load_train_heldout("mnist", cfg)
