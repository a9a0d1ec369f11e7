"""Every figure atml draws: one function per kind of figure, matplotlib's Agg backend, files only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from atml.runs import atomic_write_bytes  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9})


def _save(fig: plt.Figure, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def grid_array(images: torch.Tensor, nrow: int) -> np.ndarray:
    """Images in [0, 1], [N, C, H, W] → one H×W(×3) array with 2-pixel gaps."""
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def image_grid(images: torch.Tensor, path: Path, title: str, nrow: int = 5) -> Path:
    fig, ax = plt.subplots(figsize=(4, 4.3))
    ax.imshow(grid_array(images, nrow), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
    return _save(fig, path)


def image_grids(grids: dict[str, dict[str, torch.Tensor]], path: Path, title: str, nrow: int = 5) -> Path:
    """A table of image grids: one row per outer key, one column per inner key; each cell is
    sized to its grid so strips and squares both stay readable."""
    rows = list(grids)
    cols = list(dict.fromkeys(c for r in rows for c in grids[r]))
    arrays = {(r, c): grid_array(g, nrow) for r in rows for c, g in grids[r].items()}
    height, width = next(iter(arrays.values())).shape[:2]
    cell_w, cell_h = width / 60, height / 60 + 0.35
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(cell_w * len(cols), cell_h * len(rows) + 0.4), squeeze=False)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            ax.axis("off")
            if (r, c) in arrays:
                ax.imshow(arrays[r, c], cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{r}: {c}" if len(rows) > 1 else c, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


@dataclass
class Series:
    column: str
    label: str
    source: str = "steps"  # "steps" (logged every few steps) or "epochs" (one row per epoch)


@dataclass
class Panel:
    title: str
    series: Sequence[Series]
    ylabel: str = ""
    logy: bool = False
    secondary: Sequence[Series] = field(default_factory=tuple)  # drawn dashed on a right-hand axis
    secondary_label: str = ""
    hline: float | None = None


def _column(rows: list[dict], series: Series) -> tuple[np.ndarray, np.ndarray]:
    x_key = "epoch"
    rows = [r for r in rows if r.get(series.column) not in (None, "")]
    return np.array([float(r[x_key]) for r in rows]), np.array([float(r[series.column]) for r in rows])


def training_curves(runs: dict[str, dict[str, list[dict]]], panels: Sequence[Panel], path: Path, title: str) -> Path:
    """One column per run (e.g. pathology | mitigation), one row per panel; y shared along a row.
    `runs` maps a run's name to {"steps": rows, "epochs": rows}; x is the epoch."""
    names = list(runs)
    fig, axes = plt.subplots(len(panels), len(names), figsize=(4.6 * len(names), 2.6 * len(panels)), squeeze=False, sharey="row")
    for j, name in enumerate(names):
        for i, panel in enumerate(panels):
            ax = axes[i][j]
            for s in panel.series:
                x, y = _column(runs[name].get(s.source, []), s)
                if len(x):
                    ax.plot(x, y, label=s.label, marker="o" if s.source == "epochs" and len(x) < 30 else None, ms=3)
            if panel.hline is not None:
                ax.axhline(panel.hline, color="gray", ls=":", lw=1)
            if panel.logy:
                ax.set_yscale("log")
            if panel.secondary:
                twin = ax.twinx()
                top = 0.0
                for s in panel.secondary:
                    x, y = _column(runs[name].get(s.source, []), s)
                    twin.plot(x, y, ls="--", color="black", alpha=0.6, label=s.label)
                    top = max(top, float(y.max()) if len(y) else 0.0)
                twin.set_ylim(0, 1.05 * top if top > 0 else 1)
                twin.set_ylabel(panel.secondary_label)
                twin.legend(loc="center right", fontsize=7)
            ax.set_title(f"{name}: {panel.title}" if len(names) > 1 else panel.title)
            ax.set_ylabel(panel.ylabel)
            if i == len(panels) - 1:
                ax.set_xlabel("epoch")
            ax.tick_params(labelleft=True)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def grouped_bars(groups: dict[str, Sequence[float]], categories: Sequence[str], path: Path, title: str, ylabel: str) -> Path:
    """Bars per category, one colour per group (e.g. the class histogram of each run)."""
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.3 * len(categories) * max(1, len(groups)))), 3.4))
    width = 0.8 / max(len(groups), 1)
    positions = np.arange(len(categories))
    for k, (name, values) in enumerate(groups.items()):
        ax.bar(positions + (k - (len(groups) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(positions, categories, rotation=30 if max(map(len, categories)) > 3 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def scatter_maps(maps: dict[str, tuple[np.ndarray, np.ndarray]], classes: Sequence[str], path: Path, title: str) -> Path:
    """2-D maps side by side, points coloured by class; `maps` is {name: (xy [N, 2], labels [N])}."""
    fig, axes = plt.subplots(1, len(maps), figsize=(4.4 * len(maps), 4.4), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (name, (xy, labels)) in zip(axes[0], maps.items()):
        for c, class_name in enumerate(classes):
            mask = labels == c
            ax.scatter(xy[mask, 0], xy[mask, 1], s=4, color=cmap(c % 10), label=class_name, alpha=0.7)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title)
    return _save(fig, path)
