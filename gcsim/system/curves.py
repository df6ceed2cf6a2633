"""End-to-end curves: the chip beside its host against the GPU-only baseline, as the context
grows and as more sequences are in flight (`gcsim system`, docs/system.md).

Each point is a simulation: the description with the host device, `sequences` in flight
batched in lockstep, every K/V ring of the chip pre-filled as if `context` - 1 tokens had
been decoded (the window holds at most M - 1 of them), and one decode step, the step at
`context` tokens, simulated through the components; the baseline is the roofline of the host
alone at the same sequences and context (it attends to the whole context; the chip to its
window). Amdahl bounds the speed-up by 1 / (1 - a), a the attention's share of the GPU-only
step: the chip cannot win more than the attention the host no longer does.
"""
from __future__ import annotations

import numpy as np

from ..sim import ArrayTrace, Simulator
from .endtoend import system_report

CURVE_COLUMNS = ("model", "device", "curve", "window", "context", "sequences", "token_ns", "chip_ns", "host_ns", "links_ns",
                 "batch_wait_ns", "token_pj", "chip_pj", "host_pj", "gpu_only_token_ns", "gpu_only_token_pj",
                 "gpu_only_attention_share", "amdahl_bound", "speedup", "energy_ratio", "gpu_only_fits_memory")


def _one_step_trace(hw) -> ArrayTrace:
    s = hw.shape
    z = lambda *shape: np.broadcast_to(np.zeros((), np.float32), shape)  # noqa: E731  (no memory)
    return ArrayTrace(z(1, s.layers, s.heads, s.d_head), z(1, s.layers, s.kv_heads, s.d_head),
                      z(1, s.layers, s.kv_heads, s.d_head))


def point(hw, context: int, sequences: int) -> dict:
    """One point: `hw` (with a host device) at `sequences` in flight, the step at `context`."""
    if context < 1 or sequences < 1:
        raise ValueError(f"a point needs context >= 1 and sequences >= 1, found {context} and {sequences}")
    hw = hw.derive(periphery={"sequences": sequences, "batching": "lockstep"})
    sim = Simulator(hw, _one_step_trace(hw), values=False)
    before = min(context - 1, hw.shape.window - 1)
    if before:
        for _, _, ring in sim.rings():
            ring.prefill(before, hw.timing.nominal_token_period_ps)
    rep = system_report(sim.run(), first_context=context)
    t, e, g = rep["per_token_ns"], rep["per_token_pj"], rep["gpu_only"]
    share = g["attention_share"]
    return {"model": hw.name, "device": rep["device"], "window": hw.shape.window, "context": context,
            "sequences": sequences,
            "token_ns": t["end_to_end"], "chip_ns": t["chip_attention"], "host_ns": t["host"],
            "links_ns": t["links"], "batch_wait_ns": t["batch_wait"], "token_pj": e["end_to_end"],
            "chip_pj": e["chip_attention"] + e["links"], "host_pj": e["host"],
            "gpu_only_token_ns": g["per_token_ns"], "gpu_only_token_pj": g["per_token_pj"],
            "gpu_only_attention_share": share, "amdahl_bound": 1 / (1 - share),
            "speedup": rep["speedup"], "energy_ratio": rep["energy_ratio"],
            "gpu_only_fits_memory": g["fits_memory"]}


def default_contexts(hw) -> list[int]:
    """Powers of two from 64 to 8 windows: up to the window and well beyond it."""
    return [c for c in (2 ** k for k in range(6, 40)) if c <= 8 * hw.shape.window]


def curves(hw, contexts=None, sequences=(1, 2, 4, 8, 16, 32, 64), progress=None) -> list[dict]:
    """Rows (CURVE_COLUMNS) of the two curves of `hw`: against the context at one sequence
    (`curve` = "context") and against the sequences in flight at a full window ("sequences")."""
    contexts = default_contexts(hw) if contexts is None else list(contexts)
    rows = []
    for curve, pts in (("context", [(c, 1) for c in contexts]),
                       ("sequences", [(hw.shape.window, n) for n in sequences])):
        for c, n in pts:
            rows.append({"curve": curve, **point(hw, c, n)})
            if progress is not None:
                progress()
    return [{k: r[k] for k in CURVE_COLUMNS} for r in rows]


