"""A report as a list of blocks, rendered to Markdown (figures linked) or to one HTML file
(figures embedded as base64, so it opens anywhere without its run folders)."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from atml.tables import markdown_table, number


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str
    warning: bool = False


@dataclass
class Table:
    rows: list[dict]


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class FigureRow:
    """Figures side by side (a comparison)."""

    figures: list[Figure] = field(default_factory=list)


@dataclass
class Code:
    summary: str
    text: str


@dataclass
class Collapsed:
    """A table shown under a line that opens it (HTML and GitHub's Markdown: <details>)."""

    summary: str
    rows: list[dict]


@dataclass
class Contents:
    """A table of contents: a link to every heading of `level` in the document."""

    level: int = 2


Block = Heading | Paragraph | Table | Figure | FigureRow | Code | Collapsed | Contents


def anchor(text: str) -> str:
    """The heading's anchor, as GitHub and mkdocs slug it (lower case, punctuation dropped,
    spaces to hyphens)."""
    kept = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return kept.strip().replace(" ", "-")


def _contents(blocks: list[Block], level: int) -> list[str]:
    return [b.text for b in blocks if isinstance(b, Heading) and b.level == level]


def _text(value) -> str:
    return number(value) if isinstance(value, float) else str(value)


def to_markdown(blocks: list[Block], folder: Path) -> str:
    """Markdown with figures linked relative to `folder`, where the file is written."""

    def link(figure: Figure) -> str:
        relative = Path(os.path.relpath(figure.path.resolve(), folder.resolve())).as_posix()
        return f"![{figure.caption}]({relative})"

    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [("**" + block.text + "**") if block.warning else block.text, ""]
        elif isinstance(block, Table):
            lines += [*markdown_table(block.rows), ""]
        elif isinstance(block, Figure):
            lines += [link(block), f"*{block.caption}*", ""]
        elif isinstance(block, FigureRow):
            lines += [
                " ".join(link(f) for f in block.figures),
                " · ".join(f"*{f.caption}*" for f in block.figures),
                "",
            ]
        elif isinstance(block, Contents):
            lines += [f"- [{text}](#{anchor(text)})" for text in _contents(blocks, block.level)] + [""]
        elif isinstance(block, Collapsed):
            lines += [
                f"<details><summary>{block.summary}</summary>",
                "",
                *markdown_table(block.rows),
                "",
                "</details>",
                "",
            ]
        elif isinstance(block, Code):
            lines += [
                f"<details><summary>{block.summary}</summary>",
                "",
                "```",
                block.text.rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
figure { margin: 0.8em 0 1.4em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.row { display: flex; gap: 1em; align-items: flex-start; }
.row figure { flex: 1; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _html_figure(figure: Figure) -> str:
    try:
        data = base64.b64encode(figure.path.read_bytes()).decode()
        image = f'<img src="data:image/png;base64,{data}" alt="{html.escape(figure.caption)}">'
    except OSError as exc:
        reason = html.escape(exc.strerror or str(exc))
        image = f"<p class='warning'>figure {html.escape(str(figure.path))} could not be read ({reason})</p>"
    return f"<figure>{image}<figcaption>{html.escape(figure.caption)}</figcaption></figure>"


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(blocks: list[Block], title: str) -> str:
    """One HTML file with every figure embedded."""
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    seen: dict[str, int] = {}
    for block in blocks:
        if isinstance(block, Heading):
            slug = anchor(block.text)
            seen[slug] = seen.get(slug, -1) + 1  # a repeated heading's id gets -1, -2, … as on GitHub
            unique = f"{slug}-{seen[slug]}" if seen[slug] else slug
            parts.append(f"<h{block.level} id='{unique}'>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Contents):
            links = "".join(
                f"<li><a href='#{anchor(text)}'>{html.escape(text)}</a></li>"
                for text in _contents(blocks, block.level)
            )
            parts.append(f"<nav><ul>{links}</ul></nav>")
        elif isinstance(block, Paragraph):
            css = " class='warning'" if block.warning else ""
            parts.append(f"<p{css}>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            parts.append(_html_table(block.rows))
        elif isinstance(block, Collapsed):
            parts.append(
                f"<details><summary>{html.escape(block.summary)}</summary>{_html_table(block.rows)}</details>"
            )
        elif isinstance(block, Figure):
            parts.append(_html_figure(block))
        elif isinstance(block, FigureRow):
            parts.append("<div class='row'>" + "".join(_html_figure(f) for f in block.figures) + "</div>")
        elif isinstance(block, Code):
            parts.append(
                f"<details><summary>{html.escape(block.summary)}</summary><pre>{html.escape(block.text)}</pre></details>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
