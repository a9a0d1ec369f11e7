"""Run folders: outputs/<experiment>/<timestamp>-<name>/ with atomic writers and resume.

Layout: config.yaml (resolved), env.json (versions, commit, device, seed, command line),
metrics.json (headline numbers per part), history/<part>.csv, plots/, samples/, checkpoints/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Iterable

import torch
import yaml

from atml.errors import UserError

SUBDIRS = ("history", "plots", "samples", "checkpoints")
PACKAGES = ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "matplotlib", "pydantic", "typer", "atml")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class Run:
    """One run folder. Experiments write through it and never build paths themselves."""

    def __init__(self, root: Path):
        self.dir = Path(root)

    # --- creation and reopening -------------------------------------------------------
    @classmethod
    def create(cls, out_root: Path, experiment: str, name: str, config: dict, env: dict) -> "Run":
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(out_root) / experiment / f"{stamp}-{name}"
        folder, n = base, 1
        while True:  # a new run never reuses an existing folder
            try:
                folder.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                n += 1
                folder = base.with_name(f"{base.name}-{n}")
        run = cls(folder)
        for sub in SUBDIRS:
            (folder / sub).mkdir()
        atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        run.write_env(env)
        return run

    @classmethod
    def open(cls, folder: Path) -> "Run":
        folder = Path(folder)
        if not (folder / "config.yaml").is_file() or not (folder / "env.json").is_file():
            raise UserError(f"--resume needs a run folder holding config.yaml and env.json; {folder} has none")
        return cls(folder)

    def write_env(self, env: dict) -> None:
        record = {
            "created": datetime.now().isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": package_versions(),
            "git_commit": git_commit(),
            "command": sys.argv,
            **env,
        }
        atomic_write_text(self.dir / "env.json", json.dumps(record, indent=2, default=str))

    @property
    def config(self) -> dict:
        return yaml.safe_load((self.dir / "config.yaml").read_text())

    @property
    def env(self) -> dict:
        return json.loads((self.dir / "env.json").read_text())

    # --- results ------------------------------------------------------------------------
    @property
    def metrics(self) -> dict:
        path = self.dir / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def record_metrics(self, part: str, values: dict) -> None:
        atomic_write_text(self.dir / "metrics.json", json.dumps(self.metrics | {part: values}, indent=2))

    def write_history(self, name: str, rows: Iterable[dict]) -> Path:
        rows = list(rows)
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        path = self.dir / "history" / f"{name}.csv"
        atomic_write_text(path, buffer.getvalue())
        return path

    def plot_path(self, name: str) -> Path:
        return self.dir / "plots" / f"{name}.png"

    def sample_path(self, name: str) -> Path:
        return self.dir / "samples" / f"{name}.png"

    # --- checkpoints --------------------------------------------------------------------
    def checkpoint_path(self, key: str) -> Path:
        return self.dir / "checkpoints" / f"{key}.pt"

    def save_checkpoint(self, key: str, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint_path(key), buffer.getvalue())

    def load_checkpoint(self, key: str) -> dict | None:
        path = self.checkpoint_path(key)
        if not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)
