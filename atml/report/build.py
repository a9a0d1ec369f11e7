"""The report's sections: per experiment, its headline numbers beside the original report's, its
summary table, key figures, config and environment; and the comparison of two runs."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import yaml

from atml import experiments, records
from atml.config import settings
from atml.report.document import (
    Block,
    Code,
    Collapsed,
    Contents,
    Figure,
    FigureRow,
    Heading,
    Paragraph,
    Table,
)
from atml.report.original import complete_config
from atml.report.sources import Skipped, Source
from atml.report.verdicts import RULE, Verdict, readout, verdict


def _title(experiment: str) -> str:
    return re.sub(r"^Experiment \d+:\s*", "", experiments.get(experiment).title).rstrip(".")


def _environment(source: Source) -> str:
    env = source.env
    keep = (
        "created",
        "git_commit",
        "experiment",
        "kind",
        "parts",
        "seed",
        "seeds",
        "smoke",
        "device",
        "device_name",
        "python",
        "platform",
        "packages",
        "command",
        "runs",
    )
    return yaml.safe_dump({k: env[k] for k in keep if k in env}, sort_keys=False, allow_unicode=True)


def headline_rows(columns: dict[str, Source], judged: bool = True) -> list[dict]:
    """One row per headline of the experiment: the original's number, then each column's (its
    marks in its heading) and, `judged`, how it compares with the original's (verdicts.RULE)."""
    sources = list(columns.values())
    exp = experiments.get(sources[0].experiment)
    rows = []
    for h in exp.headlines:
        parts = set(exp.parts_matching(h.path[0]))
        if not any(parts & set(s.parts) for s in sources):
            continue  # a part no run here included
        row = {"figure": h.label, "original": h.original}
        for name, source in columns.items():
            tags = [tag for tag, _ in source.marks()]
            row[f"{name} [{', '.join(tags)}]" if tags else name] = (
                _headline_value(source, h) if parts & set(source.parts) else "— (part not run)"
            )
            if judged:
                row[f"{name} vs original"] = _verdict(exp, source, h, tags).text
        rows.append(row)
    return rows


def _verdict(exp: experiments.Experiment, source: Source, h, tags: list[str]) -> Verdict:
    """How the column's number for headline `h` compares with the original's (none: part not run)."""
    ran = bool(set(exp.parts_matching(h.path[0])) & set(source.parts))
    return verdict(h.original, source.number(h) if ran else None, tags)


def verdict_sentences(columns: dict[str, Source]) -> list[str]:
    """Per column, a sentence read from its verdicts (not written by hand: it cannot go stale)."""
    exp = experiments.get(next(iter(columns.values())).experiment)
    said = []
    for name, source in columns.items():
        tags = [tag for tag, _ in source.marks()]
        sentence = readout(name, [(h.label, _verdict(exp, source, h, tags)) for h in exp.headlines])
        if sentence:
            said.append(sentence)
    return said


def _headline_value(source: Source, h) -> str:
    value = source.value(h)
    if value is None:
        reason = h.skip_reason(source.metrics)
        value = f"skipped: {reason}" if reason else "UNRESOLVED: no number at " + " → ".join(h.path)
    return value


def read_out(source: Source) -> list[str]:
    """The experiment's declared readings, filled from this run's numbers (a sentence whose numbers
    the run lacks is left out)."""

    def value_at(keys: tuple[str, ...]) -> float | None:
        number = source.number(experiments.Headline("", keys, ""))
        return None if number is None else number[0]

    exp = experiments.get(source.experiment)
    return [sentence for reading in exp.readings if (sentence := reading.fill(value_at))]


def _what(source: Source) -> str:
    seeds = source.seeds
    return (
        f"seed summary over seeds {', '.join(map(str, seeds))} (n = {len(seeds)})"
        if source.is_summary
        else f"one run, seed {seeds[0]}"
    )


def _labels(sources: list[Source]) -> list[str]:
    """Each source's column name; two folders of one kind (given explicitly) add their folder names."""
    kinds = [s.label for s in sources]
    return [f"{k} ({s.folder.name})" if kinds.count(k) > 1 else k for k, s in zip(kinds, sources)]


