"""`--tracker tensorboard`: a run's numbers, curves, figures and config also as TensorBoard event
files in its folder (`RUN/tensorboard`), written after each part from what the part recorded, so
the run folder stays the one source of truth. Needs the optional extra: pip install 'atml[tensorboard]'."""

from __future__ import annotations

import contextlib
import csv
import logging
import threading
from pathlib import Path

import numpy as np
import yaml

from atml.errors import OutputWriteError
from atml.seed_summary import numeric_leaves

log = logging.getLogger("atml")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


@contextlib.contextmanager
def _writing(folder: Path):
    """An OSError of TensorBoard's writer (a full disk) as atml's one-line write error (exit 5)."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or exc
        raise OutputWriteError(f"could not write TensorBoard events in {folder}: {reason}") from None


class TensorBoardTracker:
    def __init__(self, run_dir: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter  # its package checked by check_tracker

        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / "tensorboard"
        # TensorBoard's writer thread prints its OSError's traceback, then hands the error to the
        # next write, where _writing reports it: the printed copy is muted while the tracker lives
        self._previous_hook = threading.excepthook
        threading.excepthook = self._writer_thread_error
        try:
            with _writing(self.folder):
                self.writer = SummaryWriter(log_dir=str(self.folder))
                self.writer.add_text(
                    "config", "```\n" + yaml.safe_dump(config, sort_keys=False, allow_unicode=True) + "\n```"
                )
        except BaseException:
            threading.excepthook = self._previous_hook  # no tracker to close() it
            raise
        self.logged: set[Path] = set()

    def _writer_thread_error(self, args) -> None:
        if not issubclass(args.exc_type, OSError):
            self._previous_hook(args)

    def log_epoch(self, training: str, row: dict) -> None:
        """Epochs reach TensorBoard with their part, from the history CSVs (see _log_history)."""

    def log_part(self, part: str, metrics: dict) -> None:
        with _writing(self.folder):
            self._log_part(part, metrics)

    def _log_part(self, part: str, metrics: dict) -> None:
        """The part's numbers (step 0), then every history CSV and figure not logged before."""
        for path, value in numeric_leaves(metrics).items():
            self.writer.add_scalar(f"{part}/{path}", value, 0)
        for table in sorted((self.run_dir / "history").glob("*.csv")):
            if table not in self.logged:
                self._log_history(table)
        for figure in sorted((self.run_dir / "plots").glob("*.png")):
            if figure not in self.logged:
                from PIL import Image

                with Image.open(figure) as image:
                    self.writer.add_image(
                        f"plots/{figure.stem}", np.asarray(image.convert("RGB")), 0, dataformats="HWC"
                    )
                self.logged.add(figure)
        self.writer.flush()

    def _log_history(self, table: Path) -> None:
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
        step_column = next((c for c in ("step", "epoch", "iteration") if rows and c in rows[0]), None)
        for i, row in enumerate(rows):
            step = (
                int(float(row[step_column])) if step_column and _number(row[step_column]) is not None else i
            )
            for column, text in row.items():
                value = _number(text)
                if column != step_column and value is not None:
                    self.writer.add_scalar(f"history/{table.stem}/{column}", value, step)
        self.logged.add(table)

    def close(self, status: str = "FINISHED") -> None:
        """Flush and close; the last events failing to write is a warning (the run's own files hold them)."""
        try:
            self.writer.close()
        except OSError as exc:
            log.warning(f"atml: the last TensorBoard events were not written: {exc.strerror or exc}")
        finally:
            threading.excepthook = self._previous_hook
