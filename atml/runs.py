"""Run folders: outputs/<experiment>/<timestamp>-<name>/ with atomic writers and resume.

Layout: config.yaml (resolved), env.json (versions, commit, device, seed, command line),
metrics.json (headline numbers per part), history/<part>.csv, plots/, samples/, checkpoints/.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import logging
import math
import os
import platform
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import cached_property
from importlib import metadata
from pathlib import Path

import yaml

from atml import folder_lock
from atml.errors import DamagedFileError, OutputWriteError, UserError, first_line, shorten
from atml.records import check_run, config_sha256, read_mapping

log = logging.getLogger("atml")

SUBDIRS = ("history", "plots", "samples", "checkpoints")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "open_clip_torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "umap-learn",
    "matplotlib",
    "pydantic",
    "typer",
    "atml",
)


def finite(tree, where: str) -> tuple[object, list[str]]:
    """`tree` with every NaN or infinite float replaced by None, and the dotted keys replaced."""
    if isinstance(tree, float) and not math.isfinite(tree):
        return None, [where]
    if isinstance(tree, dict | list | tuple):
        items = tree.items() if isinstance(tree, dict) else enumerate(tree)
        out, found = {}, []
        for key, value in items:
            out[key], bad = finite(value, f"{where}.{key}")
            found += bad
        return (out if isinstance(tree, dict) else list(out.values())), found
    return tree, []


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.
    The temporary name carries this process's id, so a later run can tell a killed write's
    leftover (remove_stale_temps) from another live process's write in progress."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        name = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies (mkstemp: 0600)
        tmp = name
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def remove_stale_temps(folder: Path) -> int:
    """Delete temporary files that killed writes left under `folder`; returns how many."""
    removed = 0
    for tmp in Path(folder).rglob(".*.tmp"):
        pid = tmp.name.rsplit(".", 3)[-3] if tmp.name.count(".") >= 3 else ""
        if pid.isdigit() and _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


MAX_RUN_NAME = 100  # a folder name holds 255 bytes; the time stamp and "-seedN" go around it


def check_run_name(name: str) -> str:
    """A run folder suffix: one path component of letters, digits, '.', '_' and '-'."""
    if not RUN_NAME.fullmatch(name) or name in (".", ".."):
        raise UserError(
            f"--name '{shorten(name, 80)}' must be letters, digits, '.', '_' or '-' (no '/', no leading "
            "'.'): it names a folder inside --out"
        )
    if len(name) > MAX_RUN_NAME:
        raise UserError(f"--name is {len(name)} characters; at most {MAX_RUN_NAME} (it names a folder)")
    return name


MAX_SAME_SECOND_RUNS = 1000


def check_output_root(out: Path) -> None:
    """Fail before any work if run folders could not be created under `out`."""
    existing = Path(out).absolute()
    while not existing.exists():
        if existing.is_symlink():  # exists() follows links: False for a dangling one or a loop
            raise UserError(f"--out {out}: {existing} is a broken link or a link loop")
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {existing} is not writable")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5
        )
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


def new_folder(parent: Path, name: str, what: str) -> Path:
    """A new folder PARENT/<timestamp>-NAME (-2, -3, … when one of that second exists): a new run
    or study never reuses an existing folder."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(parent) / f"{stamp}-{name}"
    folder = base
    for n in range(2, MAX_SAME_SECOND_RUNS + 2):
        try:
            folder.mkdir(parents=True, exist_ok=False)
            return folder
        except FileExistsError:
            if not folder.parent.is_dir():  # a file or a dangling link above it: no name will do
                raise OutputWriteError(
                    f"could not create the {what} {folder}: {folder.parent} is not a folder"
                ) from None
            folder = base.with_name(f"{base.name}-{n}")
        except OSError as exc:
            raise OutputWriteError(f"could not create the {what} {folder}: {exc.strerror or exc}") from None
    raise OutputWriteError(f"could not create a {what}: {base}-2 … -{n} all exist")


