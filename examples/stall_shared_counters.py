"""Scenario: output counters shared by 3 heads (models/stall-shared-counters.yaml).

12 heads on 4 counter sets are counted in 3 turns: a layer step takes 65 + 2 x 15 = 95 ns.
Heads 1,4,7,10 wait 15 ns and heads 2,5,8,11 wait 30 ns per layer step (stall `output
counters shared` on Lxx.integrators). Run: python examples/stall_shared_counters.py
"""
import numpy as np

from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator

hw = load_hardware("stall-shared-counters")
s, T = hw.shape, 10
z = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
res = Simulator(hw, ArrayTrace(z, z, z), values=False).run()
print(f"step latency {res.step_latency_ps()[0] / 1000:.0f} ns (hand: 12 x 95 = 1140 ns)")
integ = res.activity["L00.integrators"]
print("L00.integrators stall per head (ns):", [v // 1000 for v in integ["per_unit"]["stalled_ps"]],
      f"(hand: {T} steps x 0/15/30 ns)")
print("L00.counters utilisation: {:.1%} (hand: each set counts 3 x 15 = 45 ns per 1140 ns step = {:.1%})".format(
    res.activity["L00.counters"]["utilisation"], 45 / 1140))
for n in (2, 4):
    r = Simulator(hw.derive(periphery={"counters_shared_by": n}), ArrayTrace(z, z, z), values=False).run()
    print(f"shared by {n}: layer step {r.step_latency_ps()[0] / 12000:.0f} ns (hand: 65 + {n - 1} x 15)")
