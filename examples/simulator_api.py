# %% [markdown]
# # The simulator from Python (notebook style: each `# %%` is a cell)
#
# `gcsim.simulate(trace, hw)` replays a decode trace on a hardware description and returns a
# typed result: latency per token and layer, energy by component, action and paper item,
# stalls, outputs and area, with `.to_dict()` / `.to_json()`.
# Run as a script: `python examples/simulator_api.py` (tests/test_api.py runs it).

# %%
import numpy as np

import gcsim
from gcsim.resources import DEFAULT_TRACE
from gcsim.sim import ArrayTrace

res = gcsim.simulate(DEFAULT_TRACE, "smollm2")          # the shipped SmolLM2-135M trace
print(f"{res.hardware}: {res.steps} steps, scalers from the {res.calibration}")
print(f"latency per token {res.token_latency_ns.mean():.0f} ns, "
      f"per layer {res.layer_latency_ns.mean():.0f} ns, {res.throughput_tokens_per_s:,.0f} tokens/s")
print("energy per head and token by paper item (pJ):",
      {k: round(v, 1) for k, v in res.energy_by_paper_item_pj.items()})
print("stalls (ns, all units):", res.stalls_ns)
print("outputs", res.outputs.shape, "area", res.area)

# %% [markdown]
# An in-memory trace without scalers is calibrated from its own activations (the call says
# so in `res.calibration`); the paper's initial scalers must be asked for.

# %%
rng = np.random.default_rng(0)
T, L, H, d = 8, 12, 12, 64
q, k, v = rng.normal(0, 1, (T, L, H, d)), rng.normal(0, 1, (T, L, H, d)), rng.normal(0, 1, (T, L, H, d))
mine = ArrayTrace(q, k, v)
cal = gcsim.simulate(mine, "paper-gpt2")
dflt = gcsim.simulate(mine, "paper-gpt2", scalers="defaults")
print(f"{cal.calibration}: mean |out| {np.abs(cal.outputs).mean():.3f};  "
      f"{dflt.calibration}: mean |out| {np.abs(dflt.outputs).mean():.3f}")

# %% [markdown]
# A what-if: the window (any description field can be changed for one call, validated like a
# file). The window's cost shows once it is full, so this replays a synthetic GPT-2 trace
# longer than the 1,024-token window, timing-only (the counts do not depend on the values):
# a 256-token window has 4 sub-tiles instead of 16, a shallower adder tree (60 instead of
# 65 ns per layer; docs/cost-model.md) and reads a quarter of the K columns and V rows.

# %%
import tempfile
from pathlib import Path

from gcsim.traces import write_synthetic

with tempfile.TemporaryDirectory() as tmp:
    long = write_synthetic(Path(tmp) / "gpt2.gctrace", steps=1100, seed=0)   # 12 layers x 12 heads
    for window in (256, 1024):
        r = gcsim.simulate(long, "paper-gpt2", values=False, shape={"window": window})
        print(f"window {window:5d}: {r.layer_latency_ns.mean():.0f} ns per layer, "
              f"{r.energy_per_token_pj[-1] / 1000:.1f} nJ per token at a full window, "
              f"area {r.area['gain_cells_mm2']:.1f} mm2 of cells")

# %%
text = res.to_json()           # or res.to_json("result.json")
print(f"to_json: {len(text)} characters; keys {sorted(res.to_dict())[:6]}...")
