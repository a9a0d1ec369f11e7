"""Round three of the reliability probe (issue 28): each case that failed is a test here."""

from __future__ import annotations

import json

import pytest
import yaml

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
        "--set", "eval.classifier.judge=train", "--out", tmp_path / "out",
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


def finished_gan_run(root, out):
    import os
    import subprocess
    import sys

    cache = out.parent / "cache"  # not the home's: a module fixture runs before conftest's isolation
    subprocess.run(
        [sys.executable, "-m", "atml", "run", "gan", "--smoke", "--part", "baseline", "--keep-checkpoints",
         "--set", f"data.root={root}", "--out", out],
        check=True, capture_output=True, env=os.environ | {"ATML_CACHE_DIR": str(cache)},
    )  # fmt: skip
    (folder,) = (out / "gan").iterdir()
    return folder


@pytest.fixture(scope="module")
def gan_run(fake_root, tmp_path_factory):
    """One finished GAN smoke run (its baseline part), copied by each test that changes it."""
    return finished_gan_run(fake_root, tmp_path_factory.mktemp("gan-run"))


def copy_run(folder, to, name=None):
    import shutil

    target = to / "gan" / (name or folder.name)
    shutil.copytree(folder, target)
    return target


def unfinish(folder):
    """The run as an interruption leaves it: the part's checkpoints kept, its numbers not yet recorded."""
    (folder / "metrics.json").unlink()


def test_a_checkpoint_of_another_run_is_exit_3_naming_the_file(gan_run, fake_root, cli, tmp_path):
    """The probe's case: an interrupted run's folder holds a checkpoint of the same name that
    another run of the same config wrote."""
    other = finished_gan_run(fake_root, tmp_path / "other")
    mine = copy_run(gan_run, tmp_path)
    unfinish(mine)
    foreign = mine / "checkpoints" / "baseline-tuned.pt"
    foreign.write_bytes((other / "checkpoints" / "baseline-tuned.pt").read_bytes())
    code, _, err = cli("run", "gan", "--resume", mine)
    assert code == 3 and one_line(err) and f"checkpoint {foreign}" in err and "another run" in err, err
    assert not (mine / "metrics.json").exists()


def test_a_checkpoint_written_under_another_config_is_exit_3(cli, gan_run, tmp_path):
    mine = copy_run(gan_run, tmp_path)
    unfinish(mine)
    config = (mine / "config.yaml").read_text()
    assert "log_every: " in config
    (mine / "config.yaml").write_text(config.replace("log_every: ", "log_every: 1", 1))
    code, _, err = cli("run", "gan", "--resume", mine)
    assert code == 3 and one_line(err) and "under another config" in err and "baseline-" in err, err


