"""`gcsim profile` prints a summary per component kind by default, every layer with --by-layer."""
import json

from gcsim.cli import main as cli
from gcsim.traces import write_synthetic


def test_default_view_fits_a_screen_and_by_layer_has_every_component(tmp_path, capsys):
    assert cli(["profile", "--no-progress", "-o", str(tmp_path / "a")]) == 0
    summary = capsys.readouterr().out
    assert len(summary.splitlines()) < 40               # SmolLM2: 30 layers, was 213 rows
    assert "L00." not in summary and "\ntiles " in summary
    prof = json.loads((tmp_path / "a" / "profile.json").read_text())
    elapsed_us = prof["elapsed_ps"] / 1e6
    assert f"throughput {41 / (elapsed_us * 1e-6):,.0f} tokens/s" in summary  # 41 steps, 1 sequence
    # units summed over layers: 30 layers x 9 query heads of integrators
    row = next(line for line in summary.splitlines() if line.startswith("integrators "))
    assert row.split()[1] == str(30 * 9)
    assert cli(["profile", "--no-progress", "--by-layer", "-o", str(tmp_path / "b")]) == 0
    full = capsys.readouterr().out
    assert all(f"L{l:02d}.tiles" in full for l in range(30))


def test_several_sequences_get_their_own_latency_and_the_stall_cause(tmp_path, capsys):
    trace = tmp_path / "t.gctrace"
    write_synthetic(trace, layers=12, heads=12, kv_heads=12, d_head=64, steps=3, seed=1)
    assert cli(["profile", str(trace), "-m", "stall-multiseq", "--no-progress", "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    lines = {l.split("latency")[0].strip(): l for l in out.splitlines() if " latency " in l}
    assert [f"sequence {q}" in lines for q in range(4)] == [True] * 4
    # hand calculation: 4 sequences share each layer's periphery (65 ns per layer step), so at
    # step 0 sequence q enters layer 0 after q x 65 ns: its first token takes 12 x 65 + q x 65 ns;
    # once the pipeline is staggered, a token takes 12 x 65 = 780 ns
    for q in range(4):
        assert f"(780.0 .. {780 + 65 * q:.1f})" in lines[f"sequence {q}"]
    assert "sequences: layer busy (other sequence)" in out
    # the critical path is averaged over every step of all 4 sequences, and says so: 780 ns a
    # step, and 65 q ns more on sequence q's first: 780 + 65 x (0 + 1 + 2 + 3) / 12 = 812.5 ns
    assert "critical path, mean per step over all 4 sequences:" in out and "(sequence 0)" not in out
    assert next(l for l in out.splitlines() if "total (= mean step latency)" in l).split()[-2] == "812.5"
