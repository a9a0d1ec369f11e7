"""Every figure atml draws: one function per kind of figure, matplotlib's Agg backend, files only."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9})


def _png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes, closed: a part returns them and the runner writes them."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def grid_array(images: torch.Tensor, nrow: int) -> np.ndarray:
    """Images in [0, 1], [N, C, H, W] → one H×W(×3) array with 2-pixel gaps."""
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def image_grid(images: torch.Tensor, title: str, nrow: int = 5) -> bytes:
    fig, ax = plt.subplots(figsize=(4, 4.3))
    ax.imshow(grid_array(images, nrow), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
    return _png(fig)


def image_grids(grids: dict[str, dict[str, torch.Tensor]], title: str, nrow: int = 5) -> bytes:
    """A table of image grids: one row per outer key, one column per inner key; each cell is
    sized to its grid so strips and squares both stay readable."""
    rows = list(grids)
    cols = list(dict.fromkeys(c for r in rows for c in grids[r]))
    arrays = {(r, c): grid_array(g, nrow) for r in rows for c, g in grids[r].items()}
    height, width = next(iter(arrays.values())).shape[:2]
    cell_w, cell_h = width / 60, height / 60 + 0.35
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(cell_w * len(cols), cell_h * len(rows) + 0.4), squeeze=False
    )
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            ax.axis("off")
            if (r, c) in arrays:
                ax.imshow(arrays[r, c], cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{r}: {c}" if len(rows) > 1 else c, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


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


def training_curves(runs: dict[str, dict[str, list[dict]]], panels: Sequence[Panel], title: str) -> bytes:
    """One column per run (e.g. pathology | mitigation), one row per panel, x the epoch (integer
    ticks). A row's panels share their y range when the runs' ranges are alike (within SHARED_SPAN×),
    else each keeps its own, so one run's loss of thousands does not flatten the others'. Legends
    sit right of the last column, outside the data. `runs`: a run's name → {"steps": rows,
    "epochs": rows}."""
    names = list(runs)
    fig, axes = plt.subplots(
        len(panels), len(names), figsize=(4.6 * len(names) + 1.6, 2.6 * len(panels)), squeeze=False
    )
    for j, name in enumerate(names):
        for i, panel in enumerate(panels):
            ax = axes[i][j]
            for s in panel.series:
                x, y = _column(runs[name].get(s.source, []), s)
                if len(x):
                    ax.plot(
                        x,
                        y,
                        label=s.label,
                        marker="o" if s.source == "epochs" and len(x) < 30 else None,
                        ms=3,
                    )
            if panel.hline is not None:
                ax.axhline(panel.hline, color="gray", ls=":", lw=1)
            if panel.logy:
                ax.set_yscale("log")
            handles, labels = ax.get_legend_handles_labels()
            if panel.secondary:
                twin = ax.twinx()
                top = 0.0
                for s in panel.secondary:
                    x, y = _column(runs[name].get(s.source, []), s)
                    twin.plot(x, y, ls="--", color="black", alpha=0.6, label=s.label)
                    top = max(top, float(y.max()) if len(y) else 0.0)
                twin.set_ylim(0, 1.05 * top if top > 0 else 1)
                twin.set_ylabel(panel.secondary_label)
                more_handles, more_labels = twin.get_legend_handles_labels()
                handles, labels = handles + more_handles, labels + more_labels
            ax.set_title(f"{name}: {panel.title}" if len(names) > 1 else panel.title)
            ax.set_ylabel(panel.ylabel)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
            if i == len(panels) - 1:
                ax.set_xlabel("epoch")
            if handles and j == len(names) - 1:
                right = 1.18 if panel.secondary else 1.02  # past the right-hand axis' labels
                ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(right, 1))
    for row in axes:
        _share_if_alike(row)
    fig.tight_layout()
    fig.suptitle(
        title, y=1.0 + 0.12 / len(panels)
    )  # above the first row's titles; savefig keeps it in the frame
    return _png(fig)


SHARED_SPAN = 5.0


def _legend_outside(ax: plt.Axes) -> None:
    """Right of the axes, where it covers no data."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def _share_if_alike(row: Sequence[plt.Axes]) -> None:
    """One y range for the row when its panels' spans are within SHARED_SPAN× of each other."""
    limits = [ax.get_ylim() for ax in row if ax.has_data()]
    if len(limits) < 2 or any(ax.get_yscale() == "log" for ax in row):
        return
    spans = [high - low for low, high in limits]
    if min(spans) > 0 and max(spans) / min(spans) <= SHARED_SPAN:
        for ax in row:
            ax.set_ylim(min(low for low, _ in limits), max(high for _, high in limits))


