"""`--tracker`: a run's numbers, curves and figures also in a tracking tool. The run folder stays
the one source of truth; a tracker receives, per run, each training's epoch rows as they happen
(`log_epoch`, through `Run.log_epoch`), each finished part's metrics (`log_part`), and how the run
ended (`close`)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Protocol

from atml.errors import UserError

# kind → (package to import, the extra that installs it)
TRACKERS = {"none": None, "tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}


class Tracker(Protocol):
    def log_epoch(self, training: str, row: dict) -> None: ...
    def log_part(self, part: str, metrics: dict) -> None: ...
    def close(self, status: str = "FINISHED") -> None: ...  # FINISHED | FAILED | KILLED


def check_tracker(kind: str) -> None:
    """Before any run folder, without importing the tracker's package: a known tracker, installed."""
    if kind not in TRACKERS:
        raise UserError(f"unknown tracker '{kind}'; accepted: {', '.join(TRACKERS)}")
    if TRACKERS[kind] is not None:
        package, extra = TRACKERS[kind]
        if importlib.util.find_spec(package) is None:
            raise UserError(f"--tracker {kind} needs the {package} package: pip install 'atml[{extra}]'")


def make_tracker(kind: str, run_dir: Path, config: dict) -> Tracker | None:
    check_tracker(kind)
    if kind == "tensorboard":
        from atml.tracking.tensorboard import TensorBoardTracker

        return TensorBoardTracker(run_dir, config)
    if kind == "mlflow":
        from atml.tracking.mlflow_runs import MlflowTracker

        return MlflowTracker(run_dir, config)
    return None


@contextlib.contextmanager
def shared_store(kind: str, out_root: Path, experiment: str):
    """While a study's jobs run, they log to one store: MLFLOW_TRACKING_URI where set, else the
    study's OUT/mlflow.db (the job processes it starts inherit the variable); created once, here."""
    if kind != "mlflow":
        yield
        return
    from atml.tracking.mlflow_runs import open_store, store_uri

    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri = before or store_uri(out_root)
    open_store(uri, experiment)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_TRACKING_URI"]
