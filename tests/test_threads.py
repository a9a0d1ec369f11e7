"""The user's thread count holds for every part of a run: a library that changes OpenMP's count
(UMAP's numba restores the cores' count after each map) does not change torch's for what follows."""

import json
import os
import subprocess
import sys

import torch

from atml import runtime


def without_thread_settings() -> dict[str, str]:
    """This environment less OMP_NUM_THREADS and MKL_NUM_THREADS: what --threads alone must set."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def test_the_count_is_set_again_when_something_changed_it():
    held = runtime.hold_threads()
    torch.set_num_threads(held + 1)
    assert runtime.hold_threads() == held == torch.get_num_threads()


def test_omp_num_threads_holds_after_a_umap_map_and_is_recorded(tmp_path, fake_root):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    probe = (
        "import numpy as np, torch\n"
        "from atml.runtime import hold_threads\n"
        "from atml.analysis.embeddings import project_2d\n"
        "hold_threads()\n"
        "project_2d(np.random.default_rng(0).random((60, 8), dtype=np.float32), 'umap')\n"
        "print(torch.get_num_threads(), hold_threads(), torch.get_num_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    changed, held, after = map(int, done.stdout.split())
    assert held == after == 1  # what UMAP left (`changed`: 2 on a 2-core machine) is set back
    run = subprocess.run(
        [sys.executable, "-m", "atml", "run", "gan", "--smoke", "--part", "baseline",
         "--set", f"data.root={fake_root}", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (folder,) = (tmp_path / "gan").iterdir()
    recorded = json.loads((folder / "env.json").read_text())
    assert recorded["threads"] == 1 and recorded["device_name"] == "cpu (1 thread)"


def test_threads_option_sets_the_count_for_the_run_and_is_recorded(tmp_path, fake_root, cli):
    env = without_thread_settings()
    run = subprocess.run(
        [sys.executable, "-m", "atml", "run", "gan", "--smoke", "--part", "baseline", "--threads", "1",
         "--set", f"data.root={fake_root}", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (folder,) = (tmp_path / "gan").iterdir()
    assert json.loads((folder / "env.json").read_text())["threads"] == 1 and "cpu (1 thread)" in run.stdout
    code, _, err = cli("run", "gan", "--threads", "0", "--out", tmp_path / "none")
    assert code == 2 and "--threads 0: give 1 to 4096" in err and not (tmp_path / "none").exists()


def test_threads_option_holds_for_a_studys_worker_processes(tmp_path, fake_root):
    """Workers otherwise split the cores between them; the user's --threads wins over that split."""
    env = without_thread_settings()
    run = subprocess.run(
        [sys.executable, "-m", "atml", "run", "gan", "--smoke", "--part", "baseline", "--threads", "1",
         "--sweep", "train.lr_d=[0.0002]", "--launcher", "processes", "--workers", "1",
         "--set", f"data.root={fake_root}", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (recorded,) = tmp_path.glob("studies/*/jobs/*/gan/*/env.json")
    assert json.loads(recorded.read_text())["threads"] == 1
