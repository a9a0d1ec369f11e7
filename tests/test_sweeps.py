"""Studies (issue 29): a sweep's cells resolved before anything runs, the same numbers under every
launcher, a study that resumes after a worker is killed, status and cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import error_lines

GRID = ("--sweep", "train.lr_d=[0.0002,0.002]", "--sweep", "train.g_loss=[saturating,non_saturating]")


def study_args(root, out, *extra):
    return ("run", "gan", "--smoke", "--part", "baseline", *GRID, "--seeds", "2",
            "--set", f"data.root={root}", "--out", out, *extra)  # fmt: skip


def the_study(out: Path) -> Path:
    (folder,) = (out / "studies").iterdir()
    return folder


def numbers(study: Path) -> dict[str, dict]:
    """Every run's metrics.json, by job and seed."""
    record = json.loads((study / "study.json").read_text())
    return {
        f"{job['name']}/{seed}": json.loads((Path(run) / "metrics.json").read_text())
        for job in record["jobs"]
        for seed, run in zip(job["seeds"], job["runs"])
    }


def test_a_bad_value_in_one_cell_is_exit_2_with_nothing_started(cli, fake_root, tmp_path):
    code, _, err = cli(*study_args(fake_root, tmp_path / "out", "--sweep", "train.lr_g=[0.001, -1]"))
    assert code == 2 and len(error_lines(err)) == 1 and "cell " in err and "train.lr_g" in err, err
    assert not (tmp_path / "out").exists()


def test_dry_run_lists_every_cell_and_runs_nothing(cli, fake_root, tmp_path):
    code, out, err = cli(*study_args(fake_root, tmp_path / "out", "--dry-run"))
    assert code == 0, err
    assert (
        "4 cells, 4 jobs" in out
        and "nothing run" in out
        and "lr_d_0.002-g_loss_non_saturating-seeds0_1" in out
    )
    assert not (tmp_path / "out").exists()


def test_a_launcher_is_a_shipped_yaml_or_a_users_with_launcher_set_over_it(cli, fake_root, tmp_path):
    code, out, err = cli(*study_args(fake_root, tmp_path / "o", "--launcher", "slurm-gpu", "--dry-run"))
    assert code == 0, err
    assert "launcher: slurm: time_min=240, cpus=8, gpus=1, mem_gb=32.0" in out and "slurm-gpu.yaml" in out
    mine = tmp_path / "cluster.yaml"
    mine.write_text("kind: slurm\npartition: gpu\ncpus: 4\naccount: lab\n")  # the rest: slurm.yaml's
    args = study_args(fake_root, tmp_path / "o", "--launcher", mine, "--launcher-set", "cpus=2", "--dry-run")
    code, out, err = cli(*args)
    assert code == 0, err
    assert (
        f"launcher: slurm: partition=gpu, time_min=60, cpus=2, gpus=0, account=lab, array_parallelism=16 "
        f"(from {mine})" in out
    )
    code, out, err = cli(*study_args(fake_root, tmp_path / "o", "--launcher", "processes", "--dry-run"))
    assert code == 0 and "launcher: processes, 2 workers" in out, err
    mine.write_text("kind: slurm\ntime_min: 30\ncpu: 4\n")
    code, _, err = cli(*study_args(fake_root, tmp_path / "o", "--launcher", mine))
    assert code == 2 and f"{mine}: cpu: Extra inputs are not permitted" in err and len(error_lines(err)) == 1
    code, _, err = cli(
        *study_args(fake_root, tmp_path / "o", "--launcher", "slurm", "--launcher-set", "gpus=-1")
    )
    assert code == 2 and "--launcher-set gpus: Input should be greater than or equal to 0" in err, err
    code, _, err = cli(*study_args(fake_root, tmp_path / "o", "--launcher", "slrum"))
    assert code == 2 and "unknown launcher 'slrum'; accepted: local, processes, slurm, slurm-gpu" in err
    code, _, err = cli(*study_args(fake_root, tmp_path / "o", "--launcher", "local", "--workers", "2"))
    assert code == 2 and "--workers goes with --launcher processes" in err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def local_study(fake_root, tmp_path_factory) -> Path:
    """The reference: --launcher local. Its sample classifier (the judge of generated digits) is
    trained here and cached in the tests' cache for the other studies: trained on another number of
    threads (a worker's one), its last bits, and the Fréchet distance's 8th digit, would differ."""
    out = tmp_path_factory.mktemp("local")
    cache = tmp_path_factory.getbasetemp() / "cache"  # conftest's, which is not yet set for a module fixture
    done = subprocess.run(
        [sys.executable, "-m", "atml", *map(str, study_args(fake_root, out))],
        capture_output=True,
        env=os.environ | {"ATML_CACHE_DIR": str(cache)},
    )
    assert done.returncode == 0, done.stderr.decode()
    return the_study(out)