def grouped_bars(
    groups: dict[str, Sequence[float]], categories: Sequence[str], title: str, ylabel: str
) -> bytes:
    """Bars per category, one colour per group (e.g. the class histogram of each run)."""
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.3 * len(categories) * max(1, len(groups)))), 3.4))
    width = 0.8 / max(len(groups), 1)
    positions = np.arange(len(categories))
    for k, (name, values) in enumerate(groups.items()):
        ax.bar(positions + (k - (len(groups) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(positions, categories, rotation=30 if max(map(len, categories)) > 3 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_outside(ax)
    return _png(fig)


def _class_colours(n_classes: int):
    cmap = plt.get_cmap("tab10" if n_classes <= 10 else "tab20" if n_classes <= 20 else "gist_ncar")
    return [cmap(c % 20 if n_classes <= 20 else c / n_classes) for c in range(n_classes)]


def scatter_grid(
    maps: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], classes: Sequence[str], title: str
) -> bytes:
    """2-D maps in a grid (rows × columns of `maps`), points coloured by class; each cell is
    (xy [N, 2], labels [N]). A legend names the classes when there are at most 20; beyond that
    the colours only separate them (a legend of 100 names is unreadable)."""
    rows = list(maps)
    cols = list(dict.fromkeys(c for r in rows for c in maps[r]))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols), 4.2 * len(rows)), squeeze=False)
    colours = _class_colours(len(classes))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if c not in maps[r]:
                ax.axis("off")
                continue
            xy, labels = maps[r][c]
            for k, class_name in enumerate(classes):
                mask = labels == k
                ax.scatter(xy[mask, 0], xy[mask, 1], s=4, color=colours[k], label=class_name, alpha=0.7)
            ax.set_title(f"{r}: {c}" if len(rows) > 1 else c, fontsize=9)
    if len(classes) <= 20:
        axes[0][-1].legend(fontsize=7, markerscale=3, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        fig.text(0.5, -0.01, f"colours: {len(classes)} classes", ha="center", fontsize=8)
    fig.tight_layout()
    fig.suptitle(title, y=1.0 + 0.04 / len(rows))
    return _png(fig)


def scatter_maps(maps: dict[str, tuple[np.ndarray, np.ndarray]], classes: Sequence[str], title: str) -> bytes:
    """2-D maps side by side, points coloured by class; `maps` is {name: (xy [N, 2], labels [N])}."""
    return scatter_grid({"": maps}, classes, title)


def lines(
    series: dict[str, tuple[Sequence, Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
    bands: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> bytes:
    """One line per named (x, y) series, e.g. separability against depth or a number per block;
    `bands` shades a (low, high) interval around a series (a confidence interval, say)."""
    n_points = max(len(x) for x, _ in series.values())
    fig, ax = plt.subplots(figsize=(max(5.5, 0.2 * n_points), 3.6))
    for name, (x, y) in series.items():
        (line,) = ax.plot(list(x), list(y), marker="o", ms=3 if n_points > 12 else 6, label=name)
        if bands and name in bands:
            ax.fill_between(list(x), *bands[name], color=line.get_color(), alpha=0.2, linewidth=0)
    if n_points > 12:
        ax.tick_params(axis="x", labelrotation=90, labelsize=6)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_outside(ax)
    return _png(fig)


def errorbar_lines(
    series: dict[str, list[tuple[float, float, float]]], title: str, xlabel: str, ylabel: str
) -> bytes:
    """One line per named series of (x, mean, std) points, std as error bars; x on a log scale
    when it spans a decade or more (learning rates, β), ticked at the swept values; y on a log
    scale when every mean is positive and they span two decades (one line's fall is seen beside
    another's rise)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = [x for points in series.values() for x, _, _ in points]
    for name, points in series.items():
        x, mean, std = zip(*sorted(points))
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=name)
    if min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    means = [m for points in series.values() for _, m, _ in points]
    if min(means) > 0 and max(means) / min(means) >= 100:
        ax.set_yscale("log")
    ax.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(textwrap.fill(ylabel, 36), fontsize=9)
    ax.set_title(textwrap.fill(title, 70), fontsize=9)
    if len(series) > 1:
        _legend_outside(ax)
    return _png(fig)


def confusion_matrix(
    matrix: np.ndarray, classes: Sequence[str], title: str, pairs: Sequence[str] = ()
) -> bytes:
    """Row-normalised confusion matrix (rows: true class); class names shown up to 20 classes (with
    more, the index; the most-confused pairs, listed beside the matrix by name, say which is which)."""
    shares = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None)
    n = len(classes)
    side = max(4.4, 0.45 * min(n, 20) + 1.5)
    fig, (ax, notes) = plt.subplots(
        1, 2, figsize=(side + 4.5, side), gridspec_kw={"width_ratios": [side, 3.2]}
    )
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if n <= 20:
        ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
        for i in range(n):
            for j in range(n):
                if shares[i, j] >= 0.05:
                    ax.text(
                        j,
                        i,
                        f"{shares[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if shares[i, j] > 0.5 else "black",
                    )
    ax.set_xlabel("predicted" + ("" if n <= 20 else " (class index)"))
    ax.set_ylabel("true" + ("" if n <= 20 else " (class index)"))
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="share of the true class", fraction=0.046)
    ax.set_title(title)
    notes.axis("off")
    if pairs:
        notes.text(
            0,
            1,
            "most-confused pairs\n(share of the first's images taken\nfor the second →, and back ←)\n\n"
            + "\n".join(pairs),
            va="top",
            fontsize=8,
            family="monospace",
            transform=notes.transAxes,
        )
    return _png(fig)


def heatmaps(maps: dict[str, np.ndarray], title: str, label: str) -> bytes:
    """Each 2-D map as it is, cell by cell (nearest, no smoothing), with its own colour bar."""
    fig, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps), 3.4), squeeze=False)
    for ax, (name, values) in zip(axes[0], maps.items()):
        image = ax.imshow(values, cmap="hot", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, label=label, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def tradeoff(points: dict[str, tuple[float, float, str]], title: str, xlabel: str, ylabel: str) -> bytes:
    """One labelled point per setting (x, y, note): e.g. accuracy against wall time; x on a log scale
    because settings differ by orders of magnitude in cost."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (x, y, note) in points.items():
        ax.scatter([x], [y], s=60)
        ax.annotate(f"{name}\n{note}", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(x=0.3, y=0.25)
    return _png(fig)


def overlay_grid(
    rows: dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]],
    title: str,
    alpha: float = 0.5,
    colour: tuple[float, float, float] = (1.0, 0.0, 0.0),
    captions: dict[str, dict[str, str]] | None = None,
) -> bytes:
    """A table of images, one row per outer key and one column per inner key, each optionally
    overlaid with a heat map (H × W, non-negative) in semi-transparent `colour` (red by default):
    the colour's opacity is alpha × the map divided by its maximum within that cell. `captions`
    (same keys): a line of text under a cell."""
    names = list(rows)
    cols = list(dict.fromkeys(c for r in names for c in rows[r]))
    extra = 0.3 if captions else 0.0
    fig, axes = plt.subplots(
        len(names), len(cols), figsize=(2.3 * len(cols), (2.45 + extra) * len(names) + 0.5), squeeze=False
    )
    for i, r in enumerate(names):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            ax.axis("off")
            if c not in rows[r]:
                continue
            image, heat = rows[r][c]
            ax.imshow(image)
            if heat is not None:
                h = np.clip(
                    heat / max(float(heat.max()), 1e-12), 0, 1
                )  # by the maximum alone: near-uniform maps look uniform
                rgba = np.zeros((*h.shape, 4))
                rgba[..., :3] = colour
                rgba[..., 3] = alpha * h
                ax.imshow(rgba)
            ax.set_title(f"{r}: {c}" if j == 0 else c, fontsize=8)
            caption = (captions or {}).get(r, {}).get(c)
            if caption:
                ax.text(0.5, -0.03, caption, transform=ax.transAxes, ha="center", va="top", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def predictions(images: dict[str, np.ndarray], top: dict[str, list[tuple[str, float]]], title: str) -> bytes:
    """Each image beside a bar chart of its top-k classes and probabilities."""
    fig, axes = plt.subplots(
        len(images),
        2,
        figsize=(8.5, 2.6 * len(images) + 0.4),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 1.6]},
    )
    for (name, image), (ax_image, ax_bars) in zip(images.items(), axes):
        ax_image.imshow(image)
        ax_image.set_title(name, fontsize=9)
        ax_image.axis("off")
        labels = [label if len(label) <= 32 else label[:31] + "…" for label, _ in top[name]]
        ax_bars.barh(range(len(labels))[::-1], [p for _, p in top[name]], color="#4c72b0")
        ax_bars.set_yticks(range(len(labels))[::-1], labels, fontsize=8)
        ax_bars.set_xlim(0, 1)
        ax_bars.set_xlabel("probability")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


@dataclass
class ModalityMap:
    """A joint 2-D map of image and text embeddings: xy [N, 2], class labels [N], is_text [N]."""

    xy: np.ndarray
    labels: np.ndarray
    is_text: np.ndarray


def modality_maps(
    maps: dict[str, ModalityMap], classes: Sequence[str], title: str, columns: int | None = None
) -> bytes:
    """Joint maps, `columns` to a row (default: all in one): images as dots, texts as black-edged
    stars, both coloured by class."""
    columns = columns or len(maps)
    rows = -(-len(maps) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.4 * rows), squeeze=False)
    colours = _class_colours(len(classes))
    for ax in axes.flat[len(maps) :]:
        ax.axis("off")
    for ax, (name, m) in zip(axes.flat, maps.items()):
        for k, class_name in enumerate(classes):
            image, text = (m.labels == k) & ~m.is_text, (m.labels == k) & m.is_text
            ax.scatter(m.xy[image, 0], m.xy[image, 1], s=9, color=colours[k], alpha=0.7, label=class_name)
            ax.scatter(
                m.xy[text, 0],
                m.xy[text, 1],
                s=120,
                marker="*",
                color=colours[k],
                edgecolors="black",
                linewidths=0.7,
            )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=9)
    handles = [
        plt.Line2D([], [], ls="", marker="o", color="grey", label="image"),
        plt.Line2D(
            [],
            [],
            ls="",
            marker="*",
            markersize=11,
            color="grey",
            markeredgecolor="black",
            label="text",
        ),
    ]
    if len(classes) <= 20:
        handles += [
            plt.Line2D([], [], ls="", marker="s", color=colours[k], label=c) for k, c in enumerate(classes)
        ]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.suptitle(title, y=1.03)
    return _png(fig)


