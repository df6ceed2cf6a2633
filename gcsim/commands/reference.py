"""`gcsim reference`: the numeric reference model on a trace, no timing.

Runs one variant (softmax | linear | cubic; default: the description's cell law) over every
layer of the trace at the description's nominal token period and writes
OUT/outputs.npy (float32 [steps, layers, heads, d_head]) and OUT/summary.json with, per
layer, how the hardware stages are used: the fraction of window slots whose phi pulse is
saturated (phi = 1) or empty (phi = 0), the fraction of output codes at full scale, and the
cosine similarity of the outputs with sliding-window softmax attention. Layers are
independent here: on a long trace they run in parallel worker processes (-j, default every
core; gcsim/parallel.py).
"""
from __future__ import annotations

import functools

import numpy as np

from ..parallel import add_jobs_option, check_jobs, map_layers, worth_it
from ..reference import VARIANTS, layer_attention, steps_block
from ..streamio import NpyWriter, release_pages
from ..traces import open_trace
from ..progress import add_feedback, iterate, say, wanted
from ..validation import SoftmaxDistance
from .common import provenance_of, add_inputs, add_output, open_output, load_inputs, trace_info, write_json


def register(sub):
    p = sub.add_parser("reference", help="run the numeric reference model on a trace", description=__doc__)
    add_inputs(p)
    p.add_argument("--variant", choices=VARIANTS, default=None,
                   help="softmax | linear | cubic (default: the description's cell law)")
    add_output(p, "out/reference")
    add_jobs_option(p)
    add_feedback(p)
    p.set_defaults(func=main)



BLOCK_STEPS = 512  # steps at a time (a multiple of the reference's own block: the same values)


def _reference_layer(l, *, trace, hw, variant, T, outputs, block=BLOCK_STEPS):
    """Layer l, block by block: its outputs written into `outputs` (the path of the .npy file,
    opened for rows here, or in a worker whose trace is a path), its usage figures returned."""
    if not hasattr(trace, "q"):
        trace = open_trace(trace, verify=False)     # the command verified it already
    s = hw.shape
    full_scale = 16 if hw.numerics.out_levels == 32 else None
    abs_sum = n_out = saturated = nonzero = slots = full = n_codes = 0
    softmax = SoftmaxDistance()
    with NpyWriter(outputs, (T, s.layers, s.heads, s.d_head), np.float32, create=False) as out_file:
        for t0 in range(0, T, block):
            t1 = min(T, t0 + block)
            off, skip = steps_block(t0, t1, hw)
            q, k, v = (np.asarray(a[off:t1, l], np.float64) for a in (trace.q, trace.k, trace.v))
            st = layer_attention(q, k, v, hw, variant=variant, scalers=trace.scalers, layer=l, offset=off, skip=skip,
                                 stages=variant != "softmax")
            for i, row in enumerate(st.out):
                out_file[t0 + i, l] = row
            abs_sum += float(np.abs(st.out).sum())
            n_out += st.out.size
            if variant != "softmax":
                slots += int(np.minimum(np.arange(t0, t1) + 1, s.window).sum()) * s.heads  # slots taking part
                saturated += int((st.phi >= 1).sum())
                nonzero += int((st.phi > 0).sum())
                if full_scale:
                    full += int((np.abs(np.round(st.sub_out / (2 / 31))) >= full_scale - 1).sum())
                    n_codes += st.sub_out.size
                ideal = layer_attention(q, k, v, hw, variant="softmax", stages=False, offset=off, skip=skip).out
                softmax.add(st.out, ideal)
            del st
            for arr in (trace.q, trace.k, trace.v):  # the pages read go again (gcsim/streamio.py)
                release_pages(arr)
    row = {"layer": l, "mean_abs_out": abs_sum / n_out}
    if variant != "softmax":
        row["phi_saturated"] = saturated / slots
        row["phi_zero"] = 1 - nonzero / slots
        if full_scale:
            row["codes_full_scale"] = full / n_codes
        row["cosine_vs_softmax"] = softmax.cosine
    return row


def main(args) -> int:
    check_jobs(args.jobs)
    hw, trace = load_inputs(args)
    variant = args.variant or hw.numerics.cell_law
    T = trace.steps if args.steps is None else min(args.steps, trace.steps)
    s = hw.shape
    with open_output(args) as tmp:
        NpyWriter(tmp / "outputs.npy", (T, s.layers, s.heads, s.d_head), np.float32).close()  # layers fill it
        source = str(trace.path) if worth_it(args.jobs, T, hw, trace) else trace
        one = functools.partial(_reference_layer, trace=source, hw=hw, variant=variant, T=T,
                                outputs=str(tmp / "outputs.npy"))
        results = map_layers(one, range(s.layers), 1 if source is trace else args.jobs)
        layers = list(iterate(results, f"reference ({variant})", enabled=wanted(args), unit="layer"))
        write_json(tmp / "summary.json", {"provenance": provenance_of(args, hw, trace),
                                          "variant": variant, "hardware": hw.name, "steps": T,
                                          "trace": trace_info(trace), "layers": layers})
    keys = [k for k in layers[0] if k != "layer"]
    lines = [f"reference model ({variant}) on {T} steps x {s.layers} layers x {s.heads} heads",
             f"{'layer':>5} " + " ".join(f"{k:>18}" for k in keys)]
    lines += [f"{row['layer']:>5} " + " ".join(f"{row[k]:18.4f}" for k in keys) for row in layers]
    say(args, "\n".join(lines) + f"\n\nwrote {args.out}/ (outputs.npy, summary.json)")
    return 0
