"""`gcsim profile`: where the design loses time.

Prints a summary that fits a screen: per component kind (the copies in every layer summed)
busy / stalled / idle time, the largest stall causes, throughput in tokens/s, the latency
per token of every sequence in flight and the critical path averaged per step. --by-layer
prints the full table instead (every component of every layer). Writes them to OUT/profile.json and
OUT/components.csv, OUT/critical_path.csv (per step). With --timeline, also
OUT/timeline.json in the Chrome trace-event format (open in ui.perfetto.dev or
chrome://tracing), one track per component (and unit), filtered by step range, layers
and component prefixes to keep long runs manageable. With --plots (needs matplotlib),
PNG charts of the latency breakdown, energy breakdown and stall causes.
"""
from __future__ import annotations

from ..profiling import StreamedTimeline, format_profile, write_profile
from ..report import build_report, over_sequences
from ..sim import Simulator
from ..progress import add_feedback, say, wanted
from .common import provenance_of, add_inputs, add_output, open_output, load_inputs, trace_info


def register(sub):
    p = sub.add_parser("profile", help="busy/stalled/idle per component, critical path, timeline",
                       description=__doc__)
    add_inputs(p)
    add_output(p, "out/profile")
    p.add_argument("--timing-only", action="store_true", help="skip values (timing and counts are the same)")
    p.add_argument("--timeline", action="store_true", help="write timeline.json (Chrome trace-event format)")
    p.add_argument("--timeline-steps", default=None, metavar="A:B", help="only steps A..B-1 in the timeline")
    p.add_argument("--timeline-layers", default=None, metavar="L,L,...", help="only these layers in the timeline")
    p.add_argument("--timeline-components", default=None, metavar="P,P,...",
                   help="only components whose name starts with one of these (e.g. L00.,host)")
    p.add_argument("--plots", action="store_true", help="write PNG plots (needs matplotlib)")
    p.add_argument("--by-layer", action="store_true",
                   help="print every component of every layer instead of the summary per component kind")
    add_feedback(p)
    p.set_defaults(func=main)


def format_profile_summary(rep: dict, top_causes: int = 5) -> str:
    """The default view: per component kind (layers summed), top stall causes, throughput,
    per-sequence latency and the critical path."""
    t = rep["time"]
    n_seq = rep["sequences"]
    lines = [f"profile: {rep['steps']} steps x {n_seq} sequence(s) on {rep['hardware']['name']}, "
             f"elapsed {t['elapsed_ps'] / 1e6:.3f} us, throughput {t['throughput_tokens_per_s']:,.0f} tokens/s"]
    for q, st in enumerate(t["token_latency_ns_by_sequence"]):
        who = f"sequence {q}" if n_seq > 1 else "per token"
        lines.append(f"  {who:<12} latency {st['mean']:10.1f} ns mean ({st['min']:.1f} .. {st['max']:.1f})")
    lines += ["", f"{'component (all layers)':<26} {'units':>5} {'busy %':>7} {'stalled %':>9} {'idle %':>7}"]
    causes: dict[str, int] = {}
    for kind, c in sorted(rep["activity"].items()):
        tot = t["elapsed_ps"] * c["units"] or 1
        lines.append(f"{kind:<26} {c['units']:>5} {100 * c['busy_ps'] / tot:7.2f} {100 * c['stalled_ps'] / tot:9.2f} "
                     f"{100 * c['idle_ps'] / tot:7.2f}")
        for cause, v in c["stall_causes_ps"].items():
            causes[f"{kind}: {cause}"] = causes.get(f"{kind}: {cause}", 0) + v
    lines.append("")
    if causes:
        lines.append(f"top stall causes (unit-time, all units; {len(causes)} in all):")
        for name, v in sorted(causes.items(), key=lambda kv: -kv[1])[:top_causes]:
            lines.append(f"  {name:<50} {v / 1000:14.1f} ns")
    else:
        lines.append("no stalls")
    cp = t["critical_path_ns_per_step"]
    total = sum(cp.values()) or 1
    lines += ["", f"critical path, mean per step{over_sequences(n_seq)}:"]
    for k, v in sorted(cp.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {k:<36} {v:12.1f} ns  {100 * v / total:5.1f}%")
    lines.append(f"  {'total (= mean step latency)':<36} {sum(cp.values()):12.1f} ns")
    lines.append("(--by-layer: every component of every layer)")
    return "\n".join(lines)


def _timeline(args, hw):
    """The Timeline asked for, with every filter checked (one that selects nothing is an error)."""
    filters = [f for f in ("timeline_steps", "timeline_layers", "timeline_components") if getattr(args, f)]
    if not args.timeline:
        if filters:
            raise ValueError(f"--{filters[0].replace('_', '-')} filters the timeline: add --timeline")
        return None
    steps = layers = comps = None
    if args.timeline_steps:
        try:
            a, b = args.timeline_steps.split(":")
            steps = (int(a or 0), int(b) if b else 1 << 62)
        except ValueError:
            raise ValueError(f"--timeline-steps: expected A:B (e.g. 0:10), found {args.timeline_steps!r}") from None
        if not 0 <= steps[0] < steps[1]:
            raise ValueError(f"--timeline-steps: {args.timeline_steps!r} selects no step (need 0 <= A < B)")
    if args.timeline_layers:
        try:
            layers = {int(x) for x in args.timeline_layers.split(",")}
        except ValueError:
            raise ValueError(f"--timeline-layers: expected comma-separated integers, found {args.timeline_layers!r}") from None
        bad = sorted(x for x in layers if not 0 <= x < hw.shape.layers)
        if bad:
            raise ValueError(f"--timeline-layers: {bad} not in the model's layers 0..{hw.shape.layers - 1}")
    if args.timeline_components:
        comps = set(args.timeline_components.split(","))
    return StreamedTimeline(steps, layers, comps)  # written to disk as the run goes


def _check_components(timeline, names):
    if timeline is None or timeline.components is None:
        return
    unknown = sorted(p for p in timeline.components if not any(n.startswith(p) for n in names))
    if unknown:
        raise ValueError(f"--timeline-components: {unknown} match no component; components are e.g. "
                         f"{sorted(names)[:6]}")


def main(args) -> int:
    hw, trace = load_inputs(args)
    timeline = _timeline(args, hw)
    if args.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plots needs matplotlib: pip install -e '.[plot]' from the gcsim clone "
                             "(pip install matplotlib where gcsim is installed from a wheel)") from None
    sim = Simulator(hw, trace, values=not args.timing_only, steps=args.steps, timeline=timeline,
                    device=getattr(args, "device", "cpu"))
    _check_components(timeline, sim.activity.units)
    if timeline is not None and timeline.steps is not None and timeline.steps[0] >= sim.steps:
        raise ValueError(f"--timeline-steps: starts at step {timeline.steps[0]} but the run has {sim.steps} steps")
    with open_output(args) as tmp:  # checked and created before the simulation, not after
        if timeline is not None:
            timeline.start(tmp / ".timeline-events.part")
        res = sim.run(progress=wanted(args))
        rep = build_report(res, trace_info=trace_info(trace), values=not args.timing_only,
                           provenance=provenance_of(args, hw, trace))
        written = write_profile(tmp, res, rep, plots=args.plots)
    say(args, format_profile(rep, res) if args.by_layer else format_profile_summary(rep))
    say(args, f"\nwrote {args.out}/ ({', '.join(written)})")
    return 0
