import json

import numpy as np
import pytest
import torch

from atml.analysis.attention import cls_maps, entropy, rollout, spatial_spread, uniform_entropy, upsample
from atml.analysis.masking import fill_patches, kept_patches, masked_patches, pixel_mask
from atml.analysis.probe import probe_accuracy, wilson_interval
from atml.data.fake import write_fake_dataset
from atml.data.photos import load_photos
from atml.errors import DataCorruptError, DataNotFoundError
from atml.experiments import vit
from atml.models.vit import AttentionMaps, forward_tokens, patch_grid, prefix_tokens
from tests.conftest import error_lines


def tiny_vit(**kwargs):
    import timm

    torch.manual_seed(0)
    return timm.create_model(kwargs.pop("name", "vit_tiny_patch16_224"), pretrained=False, **kwargs).eval()


@pytest.mark.parametrize(
    "kwargs, prefix, grid",
    [
        ({"img_size": 64}, 1, (4, 4)),
        ({"img_size": (48, 80), "reg_tokens": 4}, 5, (3, 5)),  # register tokens and a non-square grid
        ({"name": "deit_tiny_distilled_patch16_224", "img_size": 32}, 2, (2, 2)),  # a distillation token
    ],
)
def test_attention_is_captured_for_every_layer_with_rows_summing_to_one(kwargs, prefix, grid):
    model = tiny_vit(**kwargs)
    assert prefix_tokens(model) == prefix and patch_grid(model) == grid
    fused_before = [b.attn.fused_attn for b in model.blocks]
    x = torch.randn(2, 3, *model.patch_embed.img_size)
    with torch.no_grad():
        plain = model(x)
        with AttentionMaps(model) as captured:
            hooked = model(x)
    tokens = prefix + grid[0] * grid[1]
    assert sorted(captured.maps) == list(range(len(model.blocks)))
    for a in captured.maps.values():
        assert a.shape == (2, model.blocks[0].attn.num_heads, tokens, tokens)
        assert torch.allclose(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5) and (a >= 0).all()
    assert torch.allclose(plain, hooked, atol=1e-4)  # the unfused path computes the same function
    assert [b.attn.fused_attn for b in model.blocks] == fused_before  # timm's setting restored


def test_rollout_of_identity_attention_is_the_identity_and_mixes_otherwise():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    assert torch.allclose(rollout([eye] * 4), torch.eye(5).expand(2, 5, 5))
    uniform = torch.full((1, 2, 4, 4), 0.25)
    rolled = rollout([uniform, uniform], residual=0.5)
    assert torch.allclose(rolled.sum(-1), torch.ones(1, 4)) and not torch.allclose(
        rolled, torch.eye(4).unsqueeze(0)
    )


def test_a_patch_known_in_the_map_lands_on_the_pixels_of_that_patch():
    """The map of grid (3, 5) on a 48 × 80 image: patch (2, 3) covers rows 32–47, columns 48–63."""
    attention = torch.zeros(1, 1, 1 + 15, 1 + 15)
    attention[0, 0, 0, 1 + 2 * 5 + 3] = 1.0  # the class token attends to patch (2, 3) only
    heat = upsample(cls_maps(attention, 1, (3, 5)), (48, 80))[0, 0]
    row, col = divmod(int(heat.argmax()), 80)
    assert 32 <= row < 48 and 48 <= col < 64
    assert heat[32:48, 48:64].sum() > 0.5 * heat.sum()
    maps = cls_maps(attention, 1, (3, 5))
    assert float(entropy(maps)) == pytest.approx(0.0, abs=1e-5) and float(
        spatial_spread(maps)
    ) == pytest.approx(0.0, abs=1e-5)
    flat = torch.full((1, 1, 3, 5), 1 / 15)
    assert float(entropy(flat)) == pytest.approx(uniform_entropy((3, 5)))


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.9])
def test_masking_hides_exactly_the_intended_patches(ratio):
    grid = (4, 4)
    for scheme in ("random", "centre"):
        masked = masked_patches(grid, ratio, scheme, torch.Generator().manual_seed(0))
        assert len(masked) == round(ratio * 16) == len(set(masked.tolist())) and all(
            0 <= i < 16 for i in masked.tolist()
        )
        assert sorted(kept_patches(grid, masked).tolist() + masked.tolist()) == list(range(16))
        pixels = pixel_mask(grid, (8, 8), masked)
        assert pixels.sum() == 64 * len(masked)
        for i in masked.tolist():
            r, c = divmod(i, 4)
            assert pixels[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8].all()
    assert set(masked_patches(grid, 0.25, "centre").tolist()) == {5, 6, 9, 10}  # the four middle patches
    a, b = (masked_patches(grid, 0.5, "random", torch.Generator().manual_seed(s)) for s in (0, 1))
    assert not torch.equal(a, b)


