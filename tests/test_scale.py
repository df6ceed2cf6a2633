"""The Llama-3-8B-sized description (models/llama3-8b.yaml): 32 layers x 32 query heads on
8 K/V banks, d_head 128 on 128 x 128 arrays, window 4096, runs timing-only and functional."""
import numpy as np
import pytest
from inputs import random_trace

from gcsim import load_hardware
from gcsim.commands.validate import validate
from gcsim.sim import Simulator


def test_llama_size_timing_by_hand():
    hw = load_hardware("llama3-8b")
    s = hw.shape
    assert (s.layers, s.heads, s.kv_heads, s.d_head, s.window, s.array_size) == (32, 32, 8, 128, 4096, 128)
    res = Simulator(hw, random_trace(hw, 3), values=False).run()
    # time-multiplexed GQA, 4 query heads per bank: 5 + 4 x (15 + 15 + 15) + 13 + 5 = 203 ns per
    # layer; the adder tree over 32 sub-tiles: 5 levels x 2.5 ns = 12.5 -> 13 whole cycles
    np.testing.assert_array_equal(res.step_latency_ps(), [32 * 203_000] * 3)
    assert hw.timing.nominal_token_period_ps == 32 * 203_000
    # the cost model doubles the read energy per K column / V row (128 cells instead of 64)
    from gcsim import costs
    assert costs.derive(hw).actions_pj["k_column_read"] == 2 * 1.09375


@pytest.mark.slow
def test_llama_size_functional_matches_the_reference():
    hw = load_hardware("llama3-8b")
    rep = validate(hw, random_trace(hw, 3, seed=5), stage_steps=3)
    assert rep["pass"]
    assert all(row["exact"]["code_mismatches"] == 0 for row in rep["layers"])
