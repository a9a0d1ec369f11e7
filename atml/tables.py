"""Tables of rows (dicts; columns in order of first appearance): plain text for the terminal,
Markdown for summaries and reports."""

from __future__ import annotations


def number(value: float) -> str:
    """Every number atml shows in a table: 4 significant digits (1 not 1.000; 0.0003392)."""
    return f"{value:.4g}"


def _cell(value) -> str:
    return number(value) if isinstance(value, float) else str(value)


def text_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.rjust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _md_cell(value) -> str:
    return _cell(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict]) -> list[str]:
    """Markdown table lines, `|` escaped."""
    if not rows:
        return ["(no rows)"]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return [
        "| " + " | ".join(_md_cell(c) for c in columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(_md_cell(r.get(c, "")) for c in columns) + " |" for r in rows),
    ]
