"""Round three of the reliability probe (issue 28): each case that failed is a test here."""

from __future__ import annotations

import json

import pytest

from atml.runs import finite
from tests.conftest import error_lines


def one_line(err: str) -> bool:
    return len(error_lines(err)) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("experiment", "assignment", "bound"),
    [
        ("vae", "eval.n_show=100000", "100"),
        ("gan", "model.latent_dim=100000000", "4096"),
        ("gan", "model.g_hidden=[100000000]", "16384"),
        ("gan", "eval.n_samples=100000000", "100000"),
        ("vae", "train.beta_schedule.beta=1e38", "1000000"),
    ],
)
def test_a_value_that_would_cost_minutes_and_gigabytes_is_refused_at_once(
    cli, tmp_path, experiment, assignment, bound
):
    code, _, err = cli("run", experiment, "--smoke", "--set", assignment, "--out", tmp_path / "out")
    assert code == 2 and one_line(err) and f"less than or equal to {bound}" in err, err
    assert not (tmp_path / "out").exists()


def test_a_missing_resume_folder_is_exit_2_without_torch(cli, tmp_path):
    code, _, err = cli("run", "gan", "--resume", tmp_path / "nothing")
    assert code == 2 and one_line(err) and "no such run folder" in err


def test_report_of_a_missing_outputs_folder_or_a_file_is_exit_2(cli, tmp_path):
    for outputs in (tmp_path / "missing", tmp_path / "file"):
        (tmp_path / "file").write_text("x")
        code, _, err = cli("report", "--outputs", outputs)
        assert code == 2 and one_line(err) and "is not a folder of runs" in err
        assert not (tmp_path / "missing").exists()


def test_a_config_dir_that_is_a_file_is_exit_2(cli, tmp_path, monkeypatch):
    (tmp_path / "configs").write_text("x")
    monkeypatch.setenv("ATML_CONFIG_DIR", str(tmp_path / "configs"))
    code, _, err = cli("config", "gan")
    assert code == 2 and one_line(err) and "ATML_CONFIG_DIR" in err


def test_an_unwritable_classifier_cache_is_a_warning_and_the_run_goes_on(
    cli, fake_root, tmp_path, monkeypatch
):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("ATML_CACHE_DIR", str(tmp_path / "a-file" / "cache"))  # cannot become a folder
    code, _, err = cli(
        "run", "gan", "--smoke", "--part", "mode-collapse", "--set", f"data.root={fake_root}",
        "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 0, err
    assert "sample classifier not cached" in err and "going on without it" in err
    (folder,) = (tmp_path / "out" / "gan").iterdir()
    assert json.loads((folder / "metrics.json").read_text())["mode-collapse"]


def test_an_unknown_class_in_zeroshot_class_names_is_exit_2(cli, fake_root, tmp_path):
    code, _, err = cli(
        "run", "clip", "--smoke", "--part", "zeroshot", "--set", f"data.root={fake_root}",
        "--set", 'zeroshot.class_names={"Trousers": "pants"}', "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 2 and one_line(err) and "Trousers is not a class of fashion-mnist" in err, err
    assert "Trouser" in err and not (tmp_path / "out").exists()


def test_non_finite_numbers_are_recorded_as_null_naming_where(tmp_path, caplog):
    from atml.runs import Run

    values, where = finite({"loss": float("inf"), "curve": [1.0, float("nan")], "ok": 0.5}, "train")
    assert values == {"loss": None, "curve": [1.0, None], "ok": 0.5} and where == [
        "train.loss",
        "train.curve.1",
    ]
    run = Run(tmp_path)
    run.record_metrics("train", {"loss": float("nan"), "ok": 1.0})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"train": {"loss": None, "ok": 1.0}}
    assert "train.loss" in caplog.text


@pytest.mark.parametrize(
    "key", ["no_residual.finetune.batch_size", "transfer.batch_size", "train.batch_size"]
)
def test_a_batch_batchnorm_cannot_train_on_is_exit_2(cli, tmp_path, key):
    code, _, err = cli("run", "resnet", "--smoke", "--set", f"{key}=1", "--out", tmp_path / "out")
    assert code == 2 and one_line(err) and key in err and "greater than or equal to 2" in err
    assert not (tmp_path / "out").exists()


def test_sigterm_before_the_run_folder_exists_is_exit_130_in_one_line(tmp_path):
    """atml waits on a download (a proxy that accepts and never answers) when SIGTERM comes."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        proxy = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env |= {"http_proxy": proxy, "https_proxy": proxy, "ATML_NO_SYSTEM_DATA": "1", "HOME": str(tmp_path)}
        process = subprocess.Popen(
            [sys.executable, "-m", "atml", "run", "gan", "--smoke", "--set", f"data.root={tmp_path / 'data'}",
             "--out", tmp_path / "out"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        silent.settimeout(120)
        connection, _ = silent.accept()  # the download has begun
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        connection.close()
    assert process.returncode == 130 and one_line(err) and "interrupted" in err, (out, err)
    assert not (tmp_path / "out").exists()
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
