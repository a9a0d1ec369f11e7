"""`--tracker mlflow`: each atml run as an MLflow run. Params: the resolved config (dotted keys).
Metrics: each training's epoch rows while it trains (`TRAINING/column`, step = the epoch), and each
part's numbers when it ends (`PART/path`, the paths of metrics.json, step 0). Artifacts: config,
env, figures, samples and history CSVs. Tags: the run folder, experiment and seed.

The store is MLFLOW_TRACKING_URI where set (any URI MLflow takes), else a SQLite file beside the
experiments' folders, `OUT/mlflow.db`, with its artifacts in `OUT/mlartifacts`; `mlflow ui
--backend-store-uri sqlite:///OUT/mlflow.db` shows it. `RUN/mlflow.json` names the MLflow run, so
`--resume` continues it. A tracker never fails a run: a store that cannot be written is one warning,
and the run goes on without it (its folder holds every number)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from pathlib import Path

from atml.config import settings
from atml.runs import atomic_write_text
from atml.seed_summary import numeric_leaves

log = logging.getLogger("atml")
RECORD = "mlflow.json"
PARAM_CHARS = 6000  # MLflow's longest param value
BATCH = 100  # params per log_batch call (MLflow's limit; metrics may be 1000)
_NOT_ALLOWED = re.compile(r"[^\w\-. :/]")


def mlflow_key(path: str) -> str:
    """A metric or param name in MLflow's characters (letters, digits, _ - . space : /)."""
    return _NOT_ALLOWED.sub("_", path)


def store_uri(out_root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(out_root / 'mlflow.db').resolve()}"


def config_params(config: dict) -> dict[str, str]:
    """{dotted key: value as text} for every setting; lists and nulls as YAML would read them."""
    params = {}
    for name, value in settings(config).items():
        text = value if isinstance(value, str) else json.dumps(value)
        params[mlflow_key(name)] = text if len(text) <= PARAM_CHARS else text[: PARAM_CHARS - 1] + "…"
    return params


def artifact_root(uri: str, experiment: str) -> str | None:
    """Beside a SQLite store, `mlartifacts/EXPERIMENT` (not MLflow's ./mlruns in whatever folder a
    job runs in); for any other store, its own default."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix) :]).parent / "mlartifacts" / experiment).resolve().as_uri()


def experiment_id(client, name: str, uri: str) -> str:
    """`atml-EXPERIMENT`, created on first use (by another process at the same moment: found)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_root(uri, name))
    except Exception:  # noqa: BLE001 (created meanwhile; if not, get_experiment_by_name raises)
        return client.get_experiment_by_name(name).experiment_id


def open_store(uri: str, experiment: str) -> None:
    """The store and its experiment created, once, before a study's jobs race to create them."""
    from mlflow.tracking import MlflowClient

    try:
        experiment_id(MlflowClient(tracking_uri=uri), f"atml-{experiment}", uri)
    except Exception as exc:  # noqa: BLE001 (each job then warns for itself)
        log.warning(f"atml: MLflow store {uri} could not be opened: {str(exc).strip()[:200]}")


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class MlflowTracker:
    def __init__(self, run_dir: Path, config: dict):
        from mlflow.tracking import MlflowClient  # its package checked by check_tracker

        self.run_dir = Path(run_dir)
        out_root = self.run_dir.parent.parent
        self.uri = store_uri(out_root)
        self.logged: set[Path] = set()
        self.client, self.run_id = None, None
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
        except Exception as exc:  # noqa: BLE001 (see _call)
            self._give_up(exc)
        self.run_id = self._call(lambda: self._continued() or self._started(config))

    def _call(self, action):
        """An MLflow call; the first failure becomes a warning and ends this tracker's logging.
        Any exception: MLflow raises its own, SQLAlchemy's, requests' and OSError."""
        if self.client is None:
            return None
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 (see above)
            self._give_up(exc)
            return None

    def _give_up(self, exc: Exception) -> None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning(f"atml: MLflow store {self.uri} not written ({reason}); the run goes on without it")
        self.client = None

    def _continued(self) -> str | None:
        """The MLflow run of a resumed run folder, if it lives in this store."""
        record = self.run_dir / RECORD
        if not record.is_file():
            return None
        saved = json.loads(record.read_text())
        if saved.get("tracking_uri") != self.uri:
            return None
        self.client.update_run(saved["run_id"], status="RUNNING")
        return saved["run_id"]

    def _started(self, config: dict) -> str:
        from mlflow.entities import Param

        experiment = experiment_id(self.client, f"atml-{self.run_dir.parent.name}", self.uri)
        folder = str(self.run_dir.resolve())
        run = self.client.create_run(
            experiment,
            run_name=self.run_dir.name,
            tags={
                "atml.run_folder": folder,
                "atml.experiment": self.run_dir.parent.name,
                "atml.seed": str(config.get("seed")),
                "mlflow.note.content": f"atml run folder: {folder}",
            },
        )
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in config_params(config).items()]
        for start in range(0, len(params), BATCH):
            self.client.log_batch(run_id, params=params[start : start + BATCH])
        for name in ("config.yaml", "env.json"):
            self.client.log_artifact(run_id, str(self.run_dir / name))
        record = {"tracking_uri": self.uri, "run_id": run_id, "experiment_id": experiment}
        atomic_write_text(self.run_dir / RECORD, json.dumps(record, indent=2))
        return run_id

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(k), float(v), now, step) for k, v in values.items() if _finite_number(v)]
        for start in range(0, len(metrics), 10 * BATCH):
            chunk = metrics[start : start + 10 * BATCH]
            self._call(lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk))

    def log_epoch(self, training: str, row: dict) -> None:
        values = {f"{training}/{column}": v for column, v in row.items() if column not in ("epoch", "step")}
        self._log_metrics(values, int(row.get("epoch", 0)))

    def log_part(self, part: str, metrics: dict) -> None:
        leaves = numeric_leaves(metrics)
        self._log_metrics({f"{part}/{path}": v for path, v in leaves.items()}, 0)
        for folder in ("plots", "samples", "history"):
            for path in sorted((self.run_dir / folder).glob("*.*")):
                if path not in self.logged and self._call(
                    lambda path=path, folder=folder: (
                        self.client.log_artifact(self.run_id, str(path), folder) or True
                    )
                ):
                    self.logged.add(path)

    def close(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self._call(lambda: self.client.set_terminated(self.run_id, status=status))
