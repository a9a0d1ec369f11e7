"""Bad input ends in one line and its documented exit code: nothing hangs, nothing grows without
bound, no traceback reaches the terminal, no run folder is made for an input error, and one
experiment's failure does not stop `atml run all`."""

from __future__ import annotations

import struct
import zlib

import pytest

from atml import experiments
from atml.data.photos import load_photos
from atml.errors import DataCorruptError, OutputWriteError
from atml.runs import Run
from tests.conftest import error_lines

ALIASES = """\
a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
train: {epochs: *c}
"""


def one_line(err: str) -> bool:
    return len(error_lines(err)) == 1 and "Traceback" not in err


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_out_on_a_broken_link_is_exit_2_at_once(cli, tmp_path, kind):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "nowhere" if kind == "dangling" else link)
    code, _, err = cli("run", "gan", "--smoke", "--out", link)
    assert code == 2 and "broken link or a link loop" in err and one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_creating_a_run_folder_below_a_dangling_link_gives_up(tmp_path):
    (tmp_path / "out").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputWriteError, match="is not a folder"):
        Run.create(tmp_path / "out", "gan", "x", {}, {})  # used to loop forever making names


def test_yaml_aliases_are_refused_in_config_files_and_set_values(cli, tmp_path):
    config = tmp_path / "bomb.yaml"
    config.write_text(ALIASES)
    code, _, err = cli("config", "gan", "--config", config)
    assert code == 2 and "aliases (*name) are not accepted" in err and one_line(err)
    code, _, err = cli("config", "gan", "--set", "train.epochs=[&a 1, *a]")
    assert code == 2 and "aliases" in err and one_line(err)


def test_an_oversized_config_file_is_refused_before_parsing(cli, tmp_path):
    config = tmp_path / "big.yaml"
    config.write_text("seed: 1\n" + "# padding\n" * 120_000)
    code, _, err = cli("config", "gan", "--config", config)
    assert code == 2 and "up to 1 MB" in err and one_line(err)


@pytest.mark.parametrize("value", ["9" * 5000, "[" + "1, " * 50_000 + "1]"])
def test_a_huge_value_is_echoed_short(cli, value):
    code, _, err = cli("config", "gan", "--set", f"train.epochs={value}")
    assert code == 2 and one_line(err) and len(err) < 600


def tiny_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels (no image data follows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [12_000, 20_000])  # over PIL's warning limit; over its bomb limit
def test_a_huge_photo_is_refused_from_its_header_before_decoding(tmp_path, side):
    photo = tmp_path / "huge.png"
    photo.write_bytes(tiny_png_header(side, side))
    with pytest.raises(DataCorruptError, match="huge.png") as caught:
        load_photos([str(photo)])
    assert f"{side}×{side}" in str(caught.value) or "exceeds limit" in str(caught.value)


def test_photos_of_one_file_name_in_two_folders_keep_both(tmp_path):
    from PIL import Image

    for folder, colour in (("a", "red"), ("b", "blue")):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8), colour).save(tmp_path / folder / "parrot.png")
    photos = load_photos([str(tmp_path / "a" / "parrot.png"), str(tmp_path / "b")])
    assert [p.name for p in photos] == ["a/parrot", "b/parrot"]
    assert photos[0].pixels[0, 0].tolist() == [255, 0, 0] and photos[1].pixels[0, 0].tolist() == [0, 0, 255]


def crash(part, ctxs, runs):
    raise RuntimeError("a bug atml did not foresee")


@pytest.fixture
def crashing_gan(monkeypatch):
    from atml.experiments.gan import parts as gan_parts

    monkeypatch.setattr(gan_parts, "run_part", crash)
    return experiments.get("gan")


def test_an_unforeseen_error_in_a_part_is_one_line_exit_1_with_its_traceback_in_the_run(
    cli, crashing_gan, fake_root, tmp_path
):
    code, _, err = cli(
        "run", "gan", "--smoke", "--part", crashing_gan.part_names[0], "--set", f"data.root={fake_root}",
        "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 1 and one_line(err)
    assert f"gan/{crashing_gan.part_names[0]} failed: RuntimeError: a bug atml did not foresee" in err
    (folder,) = (tmp_path / "o" / "gan").iterdir()
    assert str(folder / "error.txt") in err
    assert "Traceback" in (folder / "error.txt").read_text() and "def crash" not in err


def test_run_all_goes_on_after_an_unforeseen_error_and_names_it(
    cli, crashing_gan, fake_root, tmp_path, monkeypatch
):
    monkeypatch.setattr(experiments, "EXPERIMENTS", {k: experiments.EXPERIMENTS[k] for k in ("gan", "vae")})
    code, out, err = cli(
        "run", "all", "--smoke", "--set", f"data.root={fake_root}", "--out", tmp_path / "o"
    )  # fmt: skip
    assert code == 1 and "Traceback" not in err
    assert "gan FAILED: gan/" in err and "atml run all: 1 of 2 experiments done; failed: gan" in out + err
    assert (next((tmp_path / "o" / "vae").iterdir()) / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x" * 300], "--name is 300 characters; at most 100"),
        (["--seeds", "1000000"], "--seeds asks for 1,000,000 runs; at most 100 without --force"),
        (["--seeds", "0," + str(2**32)], "from 0 to 2**32 - 1"),
    ],
)
def test_run_names_and_seed_counts_are_bounded_before_any_folder(cli, tmp_path, args, message):
    code, _, err = cli("run", "gan", "--smoke", *args, "--out", tmp_path / "o")
    assert code == 2 and message in err and one_line(err)
    assert not (tmp_path / "o").exists()


def test_an_unwritable_feature_cache_is_skipped_with_one_warning(tmp_path, monkeypatch, capsys):
    import torch

    from atml import feature_cache

    monkeypatch.setattr(feature_cache, "_UNWRITABLE", set())
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    cache = feature_cache.FeatureCache(tmp_path / "cache")
    for i in range(3):
        outputs = cache.get_or_compute({"i": i}, lambda: {"x": torch.ones(2)}, "test")
        assert torch.equal(outputs["x"], torch.ones(2))
    err = capsys.readouterr().err
    assert err.count("feature cache not written") == 1 and "going on without it" in err


def test_files_atml_writes_follow_the_umask(tmp_path):
    import os

    from atml.runs import atomic_write_text

    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_a_plain_pickle_weights_file_is_one_reason_without_torch_warnings(tmp_path, capsys):
    import pickle

    from torch import nn

    from atml.models.weights import load_state_dict

    (tmp_path / "w.pkl").write_bytes(pickle.dumps({"weight": [1.0]}, protocol=4))
    with pytest.raises(DataCorruptError, match="runs no pickled code"):
        load_state_dict(nn.Linear(1, 1), tmp_path / "w.pkl")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("setting", ["train.lr_g=1e300", "model.init_std=1e30", "train.lr_d=.inf"])
def test_floats_that_would_overflow_training_are_refused(cli, setting):
    code, _, err = cli("config", "gan", "--set", setting)
    assert code == 2 and setting.split("=")[0] in err and one_line(err)
