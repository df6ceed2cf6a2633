"""Quickstart: the Python API end to end on the shipped SmolLM2 trace.

1. load a hardware description and a trace;
2. replay the trace through the simulated chip: outputs, time, energy, stalls;
3. check one layer against the numeric reference model given the same ages;
4. compare the reference model's variants on one head.

Run from the repository root: python examples/quickstart.py
"""
from pathlib import Path

import numpy as np

import gcsim
from gcsim.reference import head_attention, layer_attention
from gcsim.report import build_report
from gcsim.sim import Simulator
from gcsim.traces import open_trace

ROOT = Path(__file__).resolve().parent.parent

hw = gcsim.load_hardware("smollm2")                      # models/smollm2.yaml
trace = open_trace(ROOT / "traces" / "smollm2-135m-default.gctrace")
s = hw.shape
print(f"{hw.name}: {s.layers} layers x {s.heads} query heads ({s.kv_heads} K/V banks), window {s.window}; "
      f"trace of {trace.steps} steps")

# 2. the simulator: functional outputs [steps, layers, heads, d] plus time and energy
outputs = np.zeros((trace.steps, s.layers, s.heads, s.d_head), np.float32)
res = Simulator(hw, trace, outputs=outputs).run()
rep = build_report(res)
print(f"token latency {rep['time']['token_latency_ns']['mean']:.0f} ns, "
      f"energy per token {rep['energy']['per_token_pj']['mean'] / 1000:.1f} nJ, "
      f"critical path per step: {rep['time']['critical_path_ns_per_step']}")

# 3. one layer against the reference model with the write and read times the chip saw
layer = 7
ref = layer_attention(trace.q[:, layer].astype(np.float32), trace.k[:, layer].astype(np.float32),
                      trace.v[:, layer].astype(np.float32), hw, scalers=trace.scalers, layer=layer,
                      write_times_ps=res.write_ps[0][:, layer], read_times_ps=res.read_ps[0][:, layer],
                      dtype=np.float32)
print(f"layer {layer}: max |simulator - reference| = {np.abs(outputs[:, layer] - ref.out).max():.2e} "
      f"(float32; `gcsim validate` does this exactly, in float64, for every layer and stage)")

# 4. the variants on one head (K/V bank 0 serves query heads 0, 1, 2)
q, k, v = (np.asarray(a[:, layer, 0], np.float64) for a in (trace.q, trace.k, trace.v))
sc = {key: float(val[layer, 0]) for key, val in trace.scalers.items()}
ideal = head_attention(q, k, v, hw, variant="softmax").out
n_valid = np.minimum(np.arange(trace.steps) + 1, s.window).sum()  # slots taking part, all steps
for variant in ("linear", "cubic"):
    st = head_attention(q, k, v, hw, variant=variant, scalers=sc)
    cos = np.sum(st.out * ideal, axis=1) / (np.linalg.norm(st.out, axis=1) * np.linalg.norm(ideal, axis=1) + 1e-30)
    print(f"{variant:>6}: phi saturated in {100 * (st.phi >= 1).sum() / n_valid:.1f}% and zero in "
          f"{100 * (1 - (st.phi > 0).sum() / n_valid):.1f}% of the slot reads, "
          f"mean cosine similarity with softmax {cos.mean():.3f}")
