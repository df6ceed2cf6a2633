"""`gcsim serve`: requests arriving over simulated time, served by the chip beside its host.

Each request waits for a free K/V bank (the chip holds `--sequences` sequences; admission
policy `periphery.admission`), is prefilled on the host (its first token), has its prompt's
K/V written into the bank's arrays, then decodes its other tokens on the chip, batched with
the other requests in flight at the host (`periphery.batching`, lockstep unless --set).
Requests: a seeded Poisson process at each of --rates (requests/s), or a CSV file
(--requests: arrival_ns,prompt_tokens,output_tokens). Timing-only. Prints TTFT, TPOT,
queueing delay and end-to-end latency percentiles (p50, p90, p99), throughput and energy per
request; writes OUT/serving.json, OUT/requests.csv, OUT/summary.txt and, for several rates
with the [plot] extra, OUT/serving.png (latency percentiles against the arrival rate).
"""
from __future__ import annotations

import argparse
import csv

from ..hardware import load_hardware
from ..progress import add_feedback, bar, say, wanted
from ..serving.metrics import format_serving
from ..serving.requests import from_csv
from ..serving.run import plot_rates, rate_sweep, simulate
from .common import add_output, number_list, open_output, overrides, provenance_of, write_json


def _length(text: str):
    """N or LO:HI tokens."""
    try:
        parts = [int(x) for x in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1 or parts != sorted(parts):
        raise argparse.ArgumentTypeError(f"expected N or LO:HI tokens (>= 1), found {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def register(sub):
    p = sub.add_parser("serve", help="serve requests arriving over time: TTFT, TPOT, throughput against load",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", default="paper-gpt2",
                   help="a description with the network's widths (default: %(default)s)")
    p.add_argument("--device", default="rtx4090", help="host preset in models/hosts/ or a path (default: %(default)s)")
    p.add_argument("--sequences", type=int, default=8,
                   help="K/V banks: sequences the chip holds at once (periphery.sequences; default %(default)s)")
    p.add_argument("--rates", type=number_list(float), default=[50.0, 100.0, 150.0, 200.0, 250.0],
                   help="Poisson arrival rates, requests/s (default: 50,100,150,200,250)")
    p.add_argument("--count", type=int, default=100, help="requests per rate (default %(default)s)")
    p.add_argument("--prompt", type=_length, default=128, help="prompt tokens: N or LO:HI (uniform; default 128)")
    p.add_argument("--output", type=_length, default=32, help="output tokens: N or LO:HI (uniform; default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--requests", default=None, metavar="CSV",
                   help="requests from a file (arrival_ns,prompt_tokens,output_tokens) instead of --rates")
    p.add_argument("-s", "--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a field of the description, e.g. periphery.admission=shortest_first")
    p.add_argument("--no-plot", action="store_true", help="skip serving.png (it needs the [plot] extra)")
    add_output(p, "out/serve")
    add_feedback(p)
    p.set_defaults(func=main)


def main(args) -> int:
    if args.count < 1:
        raise ValueError(f"--count must be at least 1, found {args.count}")
    if args.sequences < 1:
        raise ValueError(f"--sequences must be at least 1, found {args.sequences}")
    changes = overrides(args.set)
    periphery = {"sequences": args.sequences, "batching": "lockstep", **changes.get("periphery", {})}
    hw = load_hardware(args.model).derive(**{**changes, "periphery": periphery,
                                             "host": {**changes.get("host", {}), "device": args.device}})
    requests = from_csv(args.requests) if args.requests else None
    with open_output(args) as tmp:
        if requests is not None:
            _, rep, rows = simulate(hw, requests)
            runs = [{"rate_per_s": None, "report": rep, "requests": rows}]
        else:
            progress = bar(len(args.rates), "serve", enabled=wanted(args), unit="rate")
            runs = rate_sweep(hw, args.rates, args.count, args.prompt, args.output, args.seed,
                              progress=lambda: progress.update(1))
            progress.close()
        head = (f"{hw.name} on {args.device}, {hw.periphery.sequences} K/V banks, batching "
                f"{hw.periphery.batching}, admission {hw.periphery.admission}")
        text = "\n\n".join(format_serving(r["report"], f"{head}: " + (
            f"Poisson arrivals at {r['rate_per_s']:g}/s (seed {args.seed})" if r["rate_per_s"] else args.requests))
            for r in runs)
        write_json(tmp / "serving.json", {"provenance": provenance_of(args, hw, seed=args.seed),
                                          "runs": [{k: v for k, v in r.items() if k != "requests"} for r in runs]})
        with open(tmp / "requests.csv", "w", newline="") as f:
            w = csv.writer(f)
            cols = list(runs[0]["requests"][0])
            w.writerow(["rate_per_s", *cols])
            for r in runs:
                for row in r["requests"]:
                    w.writerow([r["rate_per_s"], *[row[c] for c in cols]])
        (tmp / "summary.txt").write_text(text + "\n")
        plotted = False
        if len(runs) > 1 and not args.no_plot:
            try:
                plot_rates(runs, tmp / "serving.png", head)
                plotted = True
            except ImportError:
                text += "\n\n(no serving.png: matplotlib is missing; pip install -e '.[plot]')"
    say(args, text)
    say(args, f"\nwrote {args.out}/ (serving.json, requests.csv, summary.txt{', serving.png' if plotted else ''})")
    return 0
