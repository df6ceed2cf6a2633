"""`gcsim profile`: where the design loses time.

Prints, per component, busy / stalled by cause / idle time and utilisation, and the
critical-path breakdown averaged per step; writes them to OUT/profile.json and
OUT/components.csv, OUT/critical_path.csv (per step). With --timeline, also
OUT/timeline.json in the Chrome trace-event format (open in ui.perfetto.dev or
chrome://tracing), one track per component (and unit), filtered by step range, layers
and component prefixes to keep long runs manageable. With --plots (needs matplotlib),
PNG charts of the latency breakdown, energy breakdown and stall causes.
"""
from __future__ import annotations

from ..profiling import format_profile, write_profile
from ..report import build_report
from ..sim import Simulator, Timeline
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
    add_feedback(p)
    p.set_defaults(func=main)


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
    return Timeline(steps, layers, comps)


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
    sim = Simulator(hw, trace, values=not args.timing_only, steps=args.steps, timeline=timeline)
    _check_components(timeline, sim.ctx.activity.units)
    if timeline is not None and timeline.steps is not None and timeline.steps[0] >= sim.steps:
        raise ValueError(f"--timeline-steps: starts at step {timeline.steps[0]} but the run has {sim.steps} steps")
    with open_output(args) as tmp:  # checked and created before the simulation, not after
        res = sim.run(progress=wanted(args))
        rep = build_report(res, trace_info=trace_info(trace), values=not args.timing_only,
                           provenance=provenance_of(args, hw, trace))
        written = write_profile(tmp, res, rep, plots=args.plots)
    say(args, format_profile(rep, res))
    say(args, f"\nwrote {args.out}/ ({', '.join(written)})")
    return 0
