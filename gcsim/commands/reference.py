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
from ..reference import VARIANTS, layer_attention
from ..traces import open_trace
from ..progress import add_feedback, iterate, say, wanted
from .validate import mean_cosine
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



def _reference_layer(l, *, trace, hw, variant, T):
    """Outputs and usage figures of layer l (a trace path is reopened: run in a worker)."""
    if not hasattr(trace, "q"):
        trace = open_trace(trace, verify=False)     # the command verified it already
    s = hw.shape
    full_scale = 16 if hw.numerics.out_levels == 32 else None
    q, k, v = (np.asarray(a[:T, l], np.float64) for a in (trace.q, trace.k, trace.v))
    st = layer_attention(q, k, v, hw, variant=variant, scalers=trace.scalers, layer=l)
    valid = np.minimum(np.arange(T) + 1, s.window)[:, None]  # slots taking part per step
    row = {"layer": l, "mean_abs_out": float(np.abs(st.out).mean())}
    if variant != "softmax":
        row["phi_saturated"] = float((st.phi >= 1).sum() / (valid.sum() * s.heads))
        row["phi_zero"] = float(1 - (st.phi > 0).sum() / (valid.sum() * s.heads))
        if full_scale:
            codes = np.round(st.sub_out / (2 / 31))
            row["codes_full_scale"] = float((np.abs(codes) >= full_scale - 1).mean())
        ideal = layer_attention(q, k, v, hw, variant="softmax", stages=False).out
        row["cosine_vs_softmax"] = mean_cosine(st.out, ideal)
    return st.out, row


def main(args) -> int:
    check_jobs(args.jobs)
    hw, trace = load_inputs(args)
    variant = args.variant or hw.numerics.cell_law
    T = trace.steps if args.steps is None else min(args.steps, trace.steps)
    s = hw.shape
    layers = []
    with open_output(args) as tmp:
        outputs = np.lib.format.open_memmap(tmp / "outputs.npy", mode="w+", dtype=np.float32,
                                            shape=(T, s.layers, s.heads, s.d_head))
        source = str(trace.path) if worth_it(args.jobs, T, hw, trace) else trace
        one = functools.partial(_reference_layer, trace=source, hw=hw, variant=variant, T=T)
        results = map_layers(one, range(s.layers), 1 if source is trace else args.jobs)
        for l, (out, row) in enumerate(iterate(results, f"reference ({variant})", enabled=wanted(args),
                                                unit="layer")):
            outputs[:, l] = out
            layers.append(row)
        outputs.flush()
        del outputs
        write_json(tmp / "summary.json", {"provenance": provenance_of(args, hw, trace),
                                          "variant": variant, "hardware": hw.name, "steps": T,
                                          "trace": trace_info(trace), "layers": layers})
    keys = [k for k in layers[0] if k != "layer"]
    lines = [f"reference model ({variant}) on {T} steps x {s.layers} layers x {s.heads} heads",
             f"{'layer':>5} " + " ".join(f"{k:>18}" for k in keys)]
    lines += [f"{row['layer']:>5} " + " ".join(f"{row[k]:18.4f}" for k in keys) for row in layers]
    say(args, "\n".join(lines) + f"\n\nwrote {args.out}/ (outputs.npy, summary.json)")
    return 0
