"""One config under several seeds: mean ± std (and n) of every number the runs recorded, kept in
a summary folder beside the runs, so a results table comes from several seeds, not one."""

from __future__ import annotations

import json
import math
from pathlib import Path

from atml.runs import Run, atomic_write_text
from atml.tables import markdown_table


def numeric_leaves(tree, prefix: str = "") -> dict[str, float]:
    """Every number in a metrics tree by its dotted path (list items by index; booleans skipped)."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return {prefix: float(tree)} if isinstance(tree, (int, float)) and not isinstance(tree, bool) else {}
    leaves: dict[str, float] = {}
    for key, value in items:
        leaves |= numeric_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    return leaves


def aggregate(per_seed: dict[int, dict]) -> dict[str, dict]:
    """{path: {mean, std, n, values}} over the seeds' metrics (sample std; 0 for one seed).
    A number missing or non-finite in some seed is aggregated over the others, and n says so."""
    leaves = {seed: numeric_leaves(metrics) for seed, metrics in per_seed.items()}
    paths = list(dict.fromkeys(p for values in leaves.values() for p in values))
    out = {}
    for path in paths:
        values = {seed: v[path] for seed, v in leaves.items() if path in v and math.isfinite(v[path])}
        if not values:
            continue
        mean, std = _mean_std(list(values.values()))
        out[path] = {"mean": mean, "std": std, "n": len(values), "values": values}
    return out


MAX_SEEDS = 100  # each seed is a whole run; more is a typo far more often than a plan
MAX_FORCED_SEEDS = 10_000  # even with --force: each seed holds a model and a folder


def parse_seeds(text: str, force: bool = False) -> list[int]:
    """`0,1,2` → those seeds; `3` → seeds 0, 1, 2. More than MAX_SEEDS only with `force`."""
    from atml.errors import UserError, shorten

    if "," in text and any(not item.strip() for item in text.split(",")):
        raise UserError(f"--seeds {shorten(text)}: an empty item; give a list such as 0,1,2")
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise UserError(f"--seeds expects a count (3) or a list (0,1,2), got '{shorten(text)}'") from None
    count = len(seeds) if "," in text else seeds[0] if len(seeds) == 1 else 0
    if "," not in text and count < 1:
        raise UserError(f"--seeds {shorten(text)}: a count must be at least 1")
    if count > MAX_SEEDS and not force:
        raise UserError(f"--seeds asks for {count:,} runs; at most {MAX_SEEDS} without --force")
    if count > MAX_FORCED_SEEDS:
        raise UserError(f"--seeds asks for {count:,} runs; at most {MAX_FORCED_SEEDS:,} even with --force")
    if "," not in text:
        seeds = list(range(count))
    if len(set(seeds)) != len(seeds) or any(not 0 <= s < 2**32 for s in seeds):
        raise UserError(f"--seeds {shorten(text)}: seeds must be distinct, from 0 to 2**32 - 1")
    return seeds


def _mean_std(xs: list[float]) -> tuple[float, float]:
    mean = sum(xs) / len(xs)
    return mean, (math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)


def summary_rows(rows_per_seed: dict[int, list[dict]]) -> list[dict]:
    """The experiment's own summary rows across seeds, cell by cell: numbers as mean ± std (n),
    cells equal in every seed (names) as they are, other text as each seed's value in turn."""
    tables = list(rows_per_seed.values())
    out = []
    for i, row in enumerate(tables[0]):
        merged = {}
        for column in row:
            cells = [rows[i].get(column) if i < len(rows) else None for rows in tables]
            if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cells):
                mean, std = _mean_std([float(c) for c in cells])
                merged[column] = f"{mean:.4g} ± {std:.2g} (n={len(cells)})"
            elif all(c == cells[0] for c in cells):
                merged[column] = cells[0]
            else:
                merged[column] = (
                    " | ".join(str(c) for c in cells) + f" (seeds {', '.join(map(str, rows_per_seed))})"
                )
        out.append(merged)
    return out


def write(
    out_root: Path, experiment: str, label: str, config: dict, runs: dict[int, Run], rows: list[dict]
) -> Run:
    """The summary folder: config.yaml (the shared config), env.json (seeds and run folders),
    summary.json (every number: mean, std, n, per-seed values) and summary.md (the table)."""
    first_env = next(iter(runs.values())).env
    folder = Run.create(
        out_root,
        experiment,
        f"{label}-seeds",
        config,
        env={
            "experiment": experiment,
            "kind": "seed-summary",
            "seeds": list(runs),
            "runs": {seed: str(run.dir) for seed, run in runs.items()},
            **{
                k: first_env[k]
                for k in ("smoke", "preset", "parts", "device", "device_name")
                if k in first_env
            },
        },
    )
    numbers = aggregate({seed: run.metrics for seed, run in runs.items()})
    atomic_write_text(
        folder.dir / "summary.json",
        json.dumps(
            {
                "seeds": list(runs),
                "runs": {s: str(r.dir) for s, r in runs.items()},
                "rows": rows,
                "numbers": numbers,
            },
            indent=2,
        ),
    )
    lines = [
        f"# {experiment}: {len(runs)} seeds ({', '.join(map(str, runs))})",
        "",
        *markdown_table(rows),
        "",
        "Every number (mean ± sample std over the seeds, n):",
        "",
        *markdown_table(
            [
                {"metric": path, "mean": f"{v['mean']:.6g}", "std": f"{v['std']:.3g}", "n": v["n"]}
                for path, v in numbers.items()
            ]
        ),
    ]
    atomic_write_text(folder.dir / "summary.md", "\n".join(lines) + "\n")
    return folder
