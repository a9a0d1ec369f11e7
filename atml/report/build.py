"""The report's sections: per experiment, its headline numbers beside the original report's, its
summary table, key figures, config and environment; and the comparison of two runs."""

from __future__ import annotations

import re
from datetime import datetime

import yaml

from atml import experiments
from atml.report.document import Block, Code, Figure, FigureRow, Heading, Paragraph, Table
from atml.report.sources import Source
from atml.seed_summary import numeric_leaves

MAX_FIGURES = 6


def _title(experiment: str) -> str:
    return re.sub(r"^Experiment \d+:\s*", "", experiments.get(experiment).title).rstrip(".")


def _figures(source: Source) -> list[Figure]:
    """The experiment's key figures that this run drew (else its first few), in that order."""
    drawn = {p.stem: p for p in sorted(source.plots.glob("*.png"))} if source.plots.is_dir() else {}
    key = [name for name in experiments.get(source.experiment).key_figures if name in drawn]
    chosen = key or list(drawn)[:MAX_FIGURES]
    return [Figure(drawn[name], f"{source.experiment}: {name}") for name in chosen]


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


def headline_rows(source: Source) -> list[dict]:
    marks = " · ".join(tag for tag, _ in source.marks()) or "—"
    rows = []
    exp = experiments.get(source.experiment)
    for h in exp.headlines:
        if not set(exp.parts_matching(h.path[0])) & set(source.parts):
            continue  # a part this run did not include
        value = source.value(h)
        if value is None:
            reason = h.skip_reason(source.metrics)
            value = f"skipped: {reason}" if reason else "UNRESOLVED: no number at " + " → ".join(h.path)
        rows.append({"figure": h.label, "atml": value, "original": h.original, "caveats": marks})
    return rows


def experiment_section(number: int, source: Source) -> list[Block]:
    seeds = source.seeds
    blocks: list[Block] = [Heading(f"{number}. {source.experiment} — {_title(source.experiment)}")]
    what = (
        f"seed summary over seeds {', '.join(map(str, seeds))} (n = {len(seeds)})"
        if source.is_summary
        else f"one run, seed {seeds[0]}"
    )
    blocks.append(
        Paragraph(
            f"Source: {source.folder} — {what}; commit {source.env.get('git_commit')}; "
            f"{source.env.get('created')}; "
            f"{source.env.get('device_name') or source.env.get('device', '')}."
        )
    )
    marks = source.marks()
    if marks:
        blocks.append(
            Paragraph(
                "Every number below comes from " + "; ".join(long for _, long in marks) + ".", warning=True
            )
        )
    headlines = headline_rows(source)
    if headlines:
        blocks += [Heading("Beside the original report", 3), Table(headlines)]
    blocks += [
        Heading("Summary" + (" (mean ± sample std over seeds)" if source.is_summary else ""), 3),
        Table(source.rows),
    ]
    figures = _figures(source)
    if figures:
        blocks.append(Heading("Figures" + (f" (seed {seeds[0]})" if source.is_summary else ""), 3))
        blocks += figures
    blocks += [
        Code("config (resolved)", yaml.safe_dump(source.config, sort_keys=False, allow_unicode=True)),
        Code("environment", _environment(source)),
    ]
    return blocks


def study_report(
    entries: dict[str, Source | str], unreadable: list[str], explicit: bool
) -> tuple[list[Block], list[str]]:
    """The whole report, experiments in the order of TASKS; `entries` maps an experiment to its
    Source or to the reason its folder cannot be read, `unreadable` lists folders that name no
    experiment. Returns the blocks and the problems met, which the report names too. Without
    `explicit` folders, an experiment with no entry is listed as not run yet."""
    blocks: list[Block] = [
        Heading("atml report", 1),
        Paragraph(
            f"Written {datetime.now().isoformat(timespec='seconds')}. Marks: "
            "'smoke' (tiny data and epochs), 'random weights' (no pretrained weights), 'stand-in data' (not "
            "the "
            "original's dataset, split or resolution), '1 seed' (no spread measured); a number without a "
            "mark "
            "comes from the original's setting over several seeds."
        ),
    ]
    problems = []
    for number, experiment in enumerate(experiments.EXPERIMENTS, 1):
        entry = entries.get(experiment)
        if isinstance(entry, Source):
            blocks += experiment_section(number, entry)
        elif entry is not None:
            problems.append(entry)
            blocks += [
                Heading(f"{number}. {experiment} — {_title(experiment)}"),
                Paragraph(f"BROKEN run folder: {entry}", warning=True),
            ]
        elif not explicit:
            blocks += [
                Heading(f"{number}. {experiment} — {_title(experiment)}"),
                Paragraph("Not run yet: no run folder.", warning=True),
            ]
    for reason in unreadable:
        problems.append(reason)
        blocks.append(Paragraph(f"BROKEN run folder: {reason}", warning=True))
    return blocks, problems


def _flat_config(config: dict) -> dict[str, str]:
    def walk(tree, prefix):
        if isinstance(tree, dict) and tree:
            for k, v in tree.items():
                yield from walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            yield prefix, yaml.safe_dump(tree, default_flow_style=True).strip().removesuffix("...").strip()

    return dict(walk(config, ""))


def compare_report(a: Source, b: Source) -> list[Block]:
    """Two runs side by side: the config keys that differ first, then numbers, then figures."""
    names = (f"A: {a.folder}", f"B: {b.folder}")
    blocks: list[Block] = [
        Heading("atml comparison", 1),
        Paragraph(f"{names[0]} ({a.experiment}) vs {names[1]} ({b.experiment})"),
    ]
    ca, cb = _flat_config(a.config), _flat_config(b.config)
    differ = [
        {"config key": k, "A": ca.get(k, "(absent)"), "B": cb.get(k, "(absent)")}
        for k in dict.fromkeys([*ca, *cb])
        if ca.get(k) != cb.get(k)
    ]
    blocks += [
        Heading("Config keys that differ", 2),
        Table(differ) if differ else Paragraph("none: the same config"),
    ]
    for side, source in zip("AB", (a, b)):
        marks = source.marks()
        if marks:
            blocks.append(Paragraph(f"{side}: " + "; ".join(long for _, long in marks), warning=True))
    ha = {r["figure"]: r for r in headline_rows(a)}
    hb = {r["figure"]: r for r in headline_rows(b)}
    rows = [
        {
            "figure": k,
            "A": ha.get(k, {}).get("atml", "—"),
            "B": hb.get(k, {}).get("atml", "—"),
            "original": (ha.get(k) or hb.get(k))["original"],
        }
        for k in dict.fromkeys([*ha, *hb])
    ]
    if rows:
        blocks += [Heading("Headline numbers", 2), Table(rows)]
    la, lb = numeric_leaves(a.metrics), numeric_leaves(b.metrics)
    changed = [
        {"metric": k, "A": f"{la[k]:.4g}" if k in la else "—", "B": f"{lb[k]:.4g}" if k in lb else "—"}
        for k in dict.fromkeys([*la, *lb])
        if la.get(k) != lb.get(k)
    ]
    blocks += [Heading("Every number that differs", 2), Table(changed) if changed else Paragraph("none")]
    fa, fb = {f.path.stem: f for f in _figures(a)}, {f.path.stem: f for f in _figures(b)}
    shared = [name for name in fa if name in fb]
    if shared:
        blocks.append(Heading("Figures (A left, B right)", 2))
        blocks += [FigureRow([Figure(fa[n].path, f"A: {n}"), Figure(fb[n].path, f"B: {n}")]) for n in shared]
    return blocks