def histograms(
    panels: dict[str, dict[str, np.ndarray]], title: str, xlabel: str | Sequence[str] = "value"
) -> bytes:
    """One panel per entry, overlaid density histograms of its named samples (e.g. matched vs
    unmatched similarities), each with its mean marked."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    labels = [xlabel] * len(panels) if isinstance(xlabel, str) else list(xlabel)
    for ax, (name, samples), label in zip(axes[0], panels.items(), labels):
        for series, values in samples.items():
            values = np.asarray(values, dtype=float).ravel()
            span = values.max() - values.min() if len(values) else 0.0
            bins = 30 if span > 1e-9 else 1
            patches = ax.hist(
                values,
                bins=bins,
                density=span > 1e-9,
                alpha=0.5,
                label=f"{series} (mean {values.mean():.3f})",
            )[2]
            ax.axvline(values.mean(), color=patches[0].get_facecolor(), lw=1.5, alpha=1.0)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.suptitle(title, y=1.04)
    return _png(fig)


def posterior_stats(posteriors: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:
    """The original notebook's collapse figure for each model (mu, sigma: [images, dims]): mean μ
    and mean σ per latent dimension (the prior's σ = 1 dashed: a dimension at 1 with μ ≈ 0 has
    collapsed), and histograms of every μ and every σ."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    dims = np.arange(next(iter(posteriors.values()))[0].shape[1])
    width = 0.8 / len(posteriors)
    for k, (name, (mu, sigma)) in enumerate(posteriors.items()):
        offset = (k - (len(posteriors) - 1) / 2) * width
        axes[0][0].bar(dims + offset, mu.mean(0), width, label=name)
        axes[0][1].bar(dims + offset, sigma.mean(0), width, label=name)
        axes[1][0].hist(mu.ravel(), bins=50, alpha=0.5, density=True, label=name)
        axes[1][1].hist(sigma.ravel(), bins=50, alpha=0.5, density=True, label=name)
    axes[0][1].axhline(1.0, color="k", ls="--", lw=1, label="prior σ = 1")
    axes[0][1].set_ylim(0, 1.35 * max(1.0, max(s.mean(0).max() for _, s in posteriors.values())))
    axes[1][1].axvline(1.0, color="k", ls="--", lw=1, label="prior σ = 1")
    for ax, (what, xlabel, ylabel) in zip(
        axes.ravel(),
        [
            ("mean μ per latent dimension", "latent dimension", "mean μ over images"),
            ("mean σ per latent dimension", "latent dimension", "mean σ over images"),
            ("every μ (images × dimensions)", "μ", "density"),
            ("every σ (images × dimensions)", "σ", "density"),
        ],
    ):
        ax.set_title(what, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, ncol=2)
    for ax in axes[0]:
        ax.set_xticks(dims)
    fig.tight_layout()
    fig.suptitle(title, y=1.02)
    return _png(fig)
