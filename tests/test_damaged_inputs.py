"""Damaged run folders, caches and a hostile environment: one line naming the file and what to do,
the documented exit code, never a traceback."""

import errno
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
import yaml

from atml.cli import main
from atml.config import ClassifierConfig
from atml.experiments.gan import parts as gan_parts
from atml.models.modes import evaluating
from atml.models.sample_classifier import get_classifier
from tests.conftest import REPO, error_lines

CHECKPOINT = "checkpoints/baseline-assignment.pt"


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, fake_root):
    """A GAN smoke run of `baseline` stopped in its second epoch: one checkpoint, no metrics."""
    out = tmp_path_factory.mktemp("interrupted")
    calls = {"n": 0}
    real_d_logits = gan_parts.d_logits

    def interrupt_in_second_epoch(D, images):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_d_logits(D, images)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATML_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        mp.setattr(gan_parts, "d_logits", interrupt_in_second_epoch)
        mp.setattr(
            sys,
            "argv",
            [
                "atml",
                "run",
                "gan",
                "--smoke",
                "--part",
                "baseline",
                "--set",
                f"data.root={fake_root}",
                "--out",
                str(out),
            ],
        )
        with pytest.raises(SystemExit) as info:
            main()
    assert info.value.code == 130
    (folder,) = (out / "gan").iterdir()
    assert (folder / CHECKPOINT).is_file()
    return folder


def damage_checkpoint_empty(folder):
    (folder / CHECKPOINT).write_bytes(b"")
    return CHECKPOINT


def damage_checkpoint_truncated(folder):
    path = folder / CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return CHECKPOINT


def damage_checkpoint_foreign(folder):
    torch.save({"weights": torch.zeros(3)}, folder / CHECKPOINT)
    return CHECKPOINT


def damage_checkpoint_other_model(folder):
    saved = torch.load(folder / CHECKPOINT, weights_only=True)
    saved["states"]["G"] = {"net.0.weight": torch.zeros(2, 2)}
    torch.save(saved, folder / CHECKPOINT)
    return CHECKPOINT


def damage_metrics(folder):
    (folder / "metrics.json").write_text('{"baseline": {"assign')
    return "metrics.json"


def damage_config(folder):
    (folder / "config.yaml").write_text("seed: [1\n")
    return "config.yaml"


def damage_env(folder):
    (folder / "env.json").write_bytes(b"\x00\xff garbage")
    return "env.json"


@pytest.mark.parametrize(
    "damage",
    [
        damage_checkpoint_empty,
        damage_checkpoint_truncated,
        damage_checkpoint_foreign,
        damage_checkpoint_other_model,
        damage_metrics,
        damage_config,
        damage_env,
    ],
)
def test_resume_of_a_damaged_run_folder_names_the_file(cli, interrupted, tmp_path, damage):
    folder = shutil.copytree(interrupted, tmp_path / "run")
    damaged = damage(folder)
    code, _, err = cli("run", "gan", "--resume", folder)
    assert code == 3, err
    assert str(folder / damaged) in err and "damaged" in err
    assert len(error_lines(err)) == 1 and "Traceback" not in err


def test_resume_checks_the_data_before_continuing(cli, interrupted, tmp_path, monkeypatch):
    folder = shutil.copytree(interrupted, tmp_path / "run")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["data"] |= {"root": str(tmp_path / "no-data"), "download": False}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)  # away from the machines' ../shared/datasets
    code, out, err = cli("run", "gan", "--resume", folder)
    assert code == 3 and "mnist test split not found" in err and "resuming" not in out
    assert len(list((folder / "checkpoints").iterdir())) == 1


def test_disk_full_while_checkpointing_says_how_to_resume(cli, fake_root, tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full_disk_for_checkpoints(fd):
        if "/checkpoints/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr("atml.runs.os.fsync", full_disk_for_checkpoints)
    code, _, err = cli(
        "run", "gan", "--smoke", "--part", "baseline", "--set", f"data.root={fake_root}", "--out", tmp_path
    )
    (folder,) = (tmp_path / "gan").iterdir()
    assert code == 5 and "No space left on device" in err and f"atml run gan --resume {folder}" in err
    assert len(error_lines(err)) == 1
    assert list((folder / "checkpoints").iterdir()) == []  # no half-written or temporary file left


def test_sigterm_stops_a_run_like_ctrl_c(fake_root, tmp_path):
    env = dict(os.environ, ATML_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    args = [
        sys.executable,
        "-m",
        "atml",
        "run",
        "gan",
        "--smoke",
        "--part",
        "baseline",
        "--set",
        f"data.root={fake_root}",
        "--set",
        "train.epochs=50",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in proc.stdout:
        if "epoch 1/50" in line:  # training is under way, a checkpoint exists
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    (folder,) = (tmp_path / "gan").iterdir()
    assert proc.returncode == 130 and f"--resume {folder}" in err and "Traceback" not in err


def test_a_damaged_cached_classifier_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ATML_CACHE_DIR", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (256,), generator=g)
    cfg = ClassifierConfig(epochs=1)
    first = get_classifier("t", x, y, x, y, cfg)
    first.cache_file.write_bytes(first.cache_file.read_bytes()[:100])
    stale = (
        first.cache_file.parent / f".{first.cache_file.name}.99999999.abc.tmp"
    )  # a killed write's leftover
    stale.write_bytes(b"partial")
    rebuilt = get_classifier("t", x, y, x, y, cfg)
    assert not rebuilt.from_cache and not stale.exists()
    again = get_classifier("t", x, y, x, y, cfg)
    assert again.from_cache and again.heldout_accuracy == rebuilt.heldout_accuracy


def test_evaluation_restores_every_submodule_mode():
    backbone = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten()
    )
    model = torch.nn.Sequential(backbone, torch.nn.Dropout(0.5), torch.nn.LazyLinear(3))
    model.train()
    backbone.eval()  # a frozen backbone: its BatchNorm statistics must not move
    model(torch.randn(2, 1, 6, 6))
    before = backbone[1].running_mean.clone()
    assert gan_parts.in_eval_mode(model, torch.randn(5, 1, 6, 6)).shape == (5, 3)
    with evaluating(model):
        assert not any(m.training for m in model.modules())
    assert model.training and model[1].training and not backbone.training and not backbone[1].training
    model(torch.randn(8, 1, 6, 6))  # a training step of the head
    assert torch.equal(backbone[1].running_mean, before)
