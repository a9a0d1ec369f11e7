import json
from pathlib import Path

import pytest
import yaml

from atml.experiments import gan
from atml.experiments.gan import parts as gan_parts
from tests.conftest import error_lines


def test_list_shows_parts(cli):
    code, out, _ = cli("list")
    assert code == 0 and "gan" in out and "mode-collapse" in out


def test_config_prints_the_resolved_yaml(cli):
    code, out, _ = cli("config", "gan", "--smoke", "--set", "train.epochs=4")
    resolved = yaml.safe_load(out)
    assert code == 0 and resolved["train"]["epochs"] == 4 and resolved["data"]["train_subset"] == 512


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope"], "unknown experiment 'nope'; accepted: resnet, vit, gan, vae"),
        (["run", "gan", "--part", "xx"], "unknown part 'xx' of gan; accepted: baseline"),
        (["run", "gan", "--bogus"], "unknown option --bogus for gan; its own flags: none"),
        (["run", "vae", "--bogus", "1"], "unknown option --bogus for vae; its own flags: --beta-schedule"),
        (["run", "vae", "--beta-schedule"], "--beta-schedule needs a value"),
        (["run", "vae", "--beta-schedule=nope"], "bad config value 'train.beta_schedule.kind'"),
        (["config", "gan", "--beta-schedule", "linear"], "unknown option --beta-schedule for gan"),
        (["run", "gan", "--set", "train.betas=[2,2]"], "bad config value 'train.betas.0' (got 2)"),
        (["run", "gan", "--set", "model.g_hidden=[-1]"], "bad config value 'model.g_hidden.0'"),
        (["run", "gan", "--set", "train.epochs=true"], "bad config value 'train.epochs' (got True)"),
        (["run", "gan", "--set", "train.lr_d=.inf"], "bad config value 'train.lr_d'"),
        (["run", "gan", "--seed", "99999999999999999999999"], "bad config value 'seed'"),
        (["run", "gan", "--seed", "-1"], "bad config value 'seed'"),
        (["run", "gan", "--name", "../../x"], "--name '../../x' must be"),
        (["run", "gan", "--out", "a-file/sub"], "a-file is a file, not a folder"),
        (["run", "gan", "--config", "latin1.yaml"], "is not UTF-8 text"),
        (["run", "gan", "--seed", "x"], "'--seed'"),
        (["run", "gan", "--device", "tpu"], "unknown device 'tpu'; accepted: auto, cpu, cuda"),
        (["run", "gan", "--set", "train.lr_x=1"], "unknown config key 'train.lr_x'"),
        (["run", "gan", "--set", "train.epochs=-1"], "bad config value 'train.epochs'"),
        (["run", "gan", "--config", "missing.yaml"], "config file not found"),
        (["config", "gan", "--set", "model.width=2"], "unknown config key 'model.width'"),
        (["data", "fake", "cifar", "--root", "x"], "unknown dataset 'cifar'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "latin1.yaml").write_bytes("seed: 1  # réglé\n".encode("latin-1"))
    code, out, err = cli(*args)
    assert code == 2
    assert message in err
    assert len(error_lines(err)) == 1 and "Traceback" not in err
    assert not (tmp_path / "outputs").exists()  # nothing was created for a rejected run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "latin1.yaml"]


def test_settings_the_data_cannot_serve_fail_before_any_training(cli, fake_root, tmp_path):
    # the smoke data has 500 training images: vanishing's 5 D steps of 110 need 550 per iteration
    code, out, err = cli(
        "run",
        "gan",
        "--smoke",
        "--set",
        "train.batch_size=110",
        "--set",
        f"data.root={fake_root}",
        "--out",
        tmp_path,
    )
    assert (
        code == 2 and "parts.vanishing.pathology: 500 training images cannot fill one iteration of 550" in err
    )
    assert not (tmp_path / "gan").exists() and "epoch" not in out


def test_flags_are_listed_and_shown_in_run_help(cli):
    code, out, _ = cli("list")
    assert code == 0 and "--beta-schedule STR  → train.beta_schedule.kind" in out
    code, out, _ = cli("run", "--help")
    assert code == 0 and "vae:" in out and "--beta-schedule" in out and "gan: none" in out


def test_missing_data_is_a_clear_error_with_its_own_code(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # away from any ../shared/datasets
    code, _, err = cli(
        "run",
        "gan",
        "--smoke",
        "--set",
        f"data.root={tmp_path}",
        "--set",
        "data.download=false",
        "--out",
        tmp_path / "o",
    )
    assert code == 3 and "t10k-images-idx3-ubyte" in err and str(tmp_path / "MNIST" / "raw") in err
    assert not (tmp_path / "o").exists()  # no run folder for a run that could not start


def test_data_fake_then_check_finds_it(cli, tmp_path):
    code, out, _ = cli("data", "fake", "mnist", "--root", tmp_path, "--n-train", 50, "--n-test", 20)
    assert code == 0 and "wrote fake mnist" in out
    code, out, _ = cli("data", "check", "--root", tmp_path)
    mnist_lines = [line for line in out.splitlines() if line.startswith("mnist ")]
    assert code == 0 and all("found" in line for line in mnist_lines) and len(mnist_lines) == 2


def run_folder(out: Path) -> Path:
    (folder,) = (out / "gan").iterdir()
    return folder


def test_smoke_run_of_every_gan_part(cli, fake_root, tmp_path):
    code, out, err = cli(
        "run", "gan", "--smoke", "--set", f"data.root={fake_root}", "--out", tmp_path, "--seed", 3
    )
    assert code == 0, err
    folder = run_folder(tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert list(metrics) == list(gan.EXPERIMENT.part_names)
    expected_runs = {
        "baseline": ["assignment", "tuned"],
        "vanishing": ["pathology", "mitigation", "rebalanced"],
        "mode-collapse": ["pathology", "mitigation"],
        "d-overfit": ["pathology", "mitigation", "dropout"],
    }
    for part in gan.EXPERIMENT.part_names:
        assert [
            k
            for k, v in metrics[part].items()
            if isinstance(v, dict) and "modes_covered" in v and k != "real_images_reference"
        ] == expected_runs[part]
        for run in expected_runs[part]:
            m = metrics[part][run]
            assert 1 <= m["modes_covered"] <= 10 and sum(m["class_counts"]) == 200
            assert m["pixel_variance"] >= 0 and m["frechet_distance"] >= 0
            assert (folder / "history" / f"{part}-{run}.csv").is_file()
        for plot in ("curves", "final_grid", "grids_over_epochs", "class_histogram"):
            assert (folder / "plots" / f"{part}_{plot}.png").stat().st_size > 10_000
    env = json.loads((folder / "env.json").read_text())
    assert env["seed"] == 3 and env["parts"] == list(gan.EXPERIMENT.part_names) and env["packages"]["torch"]
    assert yaml.safe_load((folder / "config.yaml").read_text())["seed"] == 3
    assert "modes" in out and "TEST split used as training set" in metrics["baseline"]["data"]


def test_interrupt_then_resume_completes_the_run(cli, fake_root, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_d_logits = gan_parts.d_logits

    def interrupt_in_second_epoch(D, images):
        calls["n"] += 1
        if calls["n"] == 3:  # evaluate() scores D twice per epoch: this is epoch 2
            raise KeyboardInterrupt
        return real_d_logits(D, images)

    monkeypatch.setattr(gan_parts, "d_logits", interrupt_in_second_epoch)
    args = [
        "run",
        "gan",
        "--smoke",
        "--part",
        "baseline",
        "--set",
        f"data.root={fake_root}",
        "--out",
        tmp_path,
    ]
    code, _, err = cli(*args)
    folder = run_folder(tmp_path)
    assert code == 130 and f"--resume {folder}" in err
    assert not (folder / "metrics.json").exists()

    stale = folder / "checkpoints" / ".baseline-tuned.pt.99999999.x1y2.tmp"  # a killed process's half write
    stale.write_bytes(b"partial")
    monkeypatch.setattr(gan_parts, "d_logits", real_d_logits)
    code, out, err = cli("run", "gan", "--resume", folder)
    assert code == 0, err
    assert "resuming after epoch 1/2" in out and not stale.exists()
    assert "baseline" in json.loads((folder / "metrics.json").read_text())
    rows = (folder / "history" / "baseline-assignment.csv").read_text().splitlines()
    assert len(rows) == 3  # header and both epochs, the first restored from the checkpoint

    code, out, _ = cli("run", "gan", "--resume", folder)
    assert code == 0 and "already complete" in out
    for extra in (
        ["--set", "train.epochs=3"],
        ["--name", "other"],
        ["--out", tmp_path / "elsewhere"],
        ["--smoke"],
    ):
        code, _, err = cli("run", "gan", "--resume", folder, *extra)
        assert (
            code == 2
            and f"--resume continues a run with its own config, parts and folder; drop {extra[0]}" in err
        )


def test_nan_loss_stops_with_exit_4_and_keeps_the_folder(cli, fake_root, tmp_path, monkeypatch):
    import torch

    def diverged(self, batch):
        nan = torch.full((1,), float("nan"))  # one value per seed
        return {"d_loss": nan, "g_loss": nan, "d_real": nan, "d_fake": nan, "g_grad_norm": nan}

    monkeypatch.setattr(gan_parts.GanStep, "__call__", diverged)
    code, _, err = cli(
        "run", "gan", "--smoke", "--part", "baseline", "--set", f"data.root={fake_root}", "--out", tmp_path
    )
    assert code == 4 and "training diverged" in err and "d_loss=nan" in err
    assert "no epoch had completed, so there is no checkpoint" in err
    assert len(error_lines(err)) == 1
    assert (run_folder(tmp_path) / "config.yaml").is_file()


def test_two_runs_with_one_seed_give_identical_metrics(cli, fake_root, tmp_path):
    args = [
        "run",
        "gan",
        "--smoke",
        "--part",
        "mode-collapse",
        "--set",
        f"data.root={fake_root}",
        "--seed",
        "5",
    ]
    metrics = []
    for name in ("first", "second"):
        code, _, err = cli(*args, "--out", tmp_path / name)
        assert code == 0, err
        metrics.append(json.loads((run_folder(tmp_path / name) / "metrics.json").read_text()))
    assert metrics[0] == metrics[1]
    code, _, err = cli(*args[:-1], "6", "--out", tmp_path / "other-seed")
    other = json.loads((run_folder(tmp_path / "other-seed") / "metrics.json").read_text())
    assert other["mode-collapse"]["pathology"] != metrics[0]["mode-collapse"]["pathology"]


def test_quiet_keeps_errors_only_and_verbose_is_accepted(cli, fake_root, tmp_path):
    args = [
        "run",
        "gan",
        "--smoke",
        "--part",
        "baseline",
        "--set",
        f"data.root={fake_root}",
        "--set",
        "train.epochs=1",
    ]
    code, out, err = cli("-q", *args, "--out", tmp_path / "q")
    assert code == 0 and out == "" and error_lines(err) == [], (out, err)  # warnings only: fake data
    assert list((tmp_path / "q" / "gan").glob("*/metrics.json"))  # it ran, silently
    code, out, err = cli("-q", "run", "gan", "--set", "train.nonsense=1")
    assert code == 2 and "unknown config key" in err and out == ""
    code, _, err = cli("-q", "-v", "list")
    assert code == 2 and "-q or -v" in err
    code, out, _ = cli("-v", *args, "--out", tmp_path / "v")
    assert code == 0 and "== gan/baseline" in out
