"""Random in-memory traces shaped like a hardware description, for simulator tests."""
import numpy as np

from gcsim.sim import ArrayTrace


def random_trace(hw, T, seed=0):
    """q around 0.4 (half the PWM range after the paper's default scalers), k and v around 0."""
    s = hw.shape
    rng = np.random.default_rng(seed)
    return ArrayTrace(rng.normal(0.4, 0.4, (T, s.layers, s.heads, s.d_head)),
                      rng.normal(0, 0.3, (T, s.layers, s.kv_heads, s.d_head)),
                      rng.normal(0, 0.3, (T, s.layers, s.kv_heads, s.d_head)))