class Run:
    """One run folder. Experiments write through it and never build paths themselves."""

    def __init__(self, root: Path):
        self.dir = Path(root)
        self.epoch_listeners: list[Callable[[str, dict], None]] = []  # the run's trackers

    # --- creation and reopening -------------------------------------------------------
    @classmethod
    def create(cls, out_root: Path, experiment: str, name: str, config: dict, env: dict) -> Run:
        folder = new_folder(Path(out_root) / experiment, name, "run folder")
        run = cls(folder)
        for sub in SUBDIRS:
            (folder / sub).mkdir(exist_ok=True)
        atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        run.write_env({"run_id": secrets.token_hex(8), **env})
        return run

    @classmethod
    def open(cls, folder: Path, experiment) -> Run:
        """Reopen a run folder of `experiment` to continue it, locked for this process: every
        record must read back as the experiment wrote it (else DamagedFileError naming the file and
        key); leftovers of killed writes are removed."""
        folder = Path(folder)
        check_run(folder, experiment)
        folder_lock.hold(folder)
        run = cls(folder)
        removed = remove_stale_temps(folder)
        if removed:
            log.info(f"atml: removed {removed} temporary file(s) left by an interrupted write in {folder}")
        return run

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
        return read_mapping(self.dir / "config.yaml", "this run cannot be resumed; start a new one")

    @property
    def env(self) -> dict:
        return read_mapping(self.dir / "env.json", "this run cannot be resumed; start a new one")

    # --- results ------------------------------------------------------------------------
    @property
    def metrics(self) -> dict:
        path = self.dir / "metrics.json"
        if not path.is_file():
            return {}
        return read_mapping(path, "delete it and resume to recompute every part")

    def record_metrics(self, part: str, values: dict) -> None:
        """The part's numbers into metrics.json; a NaN or infinity (no JSON number) is recorded as
        null, with a warning naming where."""
        values, non_finite = finite(values, part)
        if non_finite:
            log.warning(f"atml: {part}: not finite, recorded as null: {shorten(', '.join(non_finite), 300)}")
        payload = json.dumps(self.metrics | {part: values}, indent=2, allow_nan=False)
        atomic_write_text(self.dir / "metrics.json", payload)

    def write_history(self, name: str, rows: Iterable[dict]) -> None:
        rows = list(rows)
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.dir / "history" / f"{name}.csv", buffer.getvalue())

    def log_epoch(self, training: str, row: dict) -> None:
        """A training's epoch row, as it happens, to whoever follows the run live (--tracker)."""
        for listener in self.epoch_listeners:
            listener(training, row)

    def write_figure(self, name: str, png: bytes) -> None:
        atomic_write_bytes(self.dir / "plots" / f"{name}.png", png)

    def write_sample(self, name: str, png: bytes) -> None:
        atomic_write_bytes(self.dir / "samples" / f"{name}.png", png)

    def size(self) -> int:
        """Bytes the run folder holds."""
        return sum(f.stat().st_size for f in self.dir.rglob("*") if f.is_file())

    # --- checkpoints --------------------------------------------------------------------
    def drop_checkpoints(self, keep: Iterable[str] = ()) -> int:
        """Delete the training checkpoints (they serve --resume alone) but those whose key matches a
        pattern of `keep`; the bytes freed."""
        keep = tuple(keep)
        freed = 0
        for path in (self.dir / "checkpoints").glob("*.pt"):
            key = path.name.removesuffix(".pt").removesuffix(".previous")
            if not any(fnmatch.fnmatchcase(key, pattern) for pattern in keep):
                freed += path.stat().st_size
                path.unlink()
        return freed

    def checkpoint_path(self, key: str, previous: bool = False) -> Path:
        return self.dir / "checkpoints" / (f"{key}.previous.pt" if previous else f"{key}.pt")

    def keep_previous_checkpoint(self, key: str) -> None:
        """Move checkpoint `key` aside (KEY.previous.pt) before a new one is written: a stack of
        runs keeps each run's previous epoch until every run has its new one."""
        path = self.checkpoint_path(key)
        if path.is_file():
            os.replace(path, self.checkpoint_path(key, previous=True))

    def drop_previous_checkpoint(self, key: str) -> None:
        self.checkpoint_path(key, previous=True).unlink(missing_ok=True)

    def restore_previous_checkpoint(self, key: str) -> None:
        """Make the checkpoint kept aside the current one again (a stack resumes from it)."""
        os.replace(self.checkpoint_path(key, previous=True), self.checkpoint_path(key))

    @cached_property
    def identity(self) -> dict:
        """What ties a checkpoint to this run: its id (env.json) and its resolved config's hash."""
        return {"run_id": self.env.get("run_id"), "config_sha256": config_sha256(self.config)}

    # torch is imported by the two methods below, not at the top: commands that never train read
    # run folders too, and answer without it
    def save_checkpoint(self, key: str, state: dict) -> None:
        import torch

        buffer = io.BytesIO()
        identity = {**self.identity, "checkpoint": key, "folder": str(self.dir)}
        torch.save({**state, "identity": identity}, buffer)
        atomic_write_bytes(self.checkpoint_path(key), buffer.getvalue())

    def load_checkpoint(self, key: str, previous: bool = False) -> dict | None:
        """The checkpoint `key` of this run (or the one kept aside, `previous`), or None; a damaged
        one, or one another run or config wrote, is a DamagedFileError naming the file."""
        from atml.runtime import load_tensors

        path = self.checkpoint_path(key, previous)
        if not path.is_file():
            return None
        try:
            saved = load_tensors(path)
        except Exception as exc:  # torch raises EOFError, RuntimeError or UnpicklingError by damage
            raise self.damaged_checkpoint(key, exc, previous) from None
        problem = self._foreign(key, saved)
        if problem:
            raise DamagedFileError(
                f"checkpoint {path} {problem}: resuming from it would give another run's numbers; "
                "delete it to redo that training from its start, then resume"
            )
        return saved

    def _foreign(self, key: str, saved: object) -> str | None:
        """Why a checkpoint is not this run's, or None. A run made before checkpoints recorded
        their run (no run_id in env.json) accepts one that records none."""
        mine = self.identity
        theirs = saved.get("identity") if isinstance(saved, dict) else None
        if not isinstance(theirs, dict):
            return None if mine["run_id"] is None else "records no run (it was not written by this run)"
        if theirs.get("run_id") != mine["run_id"]:
            return f"was written by another run ({shorten(str(theirs.get('folder')), 200)})"
        if theirs.get("config_sha256") != mine["config_sha256"]:
            return "was written under another config than this folder's config.yaml"
        if theirs.get("checkpoint") != key:
            return f"holds the training '{shorten(str(theirs.get('checkpoint')), 60)}', not '{key}'"
        return None

    def damaged_checkpoint(self, key: str, exc: BaseException, previous: bool = False) -> DamagedFileError:
        reason = first_line(exc)
        return DamagedFileError(
            f"checkpoint {self.checkpoint_path(key, previous)} is damaged or not atml's ({reason[:200]}); "
            "delete it to redo that training from its start, then resume"
        )


class FollowerRun(Run):
    """A data-parallel rank other than 0: it reads rank 0's run folder (checkpoints to resume
    from, parts already complete) and writes nothing there."""

    def write_env(self, env: dict) -> None:
        pass

    def record_metrics(self, part: str, values: dict) -> None:
        pass

    def write_history(self, name: str, rows: Iterable[dict]) -> None:
        pass

    def write_figure(self, name: str, png: bytes) -> None:
        pass

    def write_sample(self, name: str, png: bytes) -> None:
        pass

    def save_checkpoint(self, key: str, state: dict) -> None:
        pass

    def drop_checkpoints(self, keep: Iterable[str] = ()) -> int:
        return 0

    def size(self) -> int:
        return 0

    def keep_previous_checkpoint(self, key: str) -> None:
        pass

    def drop_previous_checkpoint(self, key: str) -> None:
        pass

    def restore_previous_checkpoint(self, key: str) -> None:
        pass
