"""Random in-memory inputs for tests: traces shaped like a hardware description, and an
untrained chip model whose attention matters."""
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


def strong_chip_params(attention="cubic", seed=3):
    """(params, config, vocabulary) of an untrained chip GPT with its weights scaled up (x20)
    and its scalers jittered, so that its attention matters."""
    from gcsim.chipmodel import data
    from gcsim.chipmodel.model import ModelConfig, init_params
    vocab = data.vocabulary(data.read_corpus())
    cfg = ModelConfig(vocab=len(vocab), attention=attention)
    p = init_params(cfg, seed)
    rng = np.random.default_rng(1)
    for k in p:
        if k[:2] in ("a_", "b_"):
            p[k] = (p[k] + rng.normal(0, 0.05, p[k].shape)).astype(np.float32)
        elif ".w_" in k:
            p[k] = p[k] * 20
    return p, cfg, vocab
