"""The figures of a serving run, from the times the host port recorded per request
(gcsim/sim/blocks/host.py) and the run's energy ledger:

- queueing delay: arrival -> a K/V bank takes the request (admission);
- TTFT (time to first token): arrival -> the prefill's end (its LM head gives the first token);
- TPOT (time per output token): (finish - first token) / (output - 1), for requests with more
  than one output token;
- end-to-end latency: arrival -> the last token;
- throughput: output tokens (and requests) per second from the first arrival to the last finish;
- energy per request: the run's energy (chip, host, links) / requests, and per output token.

Percentiles are numpy's (linear interpolation between order statistics).
"""
from __future__ import annotations

import numpy as np

from ..system.endtoend import energy_split

PERCENTILES = (50, 90, 99)


def _stats_ms(values_ps) -> dict:
    v = np.asarray(values_ps, np.float64) / 1e9
    if not len(v):
        return {}
    out = {f"p{p}": float(np.percentile(v, p)) for p in PERCENTILES}
    out["mean"] = float(v.mean())
    out["max"] = float(v.max())
    return out


def per_request(served: list[dict]) -> list[dict]:
    """One row per request (in request order), times in ms from the run's start."""
    rows = []
    for r in sorted(served, key=lambda r: r["request"]):
        a = r["arrival_ps"]
        tpot = (r["finish_ps"] - r["first_token_ps"]) / (r["output"] - 1) if r["output"] > 1 else None
        rows.append({"request": r["request"], "bank": r["bank"], "prompt": r["prompt"], "output": r["output"],
                     "arrival_ms": a / 1e9, "queue_ms": (r["admitted_ps"] - a) / 1e9,
                     "ttft_ms": (r["first_token_ps"] - a) / 1e9,
                     "tpot_ms": None if tpot is None else tpot / 1e9, "latency_ms": (r["finish_ps"] - a) / 1e9})
    return rows


def serving_report(res, requests_total: int) -> dict:
    """Latency percentiles, throughput, queueing and energy of a serving run (SimResult)."""
    served = res.served or []
    if len(served) != requests_total:
        raise RuntimeError(f"{len(served)} of {requests_total} requests were served")
    ttft = [r["first_token_ps"] - r["arrival_ps"] for r in served]
    tpot = [(r["finish_ps"] - r["first_token_ps"]) / (r["output"] - 1) for r in served if r["output"] > 1]
    queue = [r["admitted_ps"] - r["arrival_ps"] for r in served]
    latency = [r["finish_ps"] - r["arrival_ps"] for r in served]
    t0 = min(r["arrival_ps"] for r in served)
    t1 = max(r["finish_ps"] for r in served)
    span_s = (t1 - t0) / 1e12
    tokens = sum(r["output"] for r in served)
    energy = energy_split(res.ledger)
    total = sum(energy.values())
    return {
        "requests": len(served), "output_tokens": tokens, "prompt_tokens": sum(r["prompt"] for r in served),
        "span_ms": span_s * 1e3,
        "ttft_ms": _stats_ms(ttft), "tpot_ms": _stats_ms(tpot), "queue_ms": _stats_ms(queue),
        "latency_ms": _stats_ms(latency),
        "throughput": {"tokens_per_s": tokens / span_s if span_s else 0.0,
                       "requests_per_s": len(served) / span_s if span_s else 0.0},
        "energy": {"per_request_mj": total / len(served) / 1e9, "per_output_token_mj": total / tokens / 1e9,
                   "chip_mj": energy["chip"] / 1e9, "host_mj": energy["host"] / 1e9, "links_mj": energy["links"] / 1e9},
    }


def format_serving(rep: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"  {rep['requests']} requests, {rep['output_tokens']} output tokens in {rep['span_ms']:.3f} ms: "
                 f"{rep['throughput']['tokens_per_s']:.1f} tokens/s, {rep['throughput']['requests_per_s']:.2f} "
                 f"requests/s")
    lines.append(f"  {'ms':<16} {'p50':>10} {'p90':>10} {'p99':>10} {'mean':>10}")
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("queue_ms", "queueing delay"),
                       ("latency_ms", "end to end")):
        st = rep[key]
        if st:
            lines.append(f"  {label:<16} {st['p50']:10.4f} {st['p90']:10.4f} {st['p99']:10.4f} {st['mean']:10.4f}")
    e = rep["energy"]
    lines.append(f"  energy per request {e['per_request_mj']:.4g} mJ ({e['per_output_token_mj']:.4g} mJ per output "
                 f"token; in all: chip {e['chip_mj']:.4g}, host {e['host_mj']:.4g}, links {e['links_mj']:.4g} mJ)")
    return "\n".join(lines)
