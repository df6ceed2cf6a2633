"""Scenario: short retention (tau 20 us) with and without refresh (models/stall-refresh.yaml).

Without refresh, a slot older than tau ln 2 = 13.9 us (18 tokens of 780 ns) is read with less
than half its value: counted as a lost read. Periodic refresh every 2 us rewrites every valid
slot (20 ns per sub-tile holding one), keeping every read young, at the price of refresh time
(steps reaching a layer during a refresh stall with cause `refresh`) and energy.
Run: python examples/stall_refresh.py
"""
import numpy as np

from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator
from gcsim.sim.refresh import summary

hw = load_hardware("stall-refresh")
s, T = hw.shape, 200
z = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
for policy in ("none", "periodic"):
    h = hw.derive(numerics={"retention": {"refresh": policy}})
    sim = Simulator(h, ArrayTrace(z, z, z), values=False)
    res = sim.run()
    rs = summary(sim)
    refresh_pj = sum(v["energy_pj"] for k, v in res.ledger.by_action().items() if ".refresh." in k)
    print(f"refresh {policy:8}: lost reads {rs['lost_reads']:7d} of {rs['slot_reads']} "
          f"({rs['lost_reads'] / rs['slot_reads']:.1%}), refreshes {rs['refreshes']}, "
          f"stall `refresh` {res.activity['sequences']['stall_causes_ps'].get('refresh', 0) / 1000:.0f} ns, "
          f"mean token {res.step_latency_ps().mean() / 1000:.1f} ns, refresh energy {refresh_pj / 1e3:.1f} nJ "
          f"of {res.ledger.total_pj() / 1e3:.1f} nJ, assumption violations {rs['assumption_violations']}")
# hand (none): per layer sum over t >= 18 of (t - 17) = 182 x 183 / 2 = 16653 reads, x 12 layers
print("hand (none):", 12 * sum(t - 17 for t in range(18, T)))