def break_even(rows: list[dict], ratio: float = 1.1) -> int | None:
    """The smallest context of a model's context curve from which on the speed-up is at
    least `ratio` (None if it never is)."""
    pts = sorted((r["context"], r["speedup"]) for r in rows if r["curve"] == "context")
    for i, (c, _) in enumerate(pts):
        if all(s >= ratio for _, s in pts[i:]):
            return c
    return None


def plot(rows: list[dict], path) -> None:
    """Speed-up and energy ratio against the context and against the sequences in flight, one
    line per model (matplotlib, the [plot] extra); hollow markers: the GPU-only baseline would
    not fit the host's memory."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    times = FuncFormatter(lambda v, _: f"{v:g}x")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    models = list(dict.fromkeys(r["model"] for r in rows))
    for col, (curve, xlabel) in enumerate((("context", "context (tokens attended)"),
                                           ("sequences", "sequences in flight (at a full window)"))):
        for row_i, (metric, ylabel) in enumerate((("speedup", "end-to-end speed-up (GPU-only / with chip)"),
                                                  ("energy_ratio", "energy ratio per token (GPU-only / with chip)"))):
            ax = axes[row_i][col]
            for i, m in enumerate(models):
                pts = sorted((r[curve], r[metric], r["gpu_only_fits_memory"]) for r in rows
                             if r["model"] == m and r["curve"] == curve)
                x, y = [p[0] for p in pts], [p[1] for p in pts]
                line, = ax.plot(x, y, "-", label=m, color=f"C{i}")
                ax.plot([p[0] for p in pts if p[2]], [p[1] for p in pts if p[2]], "o", color=f"C{i}")
                ax.plot([p[0] for p in pts if not p[2]], [p[1] for p in pts if not p[2]], "o", mfc="none",
                        color=f"C{i}")
                if curve == "context":
                    ax.axvline(next(r["window"] for r in rows if r["model"] == m), color=f"C{i}", ls="--", lw=0.8)
                if metric == "speedup" and curve == "context":
                    bound = sorted((r["context"], r["amdahl_bound"]) for r in rows
                                   if r["model"] == m and r["curve"] == curve)
                    ax.plot([b[0] for b in bound], [b[1] for b in bound], ":", color=f"C{i}", lw=1)
            ax.set_xscale("log", base=2)
            ax.axhline(1, color="grey", lw=0.8)
            ax.yaxis.set_major_formatter(times)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(title="model (dotted: Amdahl bound;\ndashed: the chip's window)")
    devices = sorted({r["device"] for r in rows})
    fig.suptitle(f"Gain-cell attention chip beside a {', '.join(devices)} host vs the host alone "
                 f"(hollow: GPU-only would not fit the host's memory)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_curves(rows: list[dict]) -> str:
    """A table per model and curve, with where the chip pays off."""
    lines = []
    for m in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == m]
        lines += ["", f"{m} (host {mine[0]['device']}; GPU-only attends the whole context, the chip its window)",
                  f"  {'curve':<9} {'context':>7} {'seqs':>4} {'with chip us':>12} {'GPU-only us':>12} "
                  f"{'attn share':>10} {'speed-up':>9} {'Amdahl':>7} {'energy ratio':>12}"]
        for r in mine:
            fits = "" if r["gpu_only_fits_memory"] else "  (GPU-only: over the host's memory)"
            lines.append(f"  {r['curve']:<9} {r['context']:7d} {r['sequences']:4d} {r['token_ns'] / 1e3:12.1f} "
                         f"{r['gpu_only_token_ns'] / 1e3:12.1f} {100 * r['gpu_only_attention_share']:9.1f}% "
                         f"{r['speedup']:8.3f}x {r['amdahl_bound']:6.3f}x {r['energy_ratio']:11.3f}x{fits}")
        c = break_even(mine)
        lines.append(f"  speed-up >= 1.1x at one sequence from context {c} on" if c else
                     "  speed-up stays below 1.1x at one sequence over these contexts")
    return "\n".join(lines).lstrip("\n")