def experiment_section(number: int, sources: list[Source]) -> list[Block]:
    """An experiment's section; with several sources (the original preset's run and a run with
    atml's own settings), a column each beside the original's numbers."""
    experiment = sources[0].experiment
    blocks: list[Block] = [Heading(f"{number}. {experiment} — {_title(experiment)}")]
    for label, source in zip(_labels(sources), sources):
        blocks.append(
            Paragraph(
                f"{label}: {source.folder} — {_what(source)}; commit {source.env.get('git_commit')}; "
                f"{source.env.get('created')}; "
                f"{source.env.get('device_name') or source.env.get('device', '')}."
            )
        )
        marks = source.marks()
        if marks:
            blocks.append(
                Paragraph(
                    f"{label}: every number comes from " + "; ".join(long for _, long in marks) + ".",
                    warning=True,
                )
            )
        if source.differences:
            blocks.append(
                Collapsed(
                    f"{label}: settings that differ from --preset original ({len(source.differences)})",
                    [d.row() for d in source.differences],
                )
            )
    columns = dict(zip(_labels(sources), sources))
    headlines = headline_rows(columns)
    if headlines:
        blocks += [Heading("Beside the original report", 3), Table(headlines)]
        blocks += [Paragraph(sentence) for sentence in verdict_sentences(columns)]
    for label, source in zip(_labels(sources), sources):
        suffix = f" — {label}" if len(sources) > 1 else ""
        said = read_out(source)
        if said:
            means = "Means over its seeds. " if source.is_summary else ""
            blocks += [Heading("What the numbers say" + suffix, 3), Paragraph(means + " ".join(said))]
        blocks += [
            Heading("Summary" + (" (mean ± sample std over seeds)" if source.is_summary else "") + suffix, 3),
            Table(source.rows),
        ]
        figures = [Figure(path, experiments.get(experiment).caption(path.stem)) for path in source.figures]
        if figures:
            seed = f" (seed {source.seeds[0]})" if source.is_summary else ""
            blocks.append(Heading(f"Figures{seed}{suffix}", 3))
            blocks += figures
        blocks += [
            Paragraph(f"BROKEN figure: {path} is {why}", warning=True)
            for path, why in source.broken_figures.items()
        ]
        blocks += [
            Code(
                f"config (resolved){suffix}",
                yaml.safe_dump(source.config, sort_keys=False, allow_unicode=True),
            ),
            Code(f"environment{suffix}", _environment(source)),
        ]
    return blocks


def study_report(
    entries: dict[str, list[Source | Skipped]], unreadable: list[Skipped], explicit: bool
) -> tuple[list[Block], list[str]]:
    """The whole report, experiments in the order of TASKS; `entries` maps an experiment to its
    Sources and the folders passed over, `unreadable` lists folders that name no experiment.
    Returns the blocks and the problems met (broken folders and figures, gone seed folders), which
    the report names too. Without `explicit` folders, an experiment with no entry is listed as not
    run yet."""
    blocks: list[Block] = [
        Heading("atml report", 1),
        Paragraph(
            f"Written {datetime.now().isoformat(timespec='seconds')}. Columns: the original's number "
            "(its write-up, or 'notebook' where only a notebook printed it), then atml's: the latest "
            "complete run with --preset original and the latest with atml's own settings, where both "
            "exist. Marks: 'N settings differ' (that run's settings that differ from "
            "its configs/original.yaml, listed by key above the table), 'not compared' (no original "
            "preset yet), 'smoke' (tiny data and epochs), 'random weights' (no pretrained weights), "
            "'1 seed' (no spread measured), 'incomplete' (a run whose parts did not all finish). A "
            "number without a mark comes from the original's settings over several seeds."
        ),
        Paragraph(RULE),
        Contents(),
    ]
    problems = []
    for number, experiment in enumerate(experiments.EXPERIMENTS, 1):
        found = entries.get(experiment) or []
        readable = [e for e in found if isinstance(e, Source)]
        if readable:
            blocks += experiment_section(number, readable)
        elif found or not explicit:
            blocks.append(Heading(f"{number}. {experiment} — {_title(experiment)}"))
        if not found and not explicit:
            blocks.append(Paragraph("Not run yet: no run folder.", warning=True))
        for note in (e for e in found if isinstance(e, Skipped)):
            blocks.append(_passed_over(note))
            problems += [note.reason] if note.broken else []
        for source in readable:
            problems += [f"{path} is {why}" for path, why in source.broken_figures.items()]
            if source.missing_runs:
                reason = (
                    f"{source.folder}: seed folder(s) {', '.join(map(str, source.missing_runs))} are gone; "
                    "its mean ± std stand as summary.json recorded them, its figures are another seed's"
                )
                problems.append(reason)
                blocks.append(Paragraph(f"MISSING seed folders: {reason}", warning=True))
    for note in unreadable:
        blocks.append(_passed_over(note))
        problems.append(note.reason)
    return blocks, problems


