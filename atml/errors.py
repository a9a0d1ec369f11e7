"""Errors a user can fix. The CLI prints their message as one line and exits with their code.

Exit codes: 2 bad input (flag, config key or value, output folder), 3 missing or damaged data,
weights or run files, 4 a NaN/inf loss, 5 the run folder could not be written (disk full),
130 interrupted (Ctrl-C or SIGTERM), 1 an error atml did not foresee (a bug: its traceback is
written to a file, never to the terminal).
"""

from __future__ import annotations

import difflib
import os
import tempfile
import traceback
from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """Bad input from the user: flag, config key or value. Exit code 2."""

    exit_code = 2


class DataNotFoundError(UserError):
    """A dataset or weight file is missing and cannot be downloaded."""

    exit_code = 3


class DataCorruptError(UserError):
    """A dataset file exists but is not what its format promises."""

    exit_code = 3


class DamagedFileError(UserError):
    """A file atml wrote earlier (checkpoint, metrics, config, env record) cannot be read back."""

    exit_code = 3


class OutputWriteError(UserError):
    """A file of the run folder could not be written (disk full, folder removed or read-only)."""

    exit_code = 5


class TrainingDivergedError(Exception):
    """A loss became NaN or infinite. Exit code 4; the run folder keeps its last good checkpoint."""

    exit_code = 4


class UnexpectedError(Exception):
    """An exception atml did not foresee, turned into one line pointing at its traceback file. Exit 1."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """What went wrong, in one line for a one-line message: the exception's first line, or its type."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


MESSAGE_LIMIT = 2000  # characters of one error line, whatever it quotes


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one of `choices` a mistyped `word` most likely meant, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str], prefix: str = "") -> str:
    """ " (did you mean 'PREFIX+X'?)" for the closest of `choices`, or ""."""
    match = closest(word, choices)
    return f" (did you mean '{prefix}{match}'?)" if match else ""


def shorten(text: str, limit: int = 200) -> str:
    """User input echoed in a message, cut to `limit` characters (a 200 MB value must not become a
    200 MB error line)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def unexpected(exc: BaseException, where: str, traceback_file: Path | None) -> UnexpectedError:
    """An exception atml did not foresee, as one line: what and where, its traceback written to
    `traceback_file` (a run folder's error.txt) or, before any run folder exists, a temporary file."""
    text = "".join(traceback.format_exception(exc))
    try:
        if traceback_file is None:
            fd, name = tempfile.mkstemp(prefix="atml-error-", suffix=".txt")
            os.close(fd)
            traceback_file = Path(name)
        traceback_file.write_text(text)
        pointer = f"traceback in {traceback_file}"
    except OSError:
        pointer = "its traceback could not be written"
    return UnexpectedError(
        f"{where} failed: {type(exc).__name__}: {shorten(first_line(exc))} (atml did not foresee this; "
        f"{pointer})"
    )
