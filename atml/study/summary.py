"""A study's summary: per cell, mean ± sample std over its seeds of every headline (jobs that did
not finish named), in summary.json / summary.md, and a figure of each headline against each swept
numeric key (error bars over seeds, one line per value of the other axes)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

from atml import experiments
from atml.records import read_mapping
from atml.runs import atomic_write_bytes, atomic_write_text
from atml.seed_summary import aggregate
from atml.study.record import Study
from atml.tables import markdown_table


def _metrics(run: str) -> dict | None:
    path = Path(run) / "metrics.json"
    try:
        return read_mapping(path, "") if path.is_file() else None
    except Exception:  # noqa: BLE001 — a damaged run is named by its job's state, not here
        return None


def cell_numbers(study: Study, cell: int) -> dict[str, dict]:
    """{headline label: {path, mean, std, n, values}} over the cell's finished seeds."""
    exp = experiments.get(study.experiment)
    per_seed = {}
    for job in study.cell_jobs(cell):
        if job.state == "done":
            for seed, run in zip(job.seeds, job.runs):
                metrics = _metrics(run)
                if metrics is not None:
                    per_seed[seed] = metrics
    numbers = aggregate(per_seed)
    out = {}
    for headline in exp.headlines:
        for metrics in per_seed.values():
            keys = headline.find(metrics)
            if keys is not None and ".".join(keys) in numbers:
                out[headline.label] = {"path": ".".join(keys), **numbers[".".join(keys)]}
                break
    return out


def _shown(number: dict | None) -> str:
    if number is None:
        return "—"
    return f"{number['mean']:.4g} ± {number['std']:.2g} (n={number['n']})"


def table_rows(cells: list[dict]) -> list[dict]:
    """summary.json's cells as table rows: the swept values, each headline, the jobs done."""
    labels = list(dict.fromkeys(label for c in cells for label in c["numbers"]))
    short = _short_names(list(cells[0]["assignments"])) if cells else {}
    return [
        {
            **{short[key]: json.dumps(value) for key, value in c["assignments"].items()},
            **{label: _shown(c["numbers"].get(label)) for label in labels},
            "jobs done": f"{sum(s == 'done' for s in c['states'].values())}/{len(c['states'])}",
        }
        for c in cells
    ]


def write(folder: Path, study: Study) -> None:
    folder = Path(folder)
    cells = []
    for index, assignments in enumerate(study.cells):
        jobs = study.cell_jobs(index)
        cells.append(
            {
                "cell": index,
                "assignments": assignments,
                "states": {j.name: j.state for j in jobs},
                "not_done": [
                    {"job": j.name, "state": j.state, "exit_code": j.exit_code, "reason": j.reason}
                    for j in jobs
                    if j.state != "done"
                ],
                "numbers": cell_numbers(study, index),
            }
        )
    labels = list(dict.fromkeys(label for c in cells for label in c["numbers"]))
    atomic_write_text(
        folder / "summary.json",
        json.dumps({"experiment": study.experiment, "axes": study.axes, "cells": cells}, indent=2),
    )
    rows = table_rows(cells)
    figures = _figures(folder, study, cells, labels)
    lines = [
        f"# Study of {study.experiment}: {' × '.join(f'{k} ({len(v)})' for k, v in study.axes.items())}",
        "",
        f"`{' '.join(study.command)}` — {study.created}, commit {study.git_commit}. "
        "Each number: mean ± sample std over the cell's finished seeds (n).",
        "",
        *markdown_table(rows),
        "",
    ]
    for c in cells:
        for job in c["not_done"]:
            why = f" — {job['reason']}" if job["reason"] else ""
            lines.append(f"- NOT DONE: {job['job']}: {job['state']}{why}")
    lines += ["", *(f"![{f.stem}](plots/{f.name})" for f in figures)]
    atomic_write_text(folder / "summary.md", "\n".join(lines) + "\n")


def _numeric(values: list) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _figures(folder: Path, study: Study, cells: list[dict], labels: list[str]) -> list[Path]:
    """A headline against each swept numeric key; one line per combination of the other axes."""
    numeric = [k for k, v in study.axes.items() if _numeric(v) and len(v) > 1]
    if not numeric or not labels:
        return []
    from atml.plots import errorbar_lines

    short = _short_names(list(study.axes))
    paths = []
    for key, label in itertools.product(numeric, labels):
        others = [k for k in study.axes if k != key]
        series: dict[str, list[tuple[float, float, float]]] = {}
        for c in cells:
            number = c["numbers"].get(label)
            if number is None:
                continue
            name = ", ".join(f"{short[k]}={c['assignments'][k]}" for k in others) or label
            series.setdefault(name, []).append((c["assignments"][key], number["mean"], number["std"]))
        if not series:
            continue
        slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{label}_vs_{short[key]}").strip("_")[:100]
        png = errorbar_lines(
            series, xlabel=short[key], ylabel=label,
            title=f"{study.experiment}: {label} against {key} (mean ± std over seeds)",
        )  # fmt: skip
        paths.append(folder / "plots" / f"{slug}.png")
        atomic_write_bytes(paths[-1], png)
    return paths


def _short_names(keys: list[str]) -> dict[str, str]:
    """Each swept key's last part (lr_d for parts.vanishing.pathology.train.lr_d) for axes and
    legends, the whole key where two would read alike; titles keep the whole key."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: name if last.count(name) == 1 else k for k, name in zip(keys, last)}