def _passed_over(note: Skipped) -> Paragraph:
    return Paragraph(f"{'BROKEN run folder' if note.broken else 'NOT SHOWN'}: {note.reason}", warning=True)


def study_section(folder: Path) -> list[Block]:
    """A study folder's section: what was swept, its table (a number per cell, mean ± std over
    seeds), the jobs not done, and its figures of each headline against each swept key."""
    from atml.study import record, summary

    study = record.load(folder)
    cells = records.read_mapping(folder / "summary.json", "run `atml study resume` to write it")["cells"]
    axes = " × ".join(f"{key} ({len(values)} values)" for key, values in study.axes.items())
    blocks: list[Block] = [
        Heading(f"Study of {study.experiment}: {axes}", 2),
        Paragraph(
            f"{folder} — `{' '.join(study.command)}`; {study.created}; commit {study.git_commit}. "
            "Each number: mean ± sample std over the cell's finished seeds (n)."
        ),  # fmt: skip
        Table(summary.table_rows(cells)),
    ]
    blocks += [
        Paragraph(f"NOT DONE: {job['job']}: {job['state']} {job['reason']}", warning=True)
        for cell in cells
        for job in cell["not_done"]
    ]
    blocks += [Figure(path, path.stem.replace("_", " ")) for path in sorted((folder / "plots").glob("*.png"))]
    return blocks


def _flat_config(config: dict) -> dict[str, str]:
    return {
        key: yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        for key, value in settings(config).items()
    }


def compare_report(columns: dict[str, tuple[str, Source]], not_shown: list[str] = ()) -> list[Block]:
    """Runs, seed summaries and study cells side by side, one column each ({letter: (what it is,
    source)}): the config keys that differ first, then the headline numbers per experiment, every
    number that differs, and the figures all columns drew. `not_shown`: what was asked for and
    has no column, and why."""
    blocks: list[Block] = [Heading("atml comparison", 1)]
    blocks += [
        Paragraph(f"{name}: {what} ({s.experiment}, {_what(s)})") for name, (what, s) in columns.items()
    ]
    blocks += [Paragraph(f"NOT SHOWN: {why}", warning=True) for why in not_shown]
    sources = {name: source for name, (_, source) in columns.items()}
    flat = {name: _flat_config(complete_config(s.experiment, s.config)) for name, s in sources.items()}
    keys = dict.fromkeys(k for config in flat.values() for k in config)
    differ = [
        {"config key": k, **{name: config.get(k, "(absent)") for name, config in flat.items()}}
        for k in keys
        if len({config.get(k, "(absent)") for config in flat.values()}) > 1
    ]
    blocks += [
        Heading("Config keys that differ", 2),
        Table(differ) if differ else Paragraph("none: the same config"),
    ]
    for name, source in sources.items():
        marks = source.marks()
        if marks:
            blocks.append(Paragraph(f"{name}: " + "; ".join(long for _, long in marks), warning=True))
    for experiment in dict.fromkeys(s.experiment for s in sources.values()):
        same = {f"{n} ({s.label})": s for n, s in sources.items() if s.experiment == experiment}
        rows = headline_rows(same, judged=False)  # the columns side by side; the report judges them
        if rows:
            blocks += [Heading(f"Headline numbers: {experiment}", 2), Table(rows)]
    means = {name: s.means for name, s in sources.items()}
    changed = [
        {"number": k, **{name: f"{m[k]:.4g}" if k in m else "—" for name, m in means.items()}}
        for k in dict.fromkeys(k for m in means.values() for k in m)
        if len({m.get(k) for m in means.values()}) > 1
    ]
    blocks += [
        Heading("Every number that differs (a seed summary's: its mean)", 2),
        Table(changed) if changed else Paragraph("none"),
    ]
    figures = {name: {path.stem: path for path in s.figures} for name, s in sources.items()}
    shared = [stem for stem in next(iter(figures.values())) if all(stem in f for f in figures.values())]
    if shared:
        blocks.append(Heading(f"Figures (columns {', '.join(figures)}, left to right)", 2))
        kinds = {s.experiment for s in sources.values()}
        one = experiments.get(kinds.pop()) if len(kinds) == 1 else None  # else figures may share a name
        for stem in shared:
            blocks += [
                Paragraph(one.caption(stem) if one else stem),
                FigureRow([Figure(f[stem], f"{name}: {stem}") for name, f in figures.items()]),
            ]
    return blocks
