"""challengeR-style blob plot of bootstrap rank stability (Wiesenfarth et al. 2021, Fig. 5)."""

from __future__ import annotations

from pathlib import Path

from segtrain.verdict.result import Verdict

__all__ = ["plot_ranks"]


def plot_ranks(result: Verdict, path: str | Path, *, title: str | None = None) -> Path:
    """Write ``path`` (e.g. ranks.png): configurations on x in full-rank order, rank 1..K on y (1 at the top);
    a circle's area is the bootstrap frequency of that rank, the vertical line spans the 2.5-97.5 percentile
    rank interval and the cross marks the rank on all cases. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    k = len(result.ranking)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * k + 2), max(3.5, 0.3 * k + 2)), layout="constrained")
    try:
        xs, ys, sizes = [], [], []
        for x, s in enumerate(result.stability):
            for r, f in enumerate(s.rank_freq, start=1):
                if f > 0:
                    xs.append(x)
                    ys.append(r)
                    sizes.append(f)
        # area proportional to frequency; a rank taken in every resample gets a circle about one cell wide
        cell = (72 * min(fig.get_size_inches()) / (k + 1)) ** 2
        ax.scatter(xs, ys, s=[0.7 * cell * f for f in sizes], color="tab:blue", alpha=0.6, linewidths=0)
        for x, s in enumerate(result.stability):
            ax.vlines(x, s.rank_low, s.rank_high, color="black", linewidth=1.2)
            ax.plot(x, s.rank, marker="x", color="black", markersize=6)
        ax.plot([0, k - 1], [1, k], color="grey", linewidth=0.6, linestyle=":")
        ax.set_xticks(range(k), result.ranking, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
        ax.set_yticks(range(1, k + 1))
        ax.set_ylim(k + 0.7, 0.3)
        ax.set_xlim(-0.7, k - 0.3)
        ax.set_ylabel("rank")
        ax.set_title(
            title
            or f"rank over {result.n_boot} resamples of {result.n_cases} cases\n"
            f"median Kendall tau = {result.tau_median:.2f}",
            fontsize=9,
        )
        ax.grid(True, linewidth=0.3, alpha=0.5)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