def test_a_local_study_records_each_job_and_summarises_each_headline_against_each_key(local_study):
    record = json.loads((local_study / "study.json").read_text())
    assert [j["state"] for j in record["jobs"]] == ["done"] * 4
    assert all(len(j["runs"]) == 2 and len(j["config_sha256"]) == 2 for j in record["jobs"])
    summary = json.loads((local_study / "summary.json").read_text())
    d_real = [c["numbers"]["baseline: final D(x)"] for c in summary["cells"]]
    assert all(n["n"] == 2 and n["std"] > 0 for n in d_real)
    for cell, number in zip(summary["cells"], d_real):  # mean over the cell's two seeds' own runs
        (job,) = [j for j in record["jobs"] if j["cell"] == cell["cell"]]
        values = [json.loads((Path(r) / "metrics.json").read_text())["baseline"]["assignment"]["final_d_real"]
                  for r in job["runs"]]  # fmt: skip
        assert number["mean"] == pytest.approx(sum(values) / 2)
    text = (local_study / "summary.md").read_text()
    assert "| lr_d | g_loss |" in text and "(n=2)" in text
    assert (local_study / "plots" / "baseline_final_D_x_vs_lr_d.png").is_file()


def test_processes_give_every_cell_the_numbers_of_local(local_study, fake_root, tmp_path):
    args = study_args(fake_root, tmp_path, "--launcher", "processes", "--workers", "2")
    done = subprocess.run([sys.executable, "-m", "atml", *map(str, args)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert numbers(the_study(tmp_path)) == numbers(local_study)


def _wait(predicate, what: str, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_worker_and_a_cancelled_study_resume_to_the_numbers_of_an_uninterrupted_one(
    local_study, fake_root, tmp_path
):
    args = study_args(fake_root, tmp_path, "--launcher", "processes", "--workers", "2")
    study = subprocess.Popen([sys.executable, "-m", "atml", *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait(lambda: list(tmp_path.glob("studies/*/jobs/*/gan/*/checkpoints/*.pt")), "a first checkpoint")
        folder = the_study(tmp_path)
        record = json.loads((folder / "study.json").read_text())
        running = [j for j in record["jobs"] if j["state"] == "running"]
        os.kill(int(running[0]["job_id"].split(":")[1]), signal.SIGKILL)
        cancel = subprocess.run(
            [sys.executable, "-m", "atml", "study", "cancel", folder], capture_output=True, text=True
        )
        assert cancel.returncode == 0 and "stopped process" in cancel.stdout, cancel
        _, err = study.communicate(timeout=120)
    finally:
        study.kill()
    assert study.returncode == 130 and f"atml study resume {folder}" in err, err
    status = subprocess.run(
        [sys.executable, "-m", "atml", "study", "status", folder], capture_output=True, text=True
    )
    assert "interrupted" in status.stdout and "killed (SIGKILL)" in status.stdout, status.stdout
    resumed = subprocess.run(
        [sys.executable, "-m", "atml", "study", "resume", folder], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert numbers(folder) == numbers(local_study)
    assert "4 done" in subprocess.run([sys.executable, "-m", "atml", "study", "status", folder],
                                      capture_output=True, text=True).stdout  # fmt: skip


def test_resume_refuses_a_study_whose_cells_would_resolve_differently(local_study, tmp_path, cli):
    import shutil

    folder = tmp_path / "study"
    shutil.copytree(local_study, folder)
    record = json.loads((folder / "study.json").read_text())
    record["jobs"][0]["state"] = "interrupted"
    record["jobs"][0]["config_sha256"][0] = "0" * 64
    (folder / "study.json").write_text(json.dumps(record))
    code, _, err = cli("study", "resume", folder)
    assert code == 2 and "would now resolve differently" in err and record["jobs"][0]["name"] in err, err


def _slurm_missing() -> str | None:
    import shutil

    if not shutil.which("sbatch"):
        return "SLURM is not installed (sbatch not on PATH; .ci/run installs slurm-wlm and starts a cluster)"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or "idle" not in state.stdout and "mix" not in state.stdout:
        said = (state.stdout + state.stderr).strip()[:200]
        return f"no SLURM node is up (sinfo: {said}; .ci/slurm-cluster start)"
    return None


slurm = pytest.mark.skipif(bool(_slurm_missing()), reason=_slurm_missing() or "")


@slurm
def test_slurm_gives_every_cell_the_numbers_of_local(local_study, fake_root, tmp_path):
    args = study_args(fake_root, tmp_path, "--launcher", "slurm", "--launcher-set", "cpus=1")
    done = subprocess.run([sys.executable, "-m", "atml", *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads((the_study(tmp_path) / "study.json").read_text())
    assert all(job["job_id"].startswith("slurm:") for job in record["jobs"])
    assert numbers(the_study(tmp_path)) == numbers(local_study)


@slurm
def test_a_requeued_slurm_job_continues_from_its_checkpoints_to_the_same_numbers(
    local_study, fake_root, tmp_path
):
    """SLURM's warning signal before a preemption or the time limit (USR2, what submitit asks
    for): submitit checkpoints the job, which requeues as --resume of its run folders."""
    args = study_args(fake_root, tmp_path, "--launcher", "slurm", "--launcher-set", "cpus=1")
    study = subprocess.Popen([sys.executable, "-m", "atml", *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait(lambda: list(tmp_path.glob("studies/*/jobs/c00*/gan/*/checkpoints/*.pt")), "a first checkpoint")
        folder = the_study(tmp_path)
        (first,) = [j for j in json.loads((folder / "study.json").read_text())["jobs"] if j["cell"] == 0]
        # scancel may say "can not be altered now" of the job's step, yet the signal arrives: the log says
        subprocess.run(["scancel", "--signal=USR2", first["job_id"].split(":")[1]], capture_output=True)
        _, err = study.communicate(timeout=600)
    finally:
        if study.poll() is None:
            study.send_signal(signal.SIGTERM)  # the study cancels its jobs left in SLURM
            study.wait(timeout=60)
    assert study.returncode == 0, err
    log_text = (folder / "jobs" / first["name"] / "log.txt").read_text()
    resumed = ("resuming after epoch", "resuming from the start", "already complete")  # where it was cut
    assert any(said in log_text for said in resumed), log_text[-2000:]
    assert numbers(folder) == numbers(local_study)


def test_the_report_renders_a_study_as_its_table_and_figures(cli, local_study, tmp_path):
    code, _, err = cli("report", local_study, "--to", tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert code == 0, err
    assert "## Study of gan: train.lr_d (2 values) × train.g_loss (2 values)" in text
    assert "| lr_d | g_loss | baseline: final D(x) |" in text and "(n=2)" in text
    assert "baseline_final_D_x_vs_lr_d.png" in text


def test_compare_sets_each_cell_of_a_study_beside_a_run(cli, local_study, tmp_path):
    record = json.loads((local_study / "study.json").read_text())
    run = Path(record["jobs"][0]["runs"][1])  # cell 0's seed 1
    code, _, err = cli("report", "--compare", local_study, run, "--to", tmp_path)
    assert code == 0, err
    text = (tmp_path / "compare.md").read_text()
    assert "E: " + str(run) in text and "seed summary over seeds 0, 1 (n = 2)" in text
    config = text.split("## Config keys that differ")[1].split("##")[0]
    assert "| train.lr_d | 0.0002 | 0.0002 | 0.002 | 0.002 | 0.0002 |" in config
    summary = json.loads((local_study / "summary.json").read_text())
    d_real = [c["numbers"]["baseline: final D(x)"] for c in summary["cells"]]
    row = next(line for line in text.splitlines() if line.startswith("| baseline: final D(x)"))
    cells = [value.strip() for value in row.strip("|").split("|")[2:]]
    assert cells[:4] == [f"{n['mean']:.4g} ± {n['std']:.2g} (n=2)" for n in d_real]
    assert cells[4] == f"{d_real[0]['values']['1']:.4g}"
    code, _, err = cli("report", "--compare", local_study / "jobs", "--to", tmp_path)
    assert code == 3 and len(error_lines(err)) == 1


def test_two_jobs_filling_one_cache_entry_at_once_both_succeed_with_the_same_bytes(fake_root, tmp_path):
    """Two runs judge with the same sample classifier trained here, which neither finds cached: both
    train it and write it (atomically: a temporary file, then a rename) into the one shared cache."""
    env = os.environ | {"ATML_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.Popen(
            [
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
                "eval.classifier.judge=train",
                "--out",
                str(tmp_path / f"out{i}"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    errors = [run.communicate(timeout=600)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    (cached,) = (tmp_path / "cache" / "classifiers").iterdir()  # one file, no temporary leftovers
    assert cached.suffix == ".pt"
    metrics = [
        json.loads(next((tmp_path / f"out{i}" / "gan").glob("*/metrics.json")).read_text()) for i in range(2)
    ]
    assert metrics[0] == metrics[1]


def test_run_all_sweeps_every_experiment_that_has_the_keys_each_checked_first(cli, tmp_path):
    code, out, err = cli("run", "all", "--smoke", "--sweep", "seed=[0,1]", "--out", tmp_path, "--dry-run")
    assert code == 0, err
    assert all(f"{name}: 2 cells, 2 jobs" in out for name in ("resnet", "vit", "gan", "vae", "clip")), out
    code, out, err = cli("run", "all", "--smoke", "--sweep", "train.lr_d=[0.1,0.2]", "--dry-run")
    assert code == 0 and "gan: 2 cells" in out and "vae:" not in out and "gan has" not in err, (out, err)
    code, _, err = cli(
        "run", "all", "--smoke", "--sweep", "seed=[0,1]", "--set", "train.epochs=0", "--out", tmp_path
    )
    assert code == 2 and len(error_lines(err)) == 1 and "cell seed=0" in err, err
    assert not (tmp_path / "studies").exists()
