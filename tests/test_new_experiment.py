"""docs/development.md's "Adding an experiment", followed word for word: its files written as the
page shows them, installed with pip (into a folder of their own), then run as a user would:
`atml list`, `atml run`, `--seeds` and `atml report`."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

# a file's path in backticks at the start of a line, a few words on it, then its fenced block
FILE = re.compile(r"^`(toy/[^`]+)`.*?\n\n```\w*\n(.*?)^```", re.S | re.M)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The page's files, pip-installed into a folder that PYTHONPATH then names."""
    root = tmp_path_factory.mktemp("toy")
    files = FILE.findall((REPO / "docs" / "development.md").read_text())
    assert {name for name, _ in files} == {
        "toy/pyproject.toml", "toy/atml_toy/__init__.py", "toy/atml_toy/parts.py",
        "toy/atml_toy/configs/default.yaml", "toy/atml_toy/configs/smoke.yaml",
    }  # fmt: skip
    for name, text in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(root / "toy")],
        check=True, capture_output=True,
    )  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(site), "ATML_CACHE_DIR": str(root / "cache")}

    def atml(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "atml", *args], capture_output=True, text=True, env=env, cwd=root
        )

    return root, atml


def test_a_sixth_experiment_added_as_the_docs_say_is_listed_after_the_five(toy):
    _, atml = toy
    listed = atml("list")
    assert listed.returncode == 0, listed.stderr
    assert "toy: A toy: a line fitted by gradient descent." in listed.stdout
    assert listed.stdout.index("clip:") < listed.stdout.index("toy:")


def test_it_runs_with_seeds_and_is_reported(toy):
    root, atml = toy
    done = atml("run", "toy", "--out", "out")
    assert done.returncode == 0, done.stderr
    (folder,) = (root / "out" / "toy").iterdir()
    fit = json.loads((folder / "metrics.json").read_text())["fit"]
    assert abs(fit["slope"] - 3) < 0.3 and abs(fit["intercept"] - 1) < 0.3  # y = 3x + 1 + noise
    assert (folder / "history" / "fit.csv").is_file() and (folder / "plots" / "fit_loss.png").is_file()
    seeds = atml("run", "toy", "--smoke", "--seeds", "2", "--out", "out")
    assert seeds.returncode == 0, seeds.stderr
    summary = next((root / "out" / "toy").glob("*-seeds"))
    assert "± " in (summary / "summary.md").read_text()
    report = atml("report", "--outputs", "out", "--to", "report")
    assert report.returncode == 0, report.stderr
    text = (root / "report" / "report.md").read_text()
    assert "fit: slope (true 3)" in text and "(n=2)" in text
    assert "*toy fit: mean squared error per gradient step*" in text  # the declared caption
    assert "The fitted line is y = " in text and "x + " in text  # the declared reading, filled
    study = atml("run", "toy", "--smoke", "--sweep", "train.lr=[0.1,0.5]", "--out", "out")
    assert study.returncode == 0, study.stderr
    (folder,) = (root / "out" / "studies").iterdir()
    assert "| lr | fit: slope (true 3) |" in (folder / "summary.md").read_text()
