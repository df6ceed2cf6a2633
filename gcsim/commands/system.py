"""`gcsim system`: the chip beside its host against the host alone (the GPU-only baseline),
end to end per token, as the context grows and as more sequences are in flight.

For each model (a description with the network's widths: paper-gpt2, smollm2, llama3-8b by
default) on the host device (--device, a preset in models/hosts/), each point simulates one
decode step with the chip's windows pre-filled to the context and the sequences batched in
lockstep at the host, and costs the same step on the host alone by its roofline
(docs/system.md). Writes OUT/system.json, OUT/system.csv, OUT/summary.txt and, with the [plot]
extra, OUT/system.png.
"""
from __future__ import annotations

import csv

from ..hardware import load_hardware
from ..progress import add_feedback, bar, say, wanted
from ..system.curves import CURVE_COLUMNS, curves, default_contexts, format_curves, plot
from .common import add_output, number_list, open_output, overrides, provenance_of, write_json

DEFAULT_MODELS = ("paper-gpt2", "smollm2", "llama3-8b")
DEFAULT_SEQUENCES = (1, 2, 4, 8, 16, 32, 64)


def register(sub):
    p = sub.add_parser("system", help="end-to-end speed-up and energy ratio of the chip beside a host, against "
                       "the host alone", description=__doc__)
    p.add_argument("-m", "--model", action="append", default=None,
                   help=f"a description with the network's widths (repeatable; default: {', '.join(DEFAULT_MODELS)})")
    p.add_argument("--device", default="rtx4090", help="host preset in models/hosts/ or a path (default: %(default)s)")
    p.add_argument("--contexts", type=number_list(int), default=None,
                   help="contexts of the context curve, e.g. 256,1024,4096 (default: 64 .. 8 windows, powers of 2)")
    p.add_argument("--sequences", type=number_list(int), default=list(DEFAULT_SEQUENCES),
                   help="sequences in flight of the other curve, at a full window (default: 1,2,...,64)")
    p.add_argument("-s", "--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a field of every model's description, e.g. host.launch_overhead_ns=1000")
    p.add_argument("--no-plot", action="store_true", help="skip system.png (it needs the [plot] extra)")
    add_output(p, "out/system")
    add_feedback(p)
    p.set_defaults(func=main)


def main(args) -> int:
    changes = overrides(args.set)
    hws = []
    for name in args.model or DEFAULT_MODELS:
        hw = load_hardware(name).derive(**{**changes, "host": {**changes.get("host", {}), "device": args.device}})
        hws.append(hw)
    n = sum(len(args.contexts or default_contexts(hw)) + len(args.sequences) for hw in hws)
    with open_output(args) as tmp:
        progress = bar(n, "system", enabled=wanted(args))
        rows = []
        for hw in hws:
            rows += curves(hw, args.contexts, args.sequences, progress=lambda: progress.update(1))
        progress.close()
        write_json(tmp / "system.json", {"provenance": provenance_of(args), "device": args.device, "rows": rows})
        with open(tmp / "system.csv", "w", newline="") as f:
            w = csv.DictWriter(f, CURVE_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        text = format_curves(rows)
        (tmp / "summary.txt").write_text(text + "\n")
        plotted = False
        if not args.no_plot:
            try:
                plot(rows, tmp / "system.png")
                plotted = True
            except ImportError:
                text += "\n\n(no system.png: matplotlib is missing; pip install -e '.[plot]')"
    say(args, text)
    say(args, f"\nwrote {args.out}/ (system.json, system.csv, summary.txt{', system.png' if plotted else ''})")
    return 0
