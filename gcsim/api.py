"""The simulator as a Python function: `gcsim.simulate(trace, hw)` -> `SimulationResult`.

    import gcsim
    res = gcsim.simulate("traces/smollm2-135m-default.gctrace", "smollm2")
    res.token_latency_ns.mean(), res.energy_by_paper_item_pj, res.to_json("result.json")

Calibration is explicit. The per-head DAC scalers come from, in this order: `scalers=` when
given (a dict of arrays, or "calibrate" / "defaults"); otherwise the trace's own (every
.gctrace carries them); otherwise, for an in-memory trace without scalers, they are
calibrated from its activations (`gcsim.traces.calibrate`). The paper's initial scalers
(a = 1, b = 0 / 0.45) are used only when asked for with scalers="defaults".
`SimulationResult.calibration` says which one was used.

Built on the public simulator interface only (`Simulator`, `build_report`), so it returns
the same figures as `gcsim run`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .datapath import default_scalers
from .hardware import Hardware, load_hardware
from .outdir import check_json_output, write_json_output
from .provenance import provenance as _provenance
from .report import build_report
from .sim import ArrayTrace, SimError, Simulator
from .traces import open_trace
from .traces.calibrate import calibrate

CALIBRATIONS = ("trace", "calibrated", "defaults", "given")


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation gives. Times in ns, energies in pJ, areas in mm2.

    Arrays: `token_latency_ns` [sequences, steps]; `layer_latency_ns` [steps, layers]
    (sequence 0); `energy_per_token_pj` [steps] (per sequence); `outputs` [steps, layers,
    heads, d_head] of sequence 0, None in timing-only runs. `report` is the full report
    (schema gcsim.report/2, docs/report-schema.md), `raw` the simulator's own result.
    """
    hardware: str
    steps: int
    sequences: int
    calibration: str
    token_latency_ns: np.ndarray
    layer_latency_ns: np.ndarray
    throughput_tokens_per_s: float
    critical_path_ns_per_step: dict[str, float]
    energy_total_pj: float
    energy_per_token_pj: np.ndarray
    energy_by_component_pj: dict[str, float]
    energy_by_action_pj: dict[str, float]
    energy_by_paper_item_pj: dict[str, float]
    stalls_ns: dict[str, float]
    area: dict[str, float]
    outputs: np.ndarray | None
    provenance: dict
    report: dict = field(repr=False)
    raw: object = field(repr=False, default=None)

    def to_dict(self, outputs: bool = False) -> dict:
        """JSON-ready dict (arrays as lists); the outputs only when asked (they are large)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "raw" or (f.name == "outputs" and not outputs):
                continue
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def to_json(self, path: str | os.PathLike | None = None, *, outputs: bool = False,
                force: bool = False) -> str:
        """The result as JSON text; also written to `path` when given, by the rule of every
        gcsim output: a new file, or one this method wrote earlier (sealed with a checksum of
        its content), replaced atomically; any other existing file only with force=True
        (else UsageError, and nothing is written)."""
        data = self.to_dict(outputs=outputs)
        if path is not None:
            write_json_output(check_json_output(path, RESULT_KIND, "to_json(path)", force, what="a simulation result"),
                              data, RESULT_KIND)
        return json.dumps(data, indent=1, sort_keys=True)


RESULT_KIND = "simulation result"   # what SimulationResult.to_json seals its files as


def _resolve_trace(trace):
    if isinstance(trace, (str, os.PathLike)):
        return open_trace(trace)
    if not all(hasattr(trace, a) for a in ("q", "k", "v", "steps", "model")):
        raise SimError(f"trace: expected a .gctrace path, an open Trace or a gcsim.sim.ArrayTrace, "
                        f"found {type(trace).__name__}")
    return trace


def _with_scalers(trace, scalers, hw: Hardware):
    """(trace to simulate, calibration used) following the rule in the module docstring."""
    own = getattr(trace, "scalers", None)
    if scalers is None:
        if own is not None:
            return trace, "trace"
        scalers = "calibrate"
    s = hw.shape
    if isinstance(scalers, str):
        if scalers == "calibrate":
            n = hw.numerics
            new, _ = calibrate(trace.q, trace.k, trace.v, q_range=n.q_range, kv_range=n.kv_range_v)
            how = "calibrated"
        elif scalers == "defaults":
            new, how = default_scalers(s.layers, s.heads, s.kv_heads), "defaults"
        else:
            raise SimError(f"scalers: expected a dict, 'calibrate' or 'defaults', found {scalers!r:.100}")
    elif isinstance(scalers, dict):
        new, how = dict(scalers), "given"
    else:
        raise SimError(f"scalers: expected a dict, 'calibrate' or 'defaults', found {type(scalers).__name__}")
    return ArrayTrace(trace.q, trace.k, trace.v, scalers=new, model=dict(trace.model),
                      attn_out=getattr(trace, "attn_out", None)), how


def simulate(trace, hw: Hardware | str | os.PathLike = "smollm2", *, steps: int | None = None,
             values: bool = True, scalers: dict | str | None = None, progress: bool = False,
             **changes) -> SimulationResult:
    """Replay `trace` on the hardware `hw` and return a `SimulationResult`.

    trace: a .gctrace path, an open `gcsim.traces.Trace`, or a `gcsim.sim.ArrayTrace`
    (q [T, L, H, d], k, v [T, L, KV, d]). hw: a `Hardware`, a model name in models/ or a
    YAML path. steps: replay only the first N. values=False: timing and energy only.
    scalers: see the module docstring. `changes` are description fields to change for this
    call, e.g. `simulate(t, "paper-gpt2", shape={"window": 256})` (validated like a file).
    """
    if steps is not None and (type(steps) is not int or steps < 1):
        raise SimError(f"steps: expected a positive integer or None, found {steps!r:.100}")
    if not isinstance(values, bool):
        raise SimError(f"values: expected True or False, found {type(values).__name__}")
    hw = hw if isinstance(hw, Hardware) else load_hardware(hw)
    if changes:
        hw = hw.derive(**changes)
    original = _resolve_trace(trace)
    tr, how = _with_scalers(original, scalers, hw)
    s = hw.shape
    n_steps = tr.steps if steps is None else max(0, min(steps, tr.steps))
    outputs = np.zeros((n_steps, s.layers, s.heads, s.d_head), np.float32) if values and n_steps else None
    res = Simulator(hw, tr, values=values, steps=steps, outputs=outputs).run(progress=progress)
    prov = _provenance(hw=hw, trace=original, calibration=how)
    rep = build_report(res, values=values, provenance=prov,
                       trace_info={"path": str(getattr(original, "path", "")) or None, "steps": res.steps})
    n_seq = hw.periphery.sequences
    stalls: dict[str, float] = {}
    for kind, c in rep["activity"].items():
        for cause, ps in c["stall_causes_ps"].items():
            stalls[f"{kind}: {cause}"] = ps / 1000.0
    e = rep["energy"]
    return SimulationResult(
        hardware=hw.name, steps=res.steps, sequences=n_seq, calibration=how,
        token_latency_ns=np.stack([res.step_latency_ps(q) for q in range(n_seq)]) / 1000.0,
        layer_latency_ns=(res.layer_end_ps[0] - res.layer_start_ps[0]) / 1000.0,
        throughput_tokens_per_s=rep["time"]["throughput_tokens_per_s"],
        critical_path_ns_per_step=rep["time"]["critical_path_ns_per_step"],
        energy_total_pj=e["total_pj"], energy_per_token_pj=res.ledger.step_pj() / n_seq,
        energy_by_component_pj=e["by_component_pj"],
        energy_by_action_pj={a: row["energy_pj"] for a, row in e["by_action"].items()},
        energy_by_paper_item_pj={k: v["per_head_per_token_pj"] for k, v in e["paper_items"].items()},
        stalls_ns=stalls, area=rep["area"], outputs=outputs, provenance=prov, report=rep, raw=res)
