"""One process at a time in a run folder: `hold` takes an exclusive flock on RUN/.atml.lock for
the rest of the process (a second `atml run --resume` of the folder is refused while the first
runs). The kernel drops the lock when its process ends, however it ends, so a killed run leaves
no lock that blocks its resume; the file keeps who held it last, so a lock taken over from a
process that did not end cleanly is said. flock also holds across hosts on NFS (Linux emulates it
with POSIX locks); where a filesystem has no locks, a warning says the folder is unguarded."""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import socket
from datetime import datetime
from pathlib import Path

from atml.errors import UserError

log = logging.getLogger("atml")
LOCK_NAME = ".atml.lock"
_held: dict[Path, int] = {}  # folder → open descriptor holding its lock


class FolderBusyError(UserError):
    """Another live process runs in this run folder. Exit code 2: nothing was started."""


def _holder() -> str:
    since = datetime.now().isoformat(timespec="seconds")
    return f"process {os.getpid()} on {socket.gethostname()} since {since}"


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 500).decode(errors="replace").strip()


def hold(folder: Path) -> None:
    """Lock `folder` for this process until it ends (or `release`)."""
    folder = Path(folder).absolute()
    if folder in _held:
        return
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        log.warning(
            f"atml: could not create {folder / LOCK_NAME} ({exc.strerror}); nothing stops a "
            "second process from writing this run folder at the same time"
        )
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(fd) or "another process"
        os.close(fd)
        raise FolderBusyError(
            f"{folder} is in use by {holder} (atml running or resuming it); wait for it to end or stop "
            "it, then resume"
        ) from None
    except OSError as exc:
        os.close(fd)
        log.warning(
            f"atml: {folder} cannot be locked on this filesystem ({exc.strerror}); nothing "
            "stops a second process from writing it at the same time"
        )
        return
    previous = _read(fd)
    if previous:
        log.info(f"atml: {folder}: the lock of {previous} is stale (it ended without releasing it)")
    os.ftruncate(fd, 0)
    os.pwrite(fd, _holder().encode(), 0)
    _held[folder] = fd


def release(folder: Path) -> None:
    """Unlock `folder`, leaving its lock file empty (a clean end)."""
    fd = _held.pop(Path(folder).absolute(), None)
    if fd is not None:
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # a full or read-only disk: the lock still goes with the descriptor
        os.close(fd)


@atexit.register
def _release_all() -> None:
    for folder in list(_held):
        release(folder)
