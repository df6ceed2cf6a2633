"""Published figures of Leroux et al., Nat. Comput. Sci. 5, 813-824 (2025) (docs/paper-model.md
section 3): the calibration targets of models/paper-gpt2.yaml and the GPU baselines."""

# Per token, per head, full window (M = 1024 written), pJ.
ITEMS_PJ = {"phi_qk": 1120.0, "phi_v": 700.0, "digital_routing": 4000.0, "dacs": 330.0}
ITEM_LABELS = {"phi_qk": "phi(Q.K^T): K arrays, integration, charge-to-pulse",
               "phi_v": "phi(S).V: V arrays, output conversion",
               "digital_routing": "digital and routing",
               "dacs": "DACs (query PWM drivers, K/V write DACs)"}
HEAD_TOTAL_PJ = 6150.0
LAYER_NJ = 73.8            # 12 heads
LAYER_NS = 65.0            # per token per layer, all heads in parallel
TOKEN_US = 0.78            # 12 layers
TOKEN_UJ = 0.89            # attention energy per generated token, 12 layers (approx.)

# How precisely the paper states each figure above: half a unit of its last digit, so that a
# figure within it rounds to the published one. `gcsim paper` exits 1 when a simulated figure
# is further from the paper's (its own --tolerance replaces these with a relative bound).
TOLERANCE = {"layer_ns": 0.5, "layer_cycles": 0.5, "token_us": 0.005, "phi_qk": 0.5, "phi_v": 0.5,
             "digital_routing": 0.5, "dacs": 0.5, "head_total_pj": 0.5, "layer_nj": 0.05, "token_uj": 0.005}

# GPU baselines: attention only, 12 heads, 1024-token KV cache, batch 64, dynamic power,
# per token (one layer of 12 heads).
GPUS = {
    "RTX 4090": {"latency_us": 22.37, "energy_mj": 7.178},
    "Jetson Nano": {"latency_us": 488.85, "energy_mj": 3.246},
}
# The paper's rounded claims from those baselines (speed-up, energy reduction).
CLAIMS = {"RTX 4090": (300, 90_000), "Jetson Nano": (7_000, 40_000)}
