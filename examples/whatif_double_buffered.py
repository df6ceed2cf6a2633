"""What-if by description only: double-buffered output counters on SmolLM2
(models/smollm2-double-buffered.yaml, `periphery.counters: double_buffered`).

Time-multiplexed GQA (3 query heads per K/V bank): with single counters a round holds the
bank through its count, 5 + 3 x 45 + 10 + 5 = 155 ns per layer; with a second buffer the
next round's Q and V phases overlap the current count: 5 + 3 x 30 + 15 + 10 + 5 = 125 ns.
Run: python examples/whatif_double_buffered.py
"""
import numpy as np

from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator

for name, hand_ns in (("smollm2", 155), ("smollm2-double-buffered", 125)):
    hw = load_hardware(name)
    s, T = hw.shape, 4
    q = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
    kv = np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float16)
    res = Simulator(hw, ArrayTrace(q, kv, kv), values=False).run()
    layer_ns = int(res.step_latency_ps()[0]) // s.layers / 1000
    print(f"{name:<24} layer step {layer_ns:.0f} ns (hand: {hand_ns} ns), token {res.step_latency_ps()[0] / 1e6:.2f} us, "
          f"energy {res.ledger.total_pj() / T / 1e3:.1f} nJ per token")
