import json
import re

import pytest
import torch
import torch.nn.functional as F

from atml.analysis.modality_gap import gap_share, modality_gap, similarities
from atml.analysis.procrustes import apply_rotation, fit_rotation
from atml.analysis.zero_shot import class_embeddings, per_class_accuracy, predict
from atml.data.fake import write_fake_dataset
from atml.data.prompts import class_prompt_names, published_templates
from atml.experiments import clip
from tests.conftest import error_lines


def separable(n_per_class=50, classes=5, dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(classes, dim, generator=g), dim=-1) * 5
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[labels] + torch.randn(len(labels), dim, generator=g) * 0.3, labels


def test_zero_shot_is_perfect_when_texts_are_the_class_centroids_of_separable_images():
    images, labels = separable()
    centroids = torch.stack([images[labels == c].mean(0) for c in range(5)])
    texts = class_embeddings(centroids.unsqueeze(1))  # one "prompt" per class
    predicted = predict(images, texts)
    assert (predicted == labels).all()
    assert per_class_accuracy(predicted, labels, 6)[:5] == [1.0] * 5
    shuffled = predict(images, texts[torch.tensor([1, 2, 3, 4, 0])])
    assert (shuffled == labels).float().mean() == 0  # wrong texts, wrong answers: the test can fail


def test_prompt_ensembling_averages_unit_prompt_embeddings():
    prompts = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])  # one class, two prompts of different norms
    assert torch.allclose(class_embeddings(prompts), F.normalize(torch.tensor([[1.0, 1.0]]), dim=-1))


def test_procrustes_recovers_a_known_rotation():
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(200, 16, generator=g, dtype=torch.float64), dim=-1)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    found, scale = fit_rotation(x, x @ rotation)
    assert torch.allclose(found, rotation, atol=1e-8)
    assert scale == pytest.approx(200)  # trace of XᵀX: every pair mapped exactly
    assert torch.allclose(apply_rotation(x, found).double(), x @ rotation, atol=1e-6)
    assert torch.allclose(found @ found.T, torch.eye(16, dtype=torch.float64), atol=1e-10)


