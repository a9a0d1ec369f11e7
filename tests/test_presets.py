"""--preset: a shipped settings file per experiment and preset, merged over the defaults and under
smoke, --config, flags and --set; unknown presets refused before any run folder."""

import json

import pytest
import yaml

from tests.conftest import copy_shipped_configs


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """The shipped configs plus a preset `tiny` for the GAN (epochs 1, real label 0.9)."""
    folder = copy_shipped_configs(tmp_path / "configs")
    (folder / "gan" / "tiny.yaml").write_text("train: {epochs: 1, real_label: 0.9, lr_d: 0.001}\n")
    monkeypatch.setenv("ATML_CONFIG_DIR", str(folder))
    return folder


def test_a_preset_is_merged_under_smoke_config_and_set(cli, config_dir, tmp_path):
    code, out, err = cli("config", "gan", "--preset", "tiny")
    assert code == 0, err
    train = yaml.safe_load(out)["train"]
    assert train["real_label"] == 0.9 and train["epochs"] == 1 and train["lr_d"] == 0.001
    code, out, _ = cli("config", "gan", "--preset", "tiny", "--smoke", "--set", "train.lr_d=0.0005")
    train = yaml.safe_load(out)["train"]
    assert (
        train["epochs"] == 2 and train["lr_d"] == 0.0005 and train["real_label"] == 0.9
    )  # smoke, then --set


def test_list_names_each_experiments_presets(cli, config_dir):
    code, out, _ = cli("list")
    gan = out.split("gan:")[1].split("vae:")[0]
    assert code == 0 and "presets (--preset): original, tiny\n" in gan
    assert out.count("presets (--preset): original\n") == 4  # every other experiment ships its original


@pytest.mark.parametrize(
    "args",
    [("run", "gan", "--preset", "nope", "--smoke"), ("run", "all", "--preset", "nope", "--smoke")],
)
def test_an_unknown_preset_is_refused_before_any_folder(cli, config_dir, tmp_path, args):
    code, _, err = cli(*args, "--out", tmp_path / "out")
    assert code == 2 and "preset 'nope'" in err and not (tmp_path / "out").exists()
    code, _, err = cli("config", "gan", "--preset", "nope")
    assert code == 2 and "presets: original, tiny" in err


def test_a_run_records_its_preset(cli, config_dir, fake_root, tmp_path):
    common = ["--smoke", "--part", "baseline", "--set", f"data.root={fake_root}", "--out", tmp_path]
    code, _, err = cli("run", "gan", "--preset", "tiny", *common)
    assert code == 0, err
    (folder,) = (tmp_path / "gan").iterdir()
    assert json.loads((folder / "env.json").read_text())["preset"] == "tiny"
    assert yaml.safe_load((folder / "config.yaml").read_text())["train"]["real_label"] == 0.9
    code, _, err = cli("run", "gan", "--resume", folder, "--preset", "tiny")
    assert code == 2 and "drop --preset" in err


def test_the_vae_original_preset_is_the_notebooks_setting(cli):
    """ORIGINAL_SETTINGS.md §4: 100 epochs, batch 128, Adam 1e-3, validation on the test split,
    β = 1, its delayed-linear annealing (50 + 50 epochs) and its decreasing cosine (20-epoch cycles)."""
    code, out, err = cli("config", "vae", "--preset", "original")
    assert code == 0, err
    cfg = yaml.safe_load(out)
    assert cfg["train"]["epochs"] == 100 and cfg["train"]["batch_size"] == 128 and cfg["train"]["lr"] == 1e-3
    assert cfg["eval"]["validation"] == "test" and cfg["eval"]["test_images"] == 10000
    schedule = cfg["train"]["beta_schedule"]
    assert schedule["kind"] == "constant" and schedule["beta"] == 1.0
    assert (schedule["delay_epochs"], schedule["ramp_epochs"], schedule["cycle_epochs"]) == (50, 50, 20)
    assert cfg["anneal_schedules"] == ["constant", "delayed-linear", "decreasing-cosine"]


def test_the_vae_original_preset_runs_every_part(cli, fake_root, tmp_path):
    code, _, err = cli(
        "run", "vae", "--preset", "original", "--smoke", "--set", f"data.root={fake_root}", "--out", tmp_path
    )
    assert code == 0, err
    (folder,) = (tmp_path / "vae").iterdir()
    anneal = json.loads((folder / "metrics.json").read_text())["anneal"]
    assert {"constant", "delayed-linear", "decreasing-cosine"} <= set(anneal)
    assert "validation = the test images" in anneal["data"]
    assert anneal["delayed-linear"]["beta"] == 0.0  # two smoke epochs are inside its 50-epoch delay
    assert (folder / "plots" / "anneal_posterior_stats.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("experiment", "parts", "figures"),
    [
        ("resnet", ["no-residual", "features", "compare-depth"], ["compare_depth_curves", "features_maps"]),
        ("vit", ["masking", "probe"], ["masking_photos", "probe_pca"]),
        ("clip", ["gap", "procrustes"], ["gap_maps", "procrustes_maps"]),
    ],
)
def test_each_original_preset_runs_in_smoke_form(cli, fake_root, tmp_path, experiment, parts, figures):
    """The preset's own code paths (BatchNorm in train mode and the warm start, photo masking and the
    split probe, in-sample Procrustes and raw maps) on FashionMNIST files with random weights."""
    part_args = [arg for part in parts for arg in ("--part", part)]
    # a preset's named weights survive --smoke (tests/test_first_run.py downloads them): random here
    model = ["--set", "model.weights=none"] + (
        ["--set", "model.name=vit_tiny_patch16_224"] * (experiment == "vit")
    )
    code, _, err = cli(
        "run", experiment, "--preset", "original", "--smoke", *part_args, *model,
        "--set", f"data.root={fake_root}", "--out", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    (folder,) = (tmp_path / experiment).iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert all(m["random_weights"] for m in metrics.values())
    for figure in figures:
        assert (folder / "plots" / f"{figure}.png").stat().st_size > 10_000
    if experiment == "resnet":
        no_res = metrics["no-residual"]
        assert no_res["blocks_off"] == ["layer2.2", "layer3.3"] and len(no_res["head_only"]) == 2
    if experiment == "vit":
        assert metrics["masking"]["source"] == "photos" and set(metrics["masking"]["photos"]) == {
            "china",
            "flower",
        }
        assert (
            metrics["probe"]["final"]["cls"]["n_test"] == 30
            and metrics["probe"]["final"]["cls"]["n_train"] == 70
        )
    if experiment == "clip":
        assert metrics["procrustes"]["scoring"] == "in-sample" and metrics["procrustes"]["held_out"] is None


def test_a_misspelt_preset_gets_the_closest_name(cli, config_dir):
    code, _, err = cli("config", "gan", "--preset", "orginal")
    assert code == 2 and "(did you mean 'original'?)" in err
    code, _, err = cli("run", "all", "--preset", "orginal", "--smoke")
    assert code == 2 and "(did you mean 'original'?)" in err
