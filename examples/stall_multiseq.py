"""Scenario: four sequences in flight (models/stall-multiseq.yaml).

The sequences are pipelined through the 12 layers (each layer serves one sequence's layer
step at a time). They start together, so sequence s waits s x 65 ns at layer 0 (stall `layer
busy (other sequence)`), then run staggered: 4 tokens per 780 ns = 5.13 M tokens/s against
1.28 M tokens/s for one stream, each token still 780 ns. From 12 sequences on every layer is
busy all the time: one token per 65 ns (15.4 M tokens/s). Run: python examples/stall_multiseq.py
"""
import numpy as np

from gcsim import load_hardware
from gcsim.report import build_report
from gcsim.sim import ArrayTrace, Simulator

hw = load_hardware("stall-multiseq")
s, T = hw.shape, 20
z = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
print(f"{'sequences':>9} {'token latency ns':>17} {'steady tokens/s':>16} {'whole-run tokens/s':>19} {'wait ns/step':>13}")
for n in (1, 2, 4, 8, 12, 16):
    res = Simulator(hw.derive(periphery={"sequences": n}), ArrayTrace(z, z, z), values=False).run()
    rep = build_report(res, values=False)
    lat = res.step_latency_ps(0)[-1] / 1000
    ends = np.sort(np.concatenate(res.step_end_ps))
    steady = n / ((ends[-1] - ends[-1 - n]) * 1e-12)  # the last n tokens
    wait = res.activity["sequences"]["stalled_ps"] / (n * T) / 1000
    print(f"{n:9d} {lat:17.0f} {steady:16.4g} {rep['time']['throughput_tokens_per_s']:19.4g} {wait:13.1f}")
print("hand: steady throughput min(n, 12) / 780 ns; token latency max(780, n x 65) ns")
