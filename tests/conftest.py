import os
import sys
from pathlib import Path

import pytest

from atml.data.fake import write_fake_idx_dataset

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("ATML_REAL_DATA", REPO.parent / "shared" / "datasets"))
# ATML_NO_SYSTEM_DATA=1: atml looks in no machine-wide data folder, as on a user's machine without
# them (.ci/run's second pass); tests that need real data skip, the rest use fake data
SYSTEM_DATA_HIDDEN = os.environ.get("ATML_NO_SYSTEM_DATA") == "1"


def error_lines(err: str) -> list[str]:
    """stderr's lines but the warning that a run reads fake data (the fake_root fixture's)."""
    return [line for line in err.strip().splitlines() if not line.startswith("atml: FAKE data in ")]


@pytest.fixture(autouse=True, scope="session")
def _cli_logging():
    """atml's log lines go where the CLI sends them (stdout / stderr), whichever test runs first."""
    from atml import logs

    logs.setup()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ATML_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fake_idx_dataset("mnist", root, n_train=800, n_test=700, gzip=True)
    write_fake_idx_dataset("fashion-mnist", root, n_train=800, n_test=300)
    return root


def global_streams() -> tuple:
    """Python's, numpy's and torch's global random states, comparable with ==."""
    import random

    import numpy as np
    import torch

    kind, keys, position, *rest = np.random.get_state()
    return random.getstate(), (kind, keys.tobytes(), position, *rest), torch.get_rng_state().numpy().tobytes()


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run the real entry point in-process: returns (exit code, stdout, stderr). Every command is
    checked to leave the global random streams where they were: atml draws from its own, by
    purpose (atml.seeding), so a part's numbers cannot depend on what ran before it."""
    from atml.cli import main

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["atml", *map(str, args)])
        before = global_streams()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        assert global_streams() == before, f"atml {' '.join(map(str, args))} moved a global random stream"
        return code, out, err

    return invoke


def copy_shipped_configs(folder: Path) -> Path:
    """Every experiment's shipped configs, laid out as ATML_CONFIG_DIR reads them: FOLDER/EXP/*.yaml."""
    import shutil

    from atml import experiments

    for name, module in experiments.EXPERIMENTS.items():
        shutil.copytree(REPO / module.replace(".", "/") / "configs", folder / name)
    return folder
