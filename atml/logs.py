"""Where atml's messages go: progress and results through the `atml` logger to stdout, warnings
and errors to stderr, as plain lines. `-q` keeps warnings and errors, `-v` adds debug lines;
ranks other than 0 under torchrun keep errors only; chatty libraries are quieted by name."""

from __future__ import annotations

import logging
import sys
import time

# Below ERROR, these libraries' records are dropped, whether they log under their own name or,
# as open_clip does ("No pretrained weights loaded … initialized randomly" for weights: none),
# through the root logger from their own files.
QUIETED = (
    "open_clip",
    "timm",
    "huggingface_hub",
    "matplotlib",
    "PIL",
    "numba",
    "umap",
    "urllib3",
    "filelock",
)


class _Split(logging.Handler):
    """INFO and below to stdout, WARNING and above to stderr (read at emit time, so pytest's
    capture and redirections see them)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        try:
            if _bars:  # above the live bars, which tqdm redraws below the line
                from tqdm import tqdm

                tqdm.write(self.format(record), file=stream)
            else:
                stream.write(self.format(record) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing left to tell


class _Quieted(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        path = record.pathname.replace("\\", "/")
        return record.name.split(".")[0] not in QUIETED and not any(f"/{n}/" in path for n in QUIETED)


def setup(verbosity: int = 0, main_rank: bool = True) -> None:
    """verbosity: -1 quiet, 0 normal, 1 verbose."""
    level = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}[max(-1, min(1, verbosity))]
    logger = logging.getLogger("atml")
    logger.handlers[:] = [_handler()]
    logger.propagate = False
    logger.setLevel(level if main_rank else logging.ERROR)
    root = logging.getLogger()
    root.handlers[:] = [_handler()]
    root.setLevel(logging.WARNING if main_rank else logging.ERROR)


def _handler() -> logging.Handler:
    handler = _Split()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_Quieted())
    return handler


def get(name: str = "atml") -> logging.Logger:
    return logging.getLogger(name if name == "atml" or name.startswith("atml.") else f"atml.{name}")


_bars: list = []  # the live bars on the terminal, outermost first


def _open_bar(label: str, total: int, unit: str, initial: int = 0):
    """A tqdm bar on the next line below the bars already open; it clears itself when closed."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=initial, desc=f"  {label}", unit=unit, leave=False, file=sys.stdout,
               position=len(_bars))  # fmt: skip
    _bars.append(bar)
    return bar


def _close_bar(bar) -> None:
    bar.close()
    if bar in _bars:
        _bars.remove(bar)


def open_bars() -> int:
    return len(_bars)


def close_bars(keep: int = 0) -> None:
    """The live bars but the `keep` outermost cleared (work that ends by an error leaves none of
    its own behind)."""
    for bar in reversed(_bars[keep:]):
        _close_bar(bar)


class Level:
    """One level of a long piece of work (a study's jobs, a run's parts, a training's epochs) as a
    live bar with rate and ETA, on a terminal only (a log file has the level's own lines), nested
    below the levels open around it; the batch counter of an epoch (Counter) sits innermost."""

    def __init__(self, label: str, total: int, unit: str, done: int = 0):
        live = sys.stdout.isatty() and logging.getLogger("atml").isEnabledFor(logging.INFO)
        self.bar = _open_bar(label, total, unit, done) if live else None

    def advance(self, note: str = "") -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            _close_bar(self.bar)
            self.bar = None

    def __enter__(self) -> Level:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Counter:
    """Progress through `total` items of one pass: on a terminal a live tqdm bar (rate, ETA) that
    clears itself when the pass ends; in a log file (or a pipe) a line every 30 s and, with
    `shares`, at about every 10 % of the pass too, so a redirected long pass still says where it
    is. The last item always gets a line there."""

    def __init__(self, label: str, total: int, unit: str = "", shares: bool = True, every_s: float = 30.0):
        self.label, self.total, self.unit, self.every_s = label, max(total, 1), unit, every_s
        self.shares = shares
        self.live = sys.stdout.isatty()
        self.started = self.last_line = time.perf_counter()
        self.next_share = 0.1
        self.log = logging.getLogger("atml")
        self.bar = None

    def close(self) -> None:
        """Clear the live bar (a line printed next starts at the line's start)."""
        if self.bar is not None:
            _close_bar(self.bar)
            self.bar = None

    def update(self, done: int, extra: str = "") -> None:
        if not self.log.isEnabledFor(logging.INFO):
            return
        now = time.perf_counter()
        text = f"  {self.label}: {done}/{self.total}{self.unit}{extra}"
        if self.live:
            if self.bar is None:
                self.bar = _open_bar(self.label, self.total, self.unit.strip() or "it")
            self.bar.set_postfix_str(extra.strip(" ,;"), refresh=False)
            self.bar.update(done - self.bar.n)
            if done >= self.total:
                self.close()
            return
        at_share = self.shares and done / self.total >= self.next_share
        if done >= self.total or at_share or now - self.last_line >= self.every_s:
            self.log.info(text)
            self.last_line = now
            while self.next_share <= done / self.total:
                self.next_share += 0.1