def test_the_gap_is_zero_for_identical_distributions_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 64, generator=g)
    assert modality_gap(x, x) == pytest.approx(0.0, abs=1e-12)
    assert modality_gap(x, torch.randn(2000, 64, generator=g)) < 0.1  # two draws of one distribution
    direction = F.normalize(torch.randn(64, generator=g), dim=0)
    gaps = [modality_gap(x, x + shift * direction * 8) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert gaps[0] == pytest.approx(0.0, abs=1e-12) and all(a < b for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] <= 2.0  # two points on the unit sphere are at most 2 apart
    assert gap_share(x, x) == 0.0
    one, other = torch.ones(10, 4), torch.tensor([[1.0, -1, 0, 0]]).repeat(10, 1)
    assert gap_share(one, other) == pytest.approx(1.0)  # every pair differs by the same vector


def test_matched_and_unmatched_similarity():
    texts = torch.eye(3)
    images = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    sims = similarities(images, texts, torch.tensor([0, 1, 2, 1]))
    assert sims.matched == pytest.approx(0.75) and sims.unmatched == pytest.approx(0.125)


def test_published_prompts_and_class_names():
    assert published_templates("stl10") == ("a photo of a {}.", "a photo of the {}.")
    assert len(published_templates("cifar100")) == 18 and published_templates("fashion-mnist") is None
    assert class_prompt_names(("aquarium_fish", "T-shirt/top"), {"T-shirt/top": "t-shirt"}) == [
        "aquarium fish",
        "t-shirt",
    ]


def test_tokenizer_works_offline():
    from atml.models.weights import open_clip_tokenizer

    tokens = open_clip_tokenizer("ViT-B-32")(["a photo of a cat.", "a dog"])
    assert tokens.shape == (2, 77) and tokens[0, 0] != tokens[0, -1]


@pytest.fixture(scope="module")
def stl_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("stl")
    write_fake_dataset("stl10", root, n_train=10, n_test=130)
    return root


def test_smoke_run_of_every_clip_part_on_stl10_files(cli, stl_root, tmp_path):
    code, out, err = cli(
        "run",
        "clip",
        "--smoke",
        "--set",
        "data.dataset=stl10",
        "--set",
        f"data.root={stl_root}",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    (folder,) = (tmp_path / "clip").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert list(metrics) == list(clip.EXPERIMENT.part_names) and all(
        m["random_weights"] for m in metrics.values()
    )
    zeroshot = metrics["zeroshot"]
    assert (
        set(zeroshot["strategies"]) == {"plain", "template", "descriptive", "clip-published"}
        and not zeroshot["skipped"]
    )
    assert zeroshot["strategies"]["clip-published"]["templates"] == ["a photo of a {}.", "a photo of the {}."]
    assert zeroshot["n_images"] == 120 and len(zeroshot["strategies"]["plain"]["per_class"]) == 10
    gap = metrics["gap"]
    assert 0 < gap["gap"] <= 2 and 0 <= gap["gap_share_of_pair_distance"] <= 1
    assert gap["norms_after"]["image"]["mean"] == pytest.approx(1.0) and gap["norms_after"]["text"][
        "mean"
    ] == pytest.approx(1.0)
    procrustes = metrics["procrustes"]
    assert procrustes["n_fit"] + procrustes["n_held_out"] == 120 and procrustes["n_held_out"] == 60
    assert procrustes["held_out"]["after"]["gap"] < procrustes["held_out"]["before"]["gap"]
    for plot in (
        "zeroshot_per_class",
        "gap_maps",
        "gap_norms_similarity",
        "procrustes_maps",
        "procrustes_before_after",
    ):
        assert (folder / "plots" / f"{plot}.png").stat().st_size > 10_000
    lines = [
        line for line in out.splitlines() if re.match(r"\s*(procrustes|gap|zeroshot) {2,}\S", line)
    ]  # the summary table's rows
    parts = [line.split()[0] for line in lines]
    assert list(dict.fromkeys(parts)) == ["zeroshot", "gap", "procrustes"] and parts.count("procrustes") == 4
    first = lines[parts.index("procrustes")]
    assert "held-out" in first and "(random weights)" in first


def test_strategy_names_and_templates_are_checked_before_a_run_folder(cli, fake_root, tmp_path):
    base = ("run", "clip", "--smoke", "--set", f"data.root={fake_root}", "--out", tmp_path / "out")
    code, _, err = cli(*base, "--set", "gap.strategy=nope")
    assert code == 2 and "gap.strategy='nope'" in err
    code, _, err = cli(
        *base, "--set", "procrustes.strategy=clip-published"
    )  # smoke data: fashion-mnist, no published prompts
    assert code == 2 and "published none for fashion-mnist" in err
    code, _, err = cli(*base, "--set", 'zeroshot.strategies={"bad": ["no placeholder"]}')
    assert code == 2 and "exactly one {}" in err
    assert not (tmp_path / "out").exists()


def test_offline_pretrained_tag_fails_fast_naming_the_file_and_folder(cli, stl_root, tmp_path, monkeypatch):
    import huggingface_hub

    import atml.models.weights as weights

    monkeypatch.setattr(weights, "_hub_unreachable", lambda: "huggingface.co cannot be reached")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for download in ("false", "true"):
        code, _, err = cli(
            "run",
            "clip",
            "--part",
            "gap",
            "--set",
            "model.weights=openai",
            "--set",
            f"data.download={download}",
            "--set",
            "data.dataset=stl10",
            "--set",
            f"data.root={stl_root}",
            "--out",
            tmp_path / "out",
        )
        assert (
            code == 3
            and "open_clip_model.safetensors" in err
            and "models--timm--vit_base_patch32_clip_224.openai" in err
        ), err
        assert len(error_lines(err)) == 1 and not (tmp_path / "out").exists()
    code, _, err = cli(
        "run",
        "clip",
        "--set",
        "model.weights=no_such_tag",
        "--set",
        f"data.root={stl_root}",
        "--out",
        tmp_path / "out",
    )
    assert code == 2 and "openai" in err and "laion2b_s34b_b79k" in err


def test_the_original_preset_is_the_notebooks_clip():
    """ORIGINAL_SETTINGS.md §5 and Appendix B, value by value."""
    import random

    from atml.config import resolve

    _, cfg = resolve("clip", clip.Config, preset="original")
    random.seed(42)
    assert cfg.data.pair_indices == random.sample(range(8000), 100) and cfg.data.test_images is None
    assert (cfg.data.dataset, cfg.model.name, cfg.model.weights, cfg.seed) == (
        "stl10",
        "ViT-B-32",
        "openai",
        42,
    )
    assert (cfg.model.normalise, cfg.model.interpolation) == (False, "bilinear")
    assert cfg.zeroshot.strategies == {
        "plain": ["{}"],
        "template": ["a photo of a {}"],
        "descriptive": [
            "a photo of a {}",
            "a picture of a {}",
            "an image of a {}",
            "a high quality photo of a {}",
            "a clear image of a {}",
        ],
    }
    assert not cfg.zeroshot.renormalise_ensemble
    g = cfg.gap
    assert (g.images, g.strategy, g.maps, g.embeddings, g.map_texts, g.unmatched) == (
        100,
        "template",
        ["tsne", "umap"],
        ["raw", "normalised"],
        "captions",
        "other-captions",
    )
    p = cfg.procrustes
    assert (p.images, p.strategy, p.scoring, p.maps) == (None, "template", "in-sample", ["tsne", "umap"])


def test_ensemble_without_renormalising_and_the_originals_off_diagonal():
    from atml.analysis.modality_gap import caption_cosines

    prompts = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    assert torch.allclose(class_embeddings(prompts, renormalise=False), torch.tensor([[0.5, 0.5]]))
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    captions = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # image 0 and 1 share a class caption
    matched, unmatched = caption_cosines(images, captions)
    assert matched.tolist() == [1.0, 1.0, 1.0] and sorted(unmatched.tolist()) == [0, 0, 0, 0, 1, 1]


def test_pair_indices_pick_the_images_and_in_sample_procrustes(cli, stl_root, tmp_path):
    indices = "[7, 3, 11, 5, 0, 9, 2, 1]"
    base = ("run", "clip", "--smoke", "--set", "data.dataset=stl10", "--set", f"data.root={stl_root}")
    code, _, err = cli(
        *base,
        "--set",
        "data.test_images=null",
        "--set",
        "data.pair_indices=[0, 1, 2, 9999]",
        "--out",
        tmp_path / "bad",
    )
    assert code == 2 and "data.pair_indices" in err and "9999" in err and not (tmp_path / "bad").exists()
    code, _, err = cli(
        *base,
        "--set",
        "data.test_images=null",
        "--set",
        f"data.pair_indices={indices}",
        "--set",
        "procrustes.scoring=in-sample",
        "--set",
        "gap.embeddings=[raw, normalised]",
        "--set",
        "gap.unmatched=other-captions",
        "--part",
        "gap",
        "--part",
        "procrustes",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    (folder,) = (tmp_path / "clip").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["gap"]["n_images"] == 8 and metrics["procrustes"]["n_fit"] == 8
    assert (
        metrics["procrustes"]["held_out"] is None
        and "in-sample" in metrics["procrustes"]["skipped"]["held_out"]
    )
    after = metrics["procrustes"]["fit_split_not_held_out"]["after"]
    before = metrics["procrustes"]["fit_split_not_held_out"]["before"]
    assert after["matched_cosine"] > max(0.9, before["matched_cosine"])  # in-sample: near-perfect fit
