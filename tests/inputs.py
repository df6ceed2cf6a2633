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


def register_two_at_a_time(monkeypatch):
    """docs/architecture.md's example policy, registered for one test: two of the three query
    heads of a bank read it together (a bank with two sets of integrators)."""
    from gcsim.sim.policies import REGISTRY, register
    from gcsim.sim.policies.gqa import GQAMapping

    monkeypatch.setitem(REGISTRY, "gqa", dict(REGISTRY["gqa"]))

    @register("gqa", "two_at_a_time")
    class TwoAtATime(GQAMapping):
        PARAMS = {"width": (int, 2, (lambda v: v >= 1, ">= 1"))}

        def rounds(self):
            s = self.hw.shape
            heads = np.arange(s.heads)
            n = -(-s.group_size // self.width)
            return [heads[(heads % s.group_size) // self.width == r] for r in range(n)]
    return TwoAtATime
