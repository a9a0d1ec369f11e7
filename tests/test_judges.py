"""The GAN's sample judge ships with atml: the same classifier, checked by its SHA-256, scores every
machine's samples, so classes covered, KL and Fréchet distance compare across machines and over
time; `eval.classifier.judge: train` still trains one here, and metrics.json says which scored."""

import hashlib
import json
import shutil

import pytest
import torch

from atml.errors import DamagedFileError
from atml.experiments.gan import GanEvalConfig
from atml.experiments.gan.parts import describe_samples
from atml.models import shipped_judges
from tests.conftest import REAL_DATA, SYSTEM_DATA_HIDDEN


def test_the_shipped_mnist_judge_loads_with_its_record():
    judge = shipped_judges.load("mnist", torch.device("cpu"))
    meta = json.loads((shipped_judges.folder() / "mnist.json").read_text())
    assert judge.sha256 == meta["sha256"] == hashlib.sha256(judge.cache_file.read_bytes()).hexdigest()
    assert judge.heldout_accuracy == meta["heldout_accuracy"] > 0.95 and meta["heldout_images"] == 1000
    assert meta["command"].startswith("python -m atml.models.shipped_judges mnist")
    assert judge.description == "shipped mnist judge"


def test_a_judge_file_that_fails_its_checksum_is_refused(tmp_path, monkeypatch):
    shutil.copytree(shipped_judges.folder(), tmp_path / "judges")
    weights = tmp_path / "judges" / "mnist.pt"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(shipped_judges, "folder", lambda: tmp_path / "judges")
    with pytest.raises(DamagedFileError, match="not the .* it shipped with; reinstall atml"):
        shipped_judges.load("mnist", torch.device("cpu"))
    weights.unlink()
    with pytest.raises(DamagedFileError, match="atml ships no mnist judge"):
        shipped_judges.load("mnist", torch.device("cpu"))


def test_the_same_images_get_the_same_sample_numbers_at_one_and_two_threads():
    judge = shipped_judges.load("mnist", torch.device("cpu"))
    draw = torch.Generator().manual_seed(0)
    images = torch.rand(500, 1, 28, 28, generator=draw) * 2 - 1
    reference = torch.rand(300, 1, 28, 28, generator=draw) * 2 - 1
    ev = GanEvalConfig(n_samples=500)
    threads = torch.get_num_threads()
    scored = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            _, features = judge.predict(reference)
            scored[n] = describe_samples(images, judge, features.double().numpy(), ev)
    finally:
        torch.set_num_threads(threads)
    one, two = scored[1], scored[2]
    assert one["class_counts"] == two["class_counts"] and one["modes_covered"] == two["modes_covered"]
    assert one["frechet_distance"] == pytest.approx(two["frechet_distance"], rel=1e-6)


def test_metrics_say_which_judge_scored_the_samples(cli, fake_root, tmp_path):
    base = ("run", "gan", "--smoke", "--part", "baseline", "--set", f"data.root={fake_root}")
    shipped_sha = json.loads((shipped_judges.folder() / "mnist.json").read_text())["sha256"]
    for judge, description, sha in (
        ("shipped", "shipped mnist judge", shipped_sha),
        ("train", "trained here", None),
    ):
        out = tmp_path / judge
        code, _, err = cli(*base, "--set", f"eval.classifier.judge={judge}", "--out", out)
        assert code == 0, err
        (folder,) = (out / "gan").iterdir()
        baseline = json.loads((folder / "metrics.json").read_text())["baseline"]
        assert baseline["sample_classifier"] == description and baseline["sample_classifier_sha256"] == sha


@pytest.mark.skipif(
    not (REAL_DATA / "MNIST" / "raw").is_dir() or SYSTEM_DATA_HIDDEN,
    reason=f"MNIST's test split is not in {REAL_DATA}",
)
def test_the_shipped_judge_scores_its_held_out_images_as_recorded():
    """Its record says which images it never saw (MNIST's test split, 1,000 held out by seed 0):
    scored again here, they give the recorded accuracy."""
    from atml.data.mnist import ImageDataConfig
    from atml.data.mnist_sets import load_train_heldout, to_signed_range

    judge = shipped_judges.load("mnist", torch.device("cpu"))
    data = ImageDataConfig(root=str(REAL_DATA), download=False, train_split="test", heldout=1000)
    heldout = load_train_heldout("mnist", data).heldout
    labels, _ = judge.predict(to_signed_range(heldout.images))
    assert (labels == heldout.labels).float().mean().item() == pytest.approx(judge.heldout_accuracy, abs=1e-6)