def test_dropped_tokens_leave_the_sequence_and_filled_pixels_change_only_the_mask():
    model = tiny_vit(img_size=64)
    x = torch.randn(2, 3, 64, 64)
    masked = masked_patches((4, 4), 0.5, "centre")
    keep = kept_patches((4, 4), masked)
    with torch.no_grad():
        final, tapped = forward_tokens(model, x, keep=keep, taps=[0])
        everything, _ = forward_tokens(model, x)
        assert torch.allclose(everything, model.forward_features(x), atol=1e-5)
    assert final.shape[1] == 1 + len(keep) and tapped[0].shape[1] == 1 + len(keep)
    pixels = pixel_mask((4, 4), (16, 16), masked)
    filled = fill_patches(x, pixels, "zero")
    assert (filled[:, :, pixels] == 0).all() and torch.equal(filled[:, :, ~pixels], x[:, :, ~pixels])


def test_probe_scores_separable_features_high_and_shuffled_labels_near_chance():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 4
    y = rng.integers(0, 4, 800)
    x = centres[y] + rng.normal(size=(800, 16))
    good = probe_accuracy(x[:600], y[:600], x[600:], y[600:])
    assert good.accuracy > 0.95 and good.ci_low <= good.accuracy <= good.ci_high and good.n_test == 200
    shuffled = probe_accuracy(x[:600], rng.permutation(y[:600]), x[600:], y[600:])
    assert shuffled.accuracy < 0.4
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.404, abs=1e-3) and high == pytest.approx(0.596, abs=1e-3)


def test_photos_of_any_mode_become_rgb(tmp_path):
    from PIL import Image

    Image.new("RGBA", (30, 20), (255, 0, 0, 0)).save(tmp_path / "transparent.png")
    Image.new("L", (10, 12), 100).save(tmp_path / "grey.png")
    Image.new("P", (8, 8), 3).save(tmp_path / "palette.gif")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    photos = {
        p.name: p.pixels
        for p in load_photos([str(tmp_path / f) for f in ("transparent.png", "grey.png", "palette.gif")])
    }
    assert (
        photos["transparent"].shape == (20, 30, 3) and (photos["transparent"] == 255).all()
    )  # composited on white
    assert photos["grey"].shape == (12, 10, 3) and (photos["grey"] == 100).all()
    assert photos["palette"].shape == (8, 8, 3)
    with pytest.raises(DataCorruptError, match="broken.jpg"):
        load_photos([str(tmp_path)])
    with pytest.raises(DataNotFoundError, match="nothing.png"):
        load_photos([str(tmp_path / "nothing.png")])
    assert [p.name for p in load_photos([])] == ["china", "flower"]  # scikit-learn's, no download


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_fake_dataset("cifar10", root, n_train=300, n_test=150)
    return root


