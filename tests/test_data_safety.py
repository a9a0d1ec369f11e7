"""`atml data fake` never touches a dataset already on disk, a fake dataset says so wherever it is
read, and two copies of one split are an error, not a silent choice."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest

from atml.data import draws
from atml.data.fake import write_fake_dataset
from atml.data.files import FAKE_MARKER
from atml.errors import DataCorruptError
from tests.conftest import error_lines


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def real_looking(tmp_path) -> Path:
    """A data root holding a dataset that was not written by `atml data fake` (its marker removed)."""
    raw = write_fake_dataset("fashion-mnist", tmp_path / "real", 30, 20, gzip=True)
    (raw / FAKE_MARKER).unlink()
    return tmp_path / "real"


@pytest.mark.parametrize("gzip", [[], ["--gzip"]])
def test_fake_refuses_a_folder_that_holds_a_dataset_and_changes_nothing(cli, real_looking, gzip):
    raw = real_looking / "FashionMNIST" / "raw"
    before = digest(raw)
    code, _, err = cli("data", "fake", "fashion-mnist", "--root", real_looking, *gzip)
    assert code == 2 and "already holds 4 file(s)" in err and "--force" in err
    assert len(error_lines(err)) == 1
    assert digest(raw) == before
    assert [p.name for p in raw.parent.iterdir()] == ["raw"]  # no scratch folder left


def test_force_replaces_the_files_and_leaves_one_copy_of_each(cli, real_looking):
    raw = real_looking / "FashionMNIST" / "raw"
    code, _, _ = cli("data", "fake", "fashion-mnist", "--root", real_looking, "--force", "--n-train", 12)
    assert code == 0
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [FAKE_MARKER, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        + ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    )  # the .gz copies went: a reader must never choose between two
    assert len(draws.load_images("fashion-mnist", "train", real_looking, False).labels) == 12


def test_a_fake_dataset_is_named_fake_by_data_check_and_by_every_reader(cli, tmp_path, capsys):
    code, _, _ = cli("data", "fake", "cifar10", "--root", tmp_path, "--n-train", 10, "--n-test", 10)
    assert code == 0
    code, out, _ = cli("data", "check", "--root", tmp_path)
    cifar = [line for line in out.splitlines() if line.startswith("cifar10 ")]
    assert code == 0 and len(cifar) == 2 and all("FAKE data" in line for line in cifar)
    loaded = draws.load_images("cifar10", "test", tmp_path, False)
    assert loaded.source.startswith("FAKE data: ") and "FAKE data" in capsys.readouterr().err


def test_real_data_is_not_called_fake(real_looking):
    loaded = draws.load_images("fashion-mnist", "test", real_looking, False)
    assert "FAKE" not in loaded.source


def test_torchvisions_layout_a_gz_beside_its_content_is_one_file(cli, real_looking):
    """torchvision's download leaves x.gz and its extracted x side by side: real data, read once."""
    raw = real_looking / "FashionMNIST" / "raw"
    for gz in raw.glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
    before = draws.load_images("fashion-mnist", "test", real_looking, False)
    assert str(raw) in before.source and "FAKE" not in before.source
    code, out, err = cli("data", "check", "--root", real_looking)
    fashion = [line for line in out.splitlines() if line.startswith("fashion-mnist ")]
    assert code == 0 and len(fashion) == 2 and all(f"found: {raw}" in line for line in fashion), out
    assert "DAMAGED" not in out and "two copies" not in err
    plain = raw / "t10k-labels-idx1-ubyte"
    data = bytearray(plain.read_bytes())
    data[-1] = (data[-1] + 1) % 10  # one label differs between the copies
    plain.write_bytes(bytes(data))
    with pytest.raises(DataCorruptError, match="two copies of one file differ"):
        draws.load_images("fashion-mnist", "test", real_looking, False)


def test_two_copies_of_a_split_are_exit_3_naming_both(cli, real_looking, tmp_path):
    raw = real_looking / "FashionMNIST" / "raw"
    shutil.copy(raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-images-idx3-ubyte")
    with pytest.raises(DataCorruptError, match="two copies of one file"):
        draws.load_images("fashion-mnist", "test", real_looking, False)
    code, out, _ = cli("data", "check", "--root", real_looking)
    assert code == 3 and "DAMAGED: two copies" in out
    code, _, err = cli(
        "run", "vae", "--smoke", "--set", f"data.root={real_looking}", "--set", "data.download=false",
        "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 3 and str(raw / "t10k-images-idx3-ubyte") in err and "ubyte.gz" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10", "cifar100", "stl10"])
def test_the_smallest_fake_of_each_dataset_reads_back(cli, tmp_path, dataset):
    code, _, err = cli("data", "fake", dataset, "--root", tmp_path, "--n-train", 10, "--n-test", 10)
    assert code == 0, err
    assert len(draws.load_images(dataset, "train", tmp_path, False).labels) == 10


@pytest.mark.parametrize("size", [["--n-train", "0"], ["--n-test", "3"], ["--n-train", "10000000"]])
def test_fake_sizes_out_of_range_are_exit_2(cli, tmp_path, size):
    code, _, err = cli("data", "fake", "mnist", "--root", tmp_path, *size)
    assert code == 2 and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_fake_into_a_file_or_broken_link_is_one_line(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for root in ("file", "link"):
        code, _, err = cli("data", "fake", "mnist", "--root", tmp_path / root)
        assert code == 2 and "is not a folder" in err and len(error_lines(err)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "link"]


def test_fake_that_cannot_be_written_leaves_nothing_behind(cli, tmp_path, monkeypatch):
    from atml.data import fake

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(fake, "write_idx", full_disk)
    code, _, err = cli("data", "fake", "mnist", "--root", tmp_path)
    assert code == 5 and "No space left on device" in err and len(error_lines(err)) == 1
    assert [p.name for p in (tmp_path / "MNIST").iterdir()] == []
