"""Scenario: a 64 Gbit/s bank-to-host link shared by 2 sequences (models/stall-link.yaml).

One layer's outputs (12 heads x 64 x 16 bits = 12288 bits) take 192 ns on the link. Alone, a
layer step takes 65 + 192 = 257 ns; with two sequences the single link is the bottleneck:
2 x 12 x 192 = 4608 ns per step of each sequence, of which 12 x 127 ns wait for the link
(stall `link.bank_to_host`). Run: python examples/stall_link.py
"""
import numpy as np

from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator

hw = load_hardware("stall-link")
s, T = hw.shape, 6
z = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
for n in (1, 2):
    res = Simulator(hw.derive(periphery={"sequences": n}), ArrayTrace(z, z, z), values=False).run()
    link = res.activity["link.bank_to_host"]
    # the steady state: the last step (the first one of the second sequence starts mid-pipeline)
    last = {c: int(res.path.per_step[0][-1, i]) // 1000 for c, i in res.path.categories.items()}
    print(f"{n} sequence(s): step latencies (ns) {[int(x) // 1000 for x in res.step_latency_ps(0)]}, "
          f"link utilisation {link['utilisation']:.1%}; steady-state step (the last): link "
          f"{last.get('link.bank_to_host', 0)} ns, waiting for it {last.get('stall:link.bank_to_host', 0)} ns")
print("hand, steady state: 1 sequence 12 x 257 = 3084 ns per step, no wait; 2 sequences 4608 ns per step, "
      "12 x 127 = 1524 ns of it waiting for the link")
