"""What-if by description only: GPT-2 on two chips (layers 0-5 and 6-11) joined by one
chip-to-chip link, 10 ns and 512 Gbit/s each way (models/gpt2-two-chips.yaml:
`interconnect.nodes` and `interconnect.edges`).

A layer on chip1 moves its 7680 input bits host -> chip0 -> chip1 (15 ns + 10 ns on the
link) and its 12288 output bits back (24 ns + 10 ns): 65 + 59 = 124 ns; a token
6 x 65 + 6 x 124 = 1134 ns instead of 780. Run: python examples/whatif_two_chips.py
"""
import numpy as np

from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator

hw = load_hardware("gpt2-two-chips")
s, T = hw.shape, 4
z = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
res = Simulator(hw, ArrayTrace(z, z, z), values=False).run()
per_layer = (res.layer_end_ps[0][0] - res.layer_start_ps[0][0]) // 1000
print(f"layer step (ns): chip0 {sorted(set(per_layer[:6].tolist()))}, chip1 {sorted(set(per_layer[6:].tolist()))} (hand: 65, 124)")
print(f"token latency {res.step_latency_ps()[0] / 1000:.0f} ns (hand: 1134 ns; one chip: 780 ns)")
for name, c in res.activity.items():
    if name.startswith("link."):
        print(f"  {name:<22} busy {c['busy_ps'] / T / 1000:6.0f} ns per token")
