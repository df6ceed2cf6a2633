"""gcsim.budget: the per-step records are on disk for long runs (gcsim.streamio), so the memory
estimate counts only their resident rows and gives the rest as disk."""
import numpy as np
import pytest

from gcsim import budget, load_hardware, streamio
from gcsim.sim.engine import ArrayTrace, Simulator


def test_records_of_a_two_layer_gpt2_by_hand():
    """paper-gpt2, 2 layers, 1 sequence, per step: layer start, end, write, read 4 x 2 x 8 B,
    step end 8 B, critical path 16 x 8 B, energy counts and direct pJ 2 x 9 actions (8 in the
    table + link) x 8 B, layer-step sums 3 x 2 x 8 B = 64 + 8 + 128 + 144 + 48 = 392 B."""
    hw = load_hardware("paper-gpt2").derive(shape={"layers": 2})
    assert sum(budget.record_row_bytes(hw)) == 392
    resident_rows = 1024 + 2 * 4096   # streamio.RELEASE_STEPS + a chunk read back and its copy
    assert budget.record_bytes(hw, 1000) == (392_000, 0)   # every array below 256 KiB: in memory
    assert budget.record_bytes(hw, 100_000) == (392 * resident_rows, 39_200_000)
    # 20,000 steps: only the step ends (8 B x 20,000 = 160 kB) stay below 256 KiB
    assert budget.record_bytes(hw, 20_000) == (160_000 + 384 * resident_rows, 384 * 20_000)
    # the estimate: resident part only, ten million steps cost no more memory than 100,000
    parts = budget.simulator_memory(hw, 10_000_000, values=False)
    assert parts == {"per-step records (resident part)": (392 * resident_rows, parts[
        "per-step records (resident part)"][1])}


def _allocated(sim):
    arrays = [*sim.record.layer_start, *sim.record.layer_end, *sim.record.write, *sim.record.read,
              *sim.record.step_end, *sim.path._arrays, sim.energy._step_counts, sim.energy._step_direct,
              sim.energy._ls] + [t.read_charge_ua_tmax for t in sim.tiles if t.read_charge_ua_tmax is not None]
    on_disk = sum(a.nbytes for a in arrays if streamio._mmap_of(a) is not None)
    return sum(a.nbytes for a in arrays) - on_disk, on_disk


@pytest.mark.parametrize("model, changes, values", [
    ("paper-gpt2", {"shape": {"layers": 2}}, False),
    ("stall-multiseq", {"shape": {"layers": 3}}, False),
    ("paper-gpt2", {"shape": {"layers": 2, "window": 64}, "costs": {"array_read": "charge"}}, True),
    ("gpt2-two-chips", {"interconnect": {"edges": {"chip0_to_chip1": {"pj_per_bit": 1.0}}}}, False),
])
def test_estimate_is_what_a_simulator_allocates(model, changes, values):
    """Against the arrays a Simulator allocates (constructed, not run): all in
    memory at 100 steps; at 30,000 steps the same bytes, those from 256 KiB on on disk."""
    hw = load_hardware(model).derive(**changes)
    s = hw.shape
    for T in (100, 30_000):
        zeros = np.broadcast_to(np.zeros((), np.float16), (T, s.layers, s.heads, s.d_head))
        kv = np.broadcast_to(np.zeros((), np.float16), (T, s.layers, s.kv_heads, s.d_head))
        in_memory, on_disk = _allocated(Simulator(hw, ArrayTrace(zeros, kv, kv), values=values))
        resident, disk = budget.record_bytes(hw, T)
        assert in_memory + on_disk == sum(budget.record_row_bytes(hw)) * T
        assert on_disk == disk and (T == 100) == (disk == 0)
        if T == 100:
            assert resident == in_memory
