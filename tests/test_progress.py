"""Progress a person can read: on a terminal, a live bar per level (study jobs, a run's parts, a
training's epochs, an epoch's batches), nested, with log lines printed above them; in a log file
no bar at all."""

import io
import logging

from atml import logs


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_levels_nest_on_a_terminal_and_log_lines_go_above_them(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    logs.setup()
    with logs.Level("gan", 3, "part") as parts:
        epochs = logs.Level("gan/baseline", 5, "epoch")
        batches = logs.Counter("batch", 10, shares=False)
        batches.update(4)
        assert [abs(bar.pos) for bar in logs._bars] == [0, 1, 2]  # one line each, outermost first
        logging.getLogger("atml").info("an epoch's line")
        epochs.advance()
        parts.advance("baseline")
        logs.close_bars(keep=1)  # what a run ending by an error leaves: only the levels around it
        assert logs.open_bars() == 1 and epochs.bar is not None
        epochs.close()  # closing a level cleared with the others is harmless
    assert logs.open_bars() == 0
    shown = terminal.getvalue()
    assert "an epoch's line\n" in shown and "part/s" in shown and "epoch/s" in shown and "it/s" in shown


def test_a_log_file_gets_no_bar(monkeypatch):
    piped = io.StringIO()
    monkeypatch.setattr("sys.stdout", piped)
    logs.setup()
    with logs.Level("gan", 3, "part") as parts:
        parts.advance("baseline")
        assert logs.open_bars() == 0
    logging.getLogger("atml").info("a line")
    assert piped.getvalue() == "a line\n"
