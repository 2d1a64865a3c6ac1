"""summary.png and curves.png, drawn with matplotlib's object API (no pyplot state, Agg canvas).

matplotlib is imported inside the functions: reading and rendering a report does not need it.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from .aggregate import ConfigSummary
from .render import DASH


def plot_summary(rows: list[ConfigSummary], metric: str, mode: str, path: Path) -> None:
    """Left: val Dice and IoU per configuration (bars = mean, error bars = std, dots = seeds), rank order.
    Right: per-class Dice heat map, same row order."""
    from matplotlib.figure import Figure

    labels = [f"#{r.rank} {_short(r.label)}" for r in rows]
    classes = rows[0].classes if rows else []
    n = max(len(rows), 1)
    height = 1.6 + 0.42 * n
    width_ratios = [3.0, max(1.2, 0.55 * len(classes))] if classes else [1.0]
    fig = Figure(figsize=(6.5 + 1.1 * sum(width_ratios), height), layout="constrained")
    axes = fig.subplots(1, len(width_ratios), width_ratios=width_ratios, squeeze=False)[0]

    ax = axes[0]
    ys = list(range(len(rows)))
    bar_h = 0.38
    for offset, key, color in ((-bar_h / 2, "val/dice", "tab:blue"), (bar_h / 2, "val/iou", "tab:orange")):
        means = [r.mean(key) for r in rows]
        stds = [r.std(key) or 0.0 for r in rows]
        yy = [y + offset for y in ys]
        ax.barh(
            yy,
            [m if m is not None else 0.0 for m in means],
            height=bar_h,
            xerr=stds,
            color=color,
            alpha=0.75,
            capsize=3,
            label=key,
        )
        for y, r in zip(yy, rows, strict=True):
            vals = r.values(key)
            ax.plot(vals, [y] * len(vals), "k.", markersize=4, zorder=3)
    for y, r in zip(ys, rows, strict=True):
        if r.score is None and not r.values("val/dice"):
            ax.text(0.01, y, f"no value: {r.status}", va="center", fontsize=8, color="gray")
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("best-epoch value (bar: mean over seeds, line: ± std, dots: seeds)")
    arrow = "higher" if mode == "max" else "lower"
    ax.set_title(f"ranked by {metric} ({arrow} is better)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)

    if classes:
        import numpy as np

        hm = axes[1]
        grid = np.array(
            [[np.nan if (v := r.class_mean("dice", c)) is None else v for c in classes] for r in rows],
            dtype=float,
        ).reshape(len(rows), len(classes))
        cmap = _viridis_with_gray()
        image = hm.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
        hm.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
        hm.set_yticks(ys, [f"#{r.rank}" for r in rows], fontsize=8)
        if grid.size <= 400:
            for (i, j), v in np.ndenumerate(grid):
                text = DASH if math.isnan(v) else f"{v:.2f}"
                hm.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if math.isnan(v) or v > 0.55 else "white",
                )
        hm.set_title("per-class Dice (mean over seeds)", fontsize=10)
        fig.colorbar(image, ax=hm, fraction=0.08, pad=0.02)
    fig.savefig(path, dpi=110)


def plot_curves(rows: list[ConfigSummary], path: Path) -> None:
    """Validation Dice per epoch: one line per configuration (mean over seeds), band = min..max over seeds."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    cmap = _colors(len(rows))
    drawn = 0
    for row, color in zip(rows, cmap, strict=True):
        per_epoch: dict[float, list[float]] = {}
        for r in row.counted:
            for h in r.history():
                if "val/dice" in h:
                    per_epoch.setdefault(h["epoch"], []).append(h["val/dice"])
        if not per_epoch:
            continue
        epochs = sorted(per_epoch)
        means = [statistics.mean(per_epoch[e]) for e in epochs]
        ax.plot(
            epochs,
            means,
            marker="o",
            markersize=3,
            color=color,
            label=f"#{row.rank} {_short(row.label)} (n={row.seeds})",
        )
        if any(len(per_epoch[e]) > 1 for e in epochs):
            ax.fill_between(
                epochs,
                [min(per_epoch[e]) for e in epochs],
                [max(per_epoch[e]) for e in epochs],
                color=color,
                alpha=0.15,
                linewidth=0,
            )
        drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no history.csv with val/dice found", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("val/dice")
    ax.set_title("validation Dice per epoch (line: mean over seeds, band: min..max)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _viridis_with_gray() -> Any:
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(bad="0.85")


def _short(label: str, limit: int = 48) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
