"""The witness's host: what the host computes before each layer's attention and once per step
after the last layer, for a batch of n sequences, written from docs/system.md ("The
roofline") apart from gcsim/system/ (it shares only the description loader, which resolves
`host.device` to its figures).

Without a host device the host takes `timing.host_ns_per_layer` before each layer and does
nothing after the last. With one, each kernel takes

    round((max(FLOPs / (peak x compute_efficiency), bytes / (bandwidth x memory_efficiency))) x 1e12) ps
    + the launch overhead

b bytes per element; at n rows a product [n, K] x [K, N] is 2 n K N FLOPs and b (K N + n K +
n N) bytes, an elementwise kernel reads and writes each operand element once:

  before a layer (7): add+norm (n D elements read twice, written twice, D weights; 5 FLOPs
    each), QKV (K = D, N = (H + 2 KV) d), out (K = H d, N = D), add+norm, up (K = D, N = F,
    2 F when gated), activation (gated: n F x 2 read + 1 written, 5 FLOPs each; plain: 1 + 1,
    8 FLOPs), down (K = F, N = D);
  after the last layer (4): embedding (n D read and written, no FLOPs), add+norm, LM head
    (K = D, N = vocab), sampling (n vocab read, 1 FLOP each).

`timing.host_ns_per_layer` above 0 replaces the time before a layer (not its counts). The
energy actions of a batch: `host_busy` its ps, `host_flop`, `host_byte` its counts.
"""
from __future__ import annotations

from ..hardware import PS_PER_NS
from ..system.device import host_device


class Host:
    def __init__(self, hw):
        self.hw = hw
        self.device = host_device(hw)
        self.fixed_ps = round(hw.timing.host_ns_per_layer * PS_PER_NS)
        self._memo: dict = {}

    @property
    def works(self) -> bool:
        return self.device is not None or self.fixed_ps > 0

    def before_layer(self, n: int) -> tuple[int, int, int]:
        """(ps, FLOPs, bytes) of the work before a layer for n sequences."""
        if self.device is None:
            return self.fixed_ps, 0, 0
        ps, flops, nbytes = self._kernels("layer", n)
        return self.fixed_ps or ps, flops, nbytes

    def after_step(self, n: int) -> tuple[int, int, int]:
        """(ps, FLOPs, bytes) of the work after the last layer for n sequences (0: none)."""
        if self.device is None:
            return 0, 0, 0
        return self._kernels("step", n)

    def _kernels(self, which: str, n: int) -> tuple[int, int, int]:
        key = (which, n)
        if key not in self._memo:
            s, dev = self.hw.shape, self.device
            b = dev.bytes_per_element
            D, F, V = s.d_model, s.d_ff, s.vocab
            q, kv = s.heads * s.d_head, s.kv_heads * s.d_head
            norm = (5 * n * D, b * (4 * n * D + D))
            if which == "layer":
                mats = [(D, q + 2 * kv), (q, D), (D, (2 if s.mlp == "gated" else 1) * F), (F, D)]
                act = (5 * n * F, 3 * b * n * F) if s.mlp == "gated" else (8 * n * F, 2 * b * n * F)
                kernels = [(2 * n * k * m, b * (k * m + n * k + n * m)) for k, m in mats] + [norm, norm, act]
            else:
                kernels = [(0, 2 * b * n * D), norm, (2 * n * D * V, b * (D * V + n * D + n * V)), (n * V, b * n * V)]
            flop_rate = dev.peak_flop_per_s * dev.compute_efficiency
            byte_rate = dev.memory_byte_per_s * dev.memory_efficiency
            ps = sum(round(max(f / flop_rate, m / byte_rate) * 1e12) + dev.launch_overhead_ps for f, m in kernels)
            self._memo[key] = (ps, sum(f for f, _ in kernels), sum(m for _, m in kernels))
        return self._memo[key]
