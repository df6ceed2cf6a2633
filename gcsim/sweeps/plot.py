"""Charts of a sweep's table (matplotlib): the Pareto front of energy per token against
latency per token, coloured by output error (by perplexity for an eval sweep), and one chart
per swept field (with perplexity and top-1 agreement against the field for an eval sweep)."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

from ..errors import UsageError
from .table import SWEEP_JSON, read_meta, read_table

ERROR = "out_rel_rmse_vs_softmax"
PERPLEXITY = "perplexity"
X, Y = "latency_per_token_ns", "energy_per_token_pj"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (lower is better),
    sorted by the first coordinate."""
    order = sorted(range(len(points)), key=lambda i: points[i])
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def _label(row, fields):
    return ", ".join(f"{f.split('.')[-1]}={row[f]}" for f in fields)


def plot_sweep(src: Path, dest: Path) -> list[str]:
    """Draw the charts of the sweep in `src` into `dest`; returns the file names."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("gcsim sweep plot needs matplotlib: pip install -e '.[plot]'") from None
    meta = read_meta(src)
    fields = meta["fields"]
    missing = [f for f in fields if f not in meta["columns"]]
    if missing:
        raise UsageError(f"{Path(src) / SWEEP_JSON}: field 'fields': '{missing[0]}' is not one of its columns")
    rows = [r for r in read_table(src, meta["columns"], (X, Y, ERROR, PERPLEXITY, "top1_agreement"))
            if r["status"] == "ok"]
    if not rows:
        raise UsageError(f"{src}: no point ran successfully: nothing to plot")
    written = []
    evaluation = meta["spec"].get("mode") == "eval"
    colour_col, colour_label = (PERPLEXITY, "perplexity") if evaluation else \
        (ERROR, "output error: rel. RMS vs softmax (affine fit)")
    has_err = any(r.get(colour_col) is not None for r in rows)
    if _has_cost(rows):             # not for an eval sweep on the reference model (no timing)
        written.append(_pareto(plt, rows, fields, meta, dest, colour_col, colour_label, has_err))

    metrics = chart_metrics(meta["spec"].get("mode", "timing-only"), rows)
    for f in fields:
        written.append(_axis_chart(plt, rows, fields, f, metrics, dest))
    return written


def _has_cost(rows) -> bool:
    return all(r.get(X) is not None and r.get(Y) is not None for r in rows)


def chart_metrics(mode: str, rows) -> list[tuple[str, str, float]]:
    """(column, title, divisor) of the panels of each axis chart: latency and energy where
    simulated; perplexity and top-1 agreement for an eval sweep, else the output error where
    values were computed."""
    metrics = [(X, "latency per token (ns)", 1), (Y, "energy per token (nJ)", 1000)] if _has_cost(rows) else []
    if mode == "eval":
        metrics += [(PERPLEXITY, "perplexity", 1), ("top1_agreement", "top-1 agreement with the model as trained", 1)]
    elif any(r.get(ERROR) is not None for r in rows):
        metrics.append((ERROR, "output error (rel. RMS)", 1))
    return metrics


def _pareto(plt, rows, fields, meta, dest, colour_col, colour_label, has_err) -> str:
    fig, ax = plt.subplots(figsize=(7, 5))
    xs, ys = [r[X] for r in rows], [r[Y] / 1000 for r in rows]
    # points at the same place (e.g. designs differing only in numerics) are drawn as
    # concentric rings, the first of the table outermost, so every colour stays visible
    spot: dict = {}
    for i in range(len(rows)):
        spot.setdefault((xs[i], ys[i]), []).append(i)
    sizes = [0.0] * len(rows)
    for group in spot.values():
        for k, i in enumerate(group):
            sizes[i] = 36.0 * (len(group) - k) ** 2
    order = sorted(range(len(rows)), key=lambda i: -sizes[i])     # big rings first, small on top
    colour = dict(c=[rows[i].get(colour_col) for i in order], cmap="viridis") if has_err else dict(color="tab:blue")
    sc = ax.scatter([xs[i] for i in order], [ys[i] for i in order], s=[sizes[i] for i in order],
                    edgecolors="white", linewidths=0.6, zorder=3, **colour)
    if has_err:
        fig.colorbar(sc, ax=ax, label=colour_label)
    front = pareto_front(list(zip(xs, ys)))
    ax.plot([xs[i] for i in front], [ys[i] for i in front], color="tab:red", lw=1.2, zorder=4,
            marker="x" if len(front) == 1 else None, label="Pareto front")
    if len(spot) <= 16:
        # labels to the right of a point, except in the right third of the plot, where they
        # ran past the axes into the colour bar: there to its left
        right = min(xs) + 2 / 3 * (max(xs) - min(xs))
        for (x, y), group in spot.items():
            left = max(xs) > min(xs) and x > right
            ax.annotate("\n".join(_label(rows[i], fields) for i in group), (x, y), fontsize=7,
                        xytext=(-8 if left else 8, -3), ha="right" if left else "left",
                        textcoords="offset points", va="top")
    else:
        for i in front:
            ax.annotate(_label(rows[i], fields), (xs[i], ys[i]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("latency per token (ns)")
    ax.set_ylabel("energy per token (nJ)")
    ax.set_title(f"{meta.get('spec', {}).get('name') or Path(meta['spec_source']).name}: "
                 f"{len(rows)} points ({meta['spec'].get('mode', 'timing-only')})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(dest / "pareto.png", dpi=110)
    plt.close(fig)
    return "pareto.png"


def _axis_chart(plt, rows, fields, f, metrics, dest) -> str:
    """Each metric against field f, one line per combination of the other fields."""
    others = [g for g in fields if g != f]
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r[g] for g in others), []).append(r)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    axes = axes[0]
    numeric = all(isinstance(r[f], (int, float)) and not isinstance(r[f], bool) for r in rows)
    cats = sorted({str(r[f]) for r in rows})
    for ax, (col, title, scale) in zip(axes, metrics):
        for (key, grp), style in zip(sorted(groups.items(), key=lambda kv: str(kv[0])),
                                     itertools.cycle(["o-", "s--", "^-.", "d:"])):
            grp = sorted(grp, key=lambda r: r[f] if numeric else str(r[f]))
            xv = [r[f] if numeric else cats.index(str(r[f])) for r in grp]
            yv = [None if r.get(col) is None else r[col] / scale for r in grp]
            ax.plot(xv, yv, style, ms=4, label=", ".join(f"{g.split('.')[-1]}={v}" for g, v in zip(others, key)) or None)
        if not numeric:
            ax.set_xticks(range(len(cats)), cats)
        ax.set_xlabel(f)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    if others and len(groups) <= 12:
        axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    name = "axis-" + re.sub(r"[^0-9A-Za-z_.-]+", "_", f) + ".png"
    fig.savefig(dest / name, dpi=100)
    plt.close(fig)
    return name