def test_resume_continues_from_its_own_checkpoints_with_the_same_numbers(gan_run, tmp_path):
    """In a process of its own, as the run was (in pytest's, other tests' thread settings could
    change the last digits)."""
    import subprocess
    import sys

    mine = copy_run(gan_run, tmp_path)
    finished = json.loads((mine / "metrics.json").read_text())
    unfinish(mine)
    done = subprocess.run([sys.executable, "-m", "atml", "run", "gan", "--resume", mine], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((mine / "metrics.json").read_text()) == finished


def test_a_folder_in_use_by_another_process_is_refused_and_a_killed_holder_is_stale(cli, gan_run, tmp_path):
    import subprocess
    import sys

    mine = copy_run(gan_run, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from atml import folder_lock; "
         f"folder_lock.hold({str(mine)!r}); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = cli("run", "gan", "--resume", mine)
        assert code == 2 and one_line(err) and f"in use by process {holder.pid}" in err, err
    finally:
        holder.kill()
        holder.wait()
    code, out, err = cli("run", "gan", "--resume", mine)
    assert code == 0 and f"process {holder.pid}" in out + err and "stale" in out + err, (out, err)
    assert (mine / ".atml.lock").read_text() == ""  # released at the end


@pytest.mark.parametrize(
    ("record", "change", "key"),
    [
        ("config.yaml", lambda text: yaml.safe_dump(yaml.safe_load(text) | {"model": 5}), "model"),
        ("env.json", lambda text: json.dumps(json.loads(text) | {"experiment": ["gan"]}), "experiment"),
        ("env.json", lambda text: json.dumps(json.loads(text) | {"seeds": 5}), "seeds"),
        ("metrics.json", lambda text: json.dumps({"baseline": {"assignment": 5}}), "baseline.assignment"),
    ],
)
def test_a_wrong_shaped_record_is_exit_3_naming_file_and_key_for_report_and_resume(
    cli, gan_run, tmp_path, record, change, key
):
    mine = copy_run(gan_run, tmp_path)
    (mine / record).write_text(change((mine / record).read_text()))
    for command in (
        ("report", "--outputs", tmp_path, "--to", tmp_path / "r"),
        ("run", "gan", "--resume", mine),
    ):
        code, _, err = cli(*command)
        assert code == 3 and one_line(err), (command, err)
        assert f"{mine / record}" in err and f"'{key}" in err, (command, err)


def test_a_summary_json_whose_runs_is_a_list_is_exit_3(cli, gan_run, tmp_path):
    summary = tmp_path / "gan" / "s-seeds"
    summary.mkdir(parents=True)
    (summary / "config.yaml").write_text((gan_run / "config.yaml").read_text())
    env = json.loads((gan_run / "env.json").read_text())
    (summary / "env.json").write_text(json.dumps(env | {"kind": "seed-summary", "seeds": [0], "runs": {}}))
    (summary / "summary.json").write_text(json.dumps({"runs": [str(gan_run)], "rows": [], "numbers": {}}))
    code, _, err = cli("report", "--outputs", tmp_path, "--to", tmp_path / "r")
    assert code == 3 and one_line(err) and f"{summary / 'summary.json'}" in err and "'runs'" in err, err


def test_the_report_shows_the_newest_complete_run_and_names_what_it_passed_over(cli, gan_run, tmp_path):
    good = copy_run(gan_run, tmp_path, "20000101-000000-good")
    crashed = copy_run(gan_run, tmp_path, "20990101-000000-crashed")
    unfinish(crashed)
    misfiled = copy_run(gan_run, tmp_path / "elsewhere", "20990101-000000-misfiled")
    (tmp_path / "vae").mkdir()
    misfiled.rename(tmp_path / "vae" / misfiled.name)
    (good / "plots" / "baseline_curves.png").write_bytes(b"GIF89a not a png")  # a key figure, damaged
    code, _, err = cli("report", "--outputs", tmp_path, "--to", tmp_path / "r")
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"atml (its own settings): {good}" in report
    assert f"NOT SHOWN: {crashed} is newer, but part(s) baseline did not finish" in report
    assert (
        f"NOT SHOWN: {tmp_path / 'vae' / misfiled.name} is a gan run filed under {tmp_path / 'vae'}" in report
    )
    sections = [line for line in report.splitlines() if line.startswith("## ") and "gan — " in line]
    assert len(sections) == 1  # one GAN section, not a second from the vae folder
    assert "BROKEN figure" in report and "baseline_curves.png" in report
    assert code == 3 and one_line(err) and "baseline_curves.png" in err, err


def test_data_check_reads_a_split_as_a_run_does_and_names_a_truncated_gzip(cli, tmp_path):
    from atml.data.fake import write_fake_idx_dataset

    write_fake_idx_dataset("mnist", tmp_path, n_train=300, n_test=200, gzip=True)
    (images,) = (tmp_path / "MNIST" / "raw").glob("t10k-images*.gz")
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    code, out, _ = cli("data", "check", "--root", tmp_path)
    (line,) = [line for line in out.splitlines() if line.startswith("mnist ") and " test " in line]
    assert code == 3 and "DAMAGED" in line and str(images) in line, out
    code, out, _ = cli("data", "check", "--for", "gan", "--smoke", "--set", f"data.root={tmp_path}")
    assert code == 3 and "DAMAGED" in out and str(images) in out and "1 damaged" in out, out
    code, _, err = cli("run", "gan", "--smoke", "--set", f"data.root={tmp_path}", "--out", tmp_path / "out")
    assert code == 3 and str(images) in err  # what the run says too


def test_another_experiments_config_file_is_exit_2_naming_it(cli, tmp_path):
    code, vae_config, _ = cli("config", "vae")
    (tmp_path / "vae.yaml").write_text(vae_config)
    code, _, err = cli("run", "gan", "--config", tmp_path / "vae.yaml", "--out", tmp_path / "out")
    assert code == 2 and one_line(err) and f"--config {tmp_path / 'vae.yaml'}: unknown config key" in err
    assert not (tmp_path / "out").exists()
