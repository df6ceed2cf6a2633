"""Render a gcsim timeline (Chrome trace-event JSON from `gcsim profile --timeline`) as a
Gantt chart PNG: one row per track (component and units), busy intervals in blue, stalls in
red (labelled by cause in the legend).

    python examples/plot_timeline.py out/profile/timeline.json -o timeline.png [--max-tracks 40]

Needs matplotlib: pip install -e '.[plot]' (without it, the script says so in one line and exits with status 1).

For interactive browsing open the JSON itself in https://ui.perfetto.dev ("Open trace file")
or chrome://tracing ("Load").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def plot_timeline(timeline_json, png, *, max_tracks: int = 60, title: str | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(timeline_json).read_text())
    events = data["traceEvents"]
    names = {}
    procs = {}
    for e in events:
        if e["ph"] == "M" and e["name"] == "thread_name":
            names[(e["pid"], e["tid"])] = e["args"]["name"]
        elif e["ph"] == "M" and e["name"] == "process_name":
            procs[e["pid"]] = e["args"]["name"]
    tracks = sorted({(e["pid"], e["tid"]) for e in events if e["ph"] == "X"})[:max_tracks]
    row = {t: i for i, t in enumerate(tracks)}
    stall_colors = {}
    palette = ["tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
    bars: dict[tuple, list] = {}
    for e in events:
        if e["ph"] != "X" or (e["pid"], e["tid"]) not in row:
            continue
        if e["cat"] == "busy":
            color, label = "tab:blue", "busy"
        else:
            label = e["name"]
            color = stall_colors.setdefault(label, palette[len(stall_colors) % len(palette)])
        bars.setdefault((row[(e["pid"], e["tid"])], color, label), []).append((e["ts"] * 1e3, e["dur"] * 1e3))  # ns
    fig, ax = plt.subplots(figsize=(12, 0.28 * len(tracks) + 1.5))
    seen = set()
    for (r, color, label), spans in bars.items():
        ax.broken_barh(spans, (r - 0.4, 0.8), facecolors=color, label=None if label in seen else label)
        seen.add(label)
    ax.set_yticks(range(len(tracks)))
    ax.set_yticklabels([names.get(t, str(t)) for t in tracks], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("simulated time (ns)")
    ax.set_title(title or f"gcsim timeline: {Path(timeline_json).name}")
    if seen:
        ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return Path(png)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("timeline", help="timeline.json written by gcsim profile --timeline")
    ap.add_argument("-o", "--out", default="timeline.png")
    ap.add_argument("--max-tracks", type=int, default=60)
    args = ap.parse_args()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("plot_timeline.py needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)")
    print(f"wrote {plot_timeline(args.timeline, args.out, max_tracks=args.max_tracks)}")


if __name__ == "__main__":
    main()
