"""What-if by description only: the token writer writes the next sequence's k, v while the
current read is still running (models/overlap-write.yaml, `periphery.issue: overlap_write`).

16 sequences keep all 12 layers busy. Serial issue: a token leaves every 65 ns (the whole
layer step); overlapped writes leave the 60 ns read path (Q, V, count, adder tree,
routing) as the bottleneck: a token every 60 ns. Run: python examples/whatif_overlap_write.py
"""
import numpy as np

from gcsim import load_hardware
from gcsim.report import build_report
from gcsim.sim import ArrayTrace, Simulator

for name, issue, hand_ns in (("serial", "serial", 65), ("overlap-write", "overlap_write", 60)):
    hw = load_hardware("overlap-write").derive(periphery={"issue": issue})
    s, T = hw.shape, 6
    z = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
    res = Simulator(hw, ArrayTrace(z, z, z), values=False).run()
    ends = np.sort(np.concatenate(res.step_end_ps))
    gap = sorted(set(int(x) for x in np.diff(ends[16:]) // 1000))
    rate = build_report(res, values=False)["time"]["throughput_tokens_per_s"]
    print(f"{name:<14} steady state: a token every {gap} ns (hand: {hand_ns} ns); run throughput {rate / 1e6:.2f} M tokens/s")