def test_smoke_run_of_every_vit_part(cli, cifar_root, tmp_path):
    code, out, err = cli(
        "run",
        "vit",
        "--smoke",
        "--set",
        f"data.root={cifar_root}",
        "--set",
        "data.dataset=cifar10",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    (folder,) = (tmp_path / "vit").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert list(metrics) == list(vit.EXPERIMENT.part_names) and all(
        m["random_weights"] for m in metrics.values()
    )
    assert (
        set(metrics["predict"]["photos"]) == {"china", "flower"}
        and len(metrics["predict"]["photos"]["china"]) == 5
    )
    attention = metrics["attention"]
    assert attention["grid"] == [6, 6] and len(attention["last_layer_entropy_per_head"]) == 3
    assert all(0 <= e <= attention["uniform_entropy"] + 1e-6 for e in attention["entropy_by_layer"])
    masking = metrics["masking"]["results"]
    assert set(masking) == {"random", "centre"} and masking["random"]["0.00"]["agreement"] == 1.0
    probe = metrics["probe"]
    assert set(probe["by_layer"]) == {"block0", "block5", "block11", "final"}
    assert all(0 <= s["ci_low"] <= s["accuracy"] <= s["ci_high"] <= 1 for s in probe["final"].values())
    for plot in (
        "predict_topk",
        "attention_overlay",
        "attention_heads",
        "attention_entropy",
        "attention_spread",
        "masking_agreement",
        "masking_accuracy",
        "masking_confidence",
        "masking_examples",
        "probe_by_layer",
    ):
        assert (folder / "plots" / f"{plot}.png").stat().st_size > 10_000
    assert "(random weights)" in out


def test_offline_pretrained_tag_fails_fast_naming_the_file_and_folder(cli, cifar_root, tmp_path, monkeypatch):
    import atml.models.weights as weights

    monkeypatch.setattr(weights, "_hub_unreachable", lambda: "huggingface.co cannot be reached")
    for download in ("false", "true"):
        code, _, err = cli(
            "run",
            "vit",
            "--part",
            "predict",
            "--set",
            "model.name=vit_tiny_patch16_224",
            "--set",
            f"data.download={download}",
            "--set",
            f"data.root={cifar_root}",
            "--out",
            tmp_path / "out",
        )
        assert code == 3 and "model.safetensors" in err and "models--timm--vit_tiny_patch16_224" in err, err
        assert len(error_lines(err)) == 1 and not (tmp_path / "out").exists()
    code, _, err = cli("run", "vit", "--smoke", "--set", "attention.layer=12", "--out", tmp_path / "out")
    assert code == 2 and "attention.layer=12" in err


def test_batched_outputs_keep_only_what_they_return():
    """A forward that returns views (the class token of every token) must not keep each batch's
    full token tensor alive: that filled 21 GB at 5,000 images."""
    import weakref

    from atml.data.preprocess import Preprocess
    from atml.feature_cache import batched_outputs

    bases, alive = [], []

    def forward(x):
        alive.append(sum(ref() is not None for ref in bases))  # earlier batches' big tensors still held
        big = x.flatten(1).repeat(1, 50)
        bases.append(weakref.ref(big))
        return {"first": big[:, :3]}

    images = torch.randint(0, 255, (60, 3, 8, 8), dtype=torch.uint8)
    out = batched_outputs(forward, images, Preprocess(size=8), torch.device("cpu"), batch_size=10)
    assert out["first"].shape == (60, 3) and max(alive) <= 1  # at most the loop's last view


def test_the_original_preset_is_the_notebooks_vit():
    """ORIGINAL_SETTINGS.md §2, value by value."""
    from atml.config import resolve

    _, cfg = resolve("vit", vit.Config, preset="original")
    m = cfg.model
    assert (m.name, m.weights, m.crop_pct, m.interpolation) == (
        "vit_base_patch16_224.orig_in21k_ft_in1k",
        "pretrained",
        1.0,
        "bilinear",
    )
    k = cfg.masking
    assert (k.source, k.ratios, k.schemes, k.fill, k.centre, k.count) == (
        "photos",
        [0.0, 0.1, 0.3, 0.5],
        ["random", "centre"],
        "zero",
        "square",
        "floor",
    )
    p = cfg.probe
    assert (
        cfg.data.dataset,
        cfg.data.test_images,
        p.layers,
        p.split,
        p.standardise,
        p.max_iter,
        cfg.seed,
    ) == (
        "cifar10",
        88,
        [],
        0.3,
        False,
        1000,
        42,
    )


def test_the_originals_mask_geometry():
    from atml.analysis.masking import masked_patches

    squares = {r: masked_patches((14, 14), r, "centre", centre="square") for r in (0.1, 0.3, 0.5)}
    assert {r: len(v) for r, v in squares.items()} == {0.1: 25, 0.3: 49, 0.5: 81}
    assert sorted(set((squares[0.1] // 14).tolist())) == [5, 6, 7, 8, 9]  # rows 5–9, as the notebook's
    assert sorted(set((squares[0.5] % 14).tolist())) == list(range(3, 12))
    floors = [len(masked_patches((14, 14), r, "random", count="floor")) for r in (0.1, 0.3, 0.5)]
    assert floors == [19, 58, 98]
    assert [len(masked_patches((14, 14), r, "random")) for r in (0.1, 0.3, 0.5)] == [20, 59, 98]
    assert len(masked_patches((14, 14), 0.0, "centre", centre="square")) == 0
