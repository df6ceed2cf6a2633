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

# GPU baselines: attention only, 12 heads, 1024-token KV cache, batch 64, dynamic power,
# per token (one layer of 12 heads).
GPUS = {
    "RTX 4090": {"latency_us": 22.37, "energy_mj": 7.178},
    "Jetson Nano": {"latency_us": 488.85, "energy_mj": 3.246},
}
# The paper's rounded claims from those baselines (speed-up, energy reduction).
CLAIMS = {"RTX 4090": (300, 90_000), "Jetson Nano": (7_000, 40_000)}
