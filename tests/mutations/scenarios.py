"""What the harness runs `gcsim validate` on: every shipped description (models/*.yaml) and a
few documented scenarios that the shipped files do not cover (docs/simulator.md), each with a
synthetic trace of its shape for a few steps (enough for a refresh, several sequences meeting
on a shared resource, and a lost read where retention loses values)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STEPS = 8
# (name, model, --set overrides, steps)
EXTRA = [
    ("smollm2 pipelined, V phase 20 ns", "smollm2", ["periphery.gqa_mapping=pipelined", "timing.phases_ns.v_phase=20.0"], 4),
    ("smollm2 replicated, refresh every 2 us", "smollm2",
     ["periphery.gqa_mapping=replicated", "numerics.retention.tau_ns=2.0e+5", "numerics.retention.refresh=periodic",
      "numerics.retention.refresh_interval_ns=2000.0", "numerics.retention.refresh_ns_per_subtile=20.0"], 4),
    ("periphery shared by 2 layers, 2 sequences, switch 3 cycles", "paper-gpt2",
     ["periphery.counters_shared_by_layers=2", "periphery.sequences=2", "periphery.switch_cycles=3"], 4),
    ("shared counters, switch 2 cycles", "stall-shared-counters", ["periphery.switch_cycles=2"], 3),
    ("stall-refresh without refresh", "stall-refresh", ["numerics.retention.refresh=none"], 24),
    ("stall-refresh, 3 sequences", "stall-refresh", ["periphery.sequences=3"], 8),
    ("static power", "paper-gpt2", ["energy.static_mw={chip: 5.0}"], 3),
    ("two chips, link capacity 1, 3 sequences", "gpt2-two-chips",   # 3: a message waits behind 2 in flight
     ["interconnect.edges.chip0_to_chip1.capacity=1", "interconnect.edges.chip0_to_chip1.gbps=64.0",
      "periphery.sequences=3"], 3),
]
FEWER_STEPS = {"llama3-8b": 3}   # the largest description: a few steps say as much


def scenarios(root: Path = ROOT) -> list[tuple[str, str, list[str], int]]:
    shipped = sorted(p.stem for p in (root / "models").glob("*.yaml"))
    return [(m, m, [], FEWER_STEPS.get(m, STEPS)) for m in shipped] + EXTRA
