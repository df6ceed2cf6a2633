"""A serving run and a sweep of arrival rates (`gcsim serve`, docs/system.md "Serving").

The simulator is the one of a trace replay: the host port takes its work from the requests
(gcsim/serving/source.py) instead of a trace, so admission (a free K/V bank per request),
prefill on the host, the prompt's K/V written through the chip's writers and the decode
steps batched at the host all come out of the same components and resources.
"""
from __future__ import annotations

from ..sim import Simulator
from .metrics import per_request, serving_report
from .requests import poisson
from .source import RequestSource


def simulate(hw, requests) -> tuple[object, dict, list[dict]]:
    """Serve `requests` on `hw` (a description with a host device): (SimResult, the report,
    one row per request)."""
    res = Simulator(hw, RequestSource(hw, requests), values=False).run()
    return res, serving_report(res, len(requests)), per_request(res.served)


def rate_sweep(hw, rates, count: int, prompt, output, seed: int = 0, progress=None) -> list[dict]:
    """One serving run per arrival rate (requests/s; the same seed, so the lengths are the
    same at every rate): [{rate_per_s, report, requests}]."""
    out = []
    for rate in rates:
        _, rep, rows = simulate(hw, poisson(rate, count, prompt, output, seed))
        out.append({"rate_per_s": rate, "report": rep, "requests": rows})
        if progress is not None:
            progress()
    return out


def plot_rates(runs: list[dict], path, title: str = "") -> None:
    """TTFT and TPOT percentiles (p50, p90, p99) and the queueing delay against the arrival
    rate (matplotlib, the [plot] extra)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    rates = [r["rate_per_s"] for r in runs]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    for ax, key, label in zip(axes, ("ttft_ms", "tpot_ms", "queue_ms"),
                              ("time to first token (ms)", "time per output token (ms)", "queueing delay (ms)")):
        for i, p in enumerate(("p50", "p90", "p99")):
            ys = [r["report"][key].get(p) for r in runs]
            ax.plot(rates, ys, "o-", color=f"C{i}", label=p)
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel(label)
        if key == "ttft_ms":   # from a prefill to many: log; the others start at or near 0
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
