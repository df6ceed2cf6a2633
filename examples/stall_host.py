"""Scenario: the host needs 200 ns per layer (models/stall-host.yaml).

A step takes 12 x (200 + 65) = 3180 ns instead of 780 ns; `sequences` is stalled with cause
`host compute` for 12 x 200 ns per step, and the critical path shows it. Because the stored
K/V age 3180 ns per token, they also leak more: with a short retention (tau 10 us here) the
outputs change. Run: python examples/stall_host.py
"""
import math

import numpy as np

from gcsim import load_hardware
from gcsim.profiling import format_profile
from gcsim.report import build_report
from gcsim.sim import ArrayTrace, Simulator

hw = load_hardware("stall-host")
s, T = hw.shape, 8
rng = np.random.default_rng(0)
trace = ArrayTrace(rng.normal(0.4, 0.4, (T, s.layers, s.heads, s.d_head)),
                   rng.normal(0, 0.3, (T, s.layers, s.kv_heads, s.d_head)),
                   rng.normal(0, 0.3, (T, s.layers, s.kv_heads, s.d_head)))
res = Simulator(hw, trace, values=False).run()
print(format_profile(build_report(res, values=False), res))
print(f"\nstep latency {res.step_latency_ps()[0] / 1000:.0f} ns (hand: 12 x (200 + 65) = 3180 ns); "
      f"host compute stall {res.activity['sequences']['stall_causes_ps']['host compute'] / 1000:.0f} ns "
      f"(hand: {T} x 12 x 200 = {T * 12 * 200} ns)")

# retention: the same trace with and without host time, tau = 10 us
tau_ns = 10_000.0
outs = {}
for host_ns in (0.0, 200.0):
    h = hw.derive(timing={"host_ns_per_layer": host_ns}, numerics={"retention": {"tau_ns": tau_ns}})
    outs[host_ns] = np.zeros((T, s.layers, s.heads, s.d_head))
    r = Simulator(h, trace, outputs=outs[host_ns]).run()
    age = (r.read_ps[0][1, 0] - r.write_ps[0][0, 0]) / 1000
    print(f"host {host_ns:5.0f} ns/layer: a slot read one token later is {age:.0f} ns old, "
          f"decay exp(-age/tau) = {math.exp(-age / tau_ns):.4f}")
diff = np.abs(outs[200.0] - outs[0.0]).max(axis=(1, 2, 3))
print("max |output difference| per step:", np.array2string(diff, precision=3))
