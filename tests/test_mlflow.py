"""`--tracker mlflow` against the real package and its SQLite store: what a run logged reads back
equal to its folder's metrics.json and history CSVs, epochs arrive while training, a resumed run
continues its MLflow run, and a store that cannot be written never fails the run."""

import csv
import json
import os

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from atml.seed_summary import numeric_leaves  # noqa: E402
from atml.tracking.mlflow_runs import mlflow_key  # noqa: E402


def vae_train(cli, fake_root, out, *extra):
    return cli("run", "vae", "--part", "train", "--smoke", "--set", f"data.root={fake_root}",
               "--tracker", "mlflow", "--out", out, *extra)  # fmt: skip


def logged_run(out):
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("atml-vae").experiment_id])
    return client, run


def history_column(folder, column):
    with open(folder / "history" / "train-constant.csv", newline="") as handle:
        return [float(row[column]) for row in csv.DictReader(handle)]


def test_a_smoke_runs_logged_metrics_equal_its_metrics_json(cli, fake_root, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = vae_train(cli, fake_root, tmp_path)
    assert code == 0, err
    (folder,) = (tmp_path / "vae").iterdir()
    client, run = logged_run(tmp_path)
    assert run.info.status == "FINISHED" and run.data.tags["atml.run_folder"] == str(folder.resolve())
    config = (folder / "config.yaml").read_text()
    assert run.data.params["seed"] == "0" and f"epochs: {run.data.params['train.epochs']}" in config

    part = json.loads((folder / "metrics.json").read_text())["train"]
    leaves = numeric_leaves(part)
    assert len(leaves) > 20
    for path, value in leaves.items():
        assert run.data.metrics[mlflow_key(f"train/{path}")] == value, path

    epochs = client.get_metric_history(run.info.run_id, "vae-constant/recon")
    assert [m.step for m in epochs] == [1, 2]
    assert [m.value for m in epochs] == pytest.approx(history_column(folder, "recon"), rel=1e-12)
    # live: every epoch reached the store before the part's numbers did
    (summary,) = client.get_metric_history(run.info.run_id, "train/constant.recon")
    assert max(m.timestamp for m in epochs) <= summary.timestamp and epochs[0].timestamp < summary.timestamp
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {f"plots/{p.name}" for p in (folder / "plots").glob("*.png")} and artifacts


def test_a_resumed_run_continues_its_mlflow_run(cli, fake_root, tmp_path, monkeypatch):
    import atml.training

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def interrupted(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(atml.training.Progress, "epoch", interrupted)
        code, _, _ = vae_train(cli, fake_root, tmp_path)
    assert code == 130
    client, run = logged_run(tmp_path)
    assert run.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "vae-constant/recon")] == [1]

    (folder,) = (tmp_path / "vae").iterdir()
    code, _, err = cli("run", "vae", "--resume", folder, "--tracker", "mlflow")
    assert code == 0, err
    client, resumed = logged_run(tmp_path)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    epochs = client.get_metric_history(run.info.run_id, "vae-constant/recon")
    assert [m.step for m in epochs] == [1, 2]
    assert [m.value for m in epochs] == pytest.approx(history_column(folder, "recon"), rel=1e-12)


def test_a_store_that_cannot_be_written_is_a_warning_not_a_failed_run(cli, fake_root, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    code, _, err = vae_train(cli, fake_root, tmp_path / "out")
    assert code == 0, err
    assert err.count("MLflow store") == 1 and "the run goes on without it" in err
    (folder,) = (tmp_path / "out" / "vae").iterdir()
    assert "train" in json.loads((folder / "metrics.json").read_text())


def test_a_studys_parallel_jobs_log_to_one_store_beside_it(cli, fake_root, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = cli("run", "vae", "--part", "train", "--smoke", "--set", f"data.root={fake_root}",
                       "--sweep", "train.epochs=[1,2]", "--launcher", "processes", "--workers", "2",
                       "--tracker", "mlflow", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("atml-vae").experiment_id])
    assert sorted((r.info.status, r.data.params["train.epochs"]) for r in runs) == [
        ("FINISHED", "1"),
        ("FINISHED", "2"),
    ]
    assert all("/studies/" in r.data.tags["atml.run_folder"] for r in runs)
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the study's setting ends with it
