import pytest

from gcsim import HardwareError, load_hardware
from gcsim.hardware import MODELS_DIR


def test_paper_model_values():
    hw = load_hardware("paper-gpt2")
    s = hw.shape
    assert (s.layers, s.heads, s.kv_heads, s.d_head, s.window, s.array_size) == (12, 12, 12, 64, 1024, 64)
    assert s.n_sub_tiles == 16
    n = hw.numerics
    assert (n.q_levels, n.kv_levels, n.out_levels) == (16, 8, 32)
    assert n.q_range == (0.0, 1.0) and n.kv_range_v == (0.0, 0.9)
    assert (n.s_sat, n.out_sat) == (80.0, 40.0)
    assert n.retention.tau_ns == 5e6
    assert hw.timing.t_max_ns == 15.0 and hw.timing.nominal_token_period_ns == 800.0
    assert hw.timing.clock_period_ps == 1000
    assert hw.timing.layer_ns == 65.0


def test_energy_table_adds_up_to_paper_items():
    # a full-window step of one head: 1024 K columns, 1024 V rows, 16 x 64 output columns,
    # 15 x 64 adds, 64 scaled outputs, 16 x 64 PWM row drives, 2 x 64 written cells,
    # 64 x 4 + 2 x 64 x 3 + 64 x 16 routed bits
    e = load_hardware().energy.actions_pj
    bits = 64 * 4 + 2 * 64 * 3 + 64 * 16
    assert 1024 * e["k_column_read"] == pytest.approx(1120)
    assert 1024 * e["v_row_read"] + 1024 * e["output_conversion"] == pytest.approx(700)
    digital = 960 * e["adder_tree_add"] + 64 * e["output_scaler"] + e["control"] + bits * load_hardware().energy.link_pj_per_bit
    assert digital == pytest.approx(4000)
    assert 1024 * e["q_pwm_drive"] + 128 * e["kv_write_dac"] == pytest.approx(330)


def test_derive_changes_a_copy():
    hw = load_hardware()
    off = hw.derive(numerics={"q_levels": None, "retention": {"mode": "off"}}, shape={"window": 256})
    assert off.numerics.q_levels is None and off.numerics.retention.mode == "off"
    assert off.shape.window == 256 and off.shape.n_sub_tiles == 4
    assert off.numerics.kv_levels == 8  # untouched fields stay
    assert hw.numerics.q_levels == 16   # the original is immutable
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        hw.shape.window = 5


def _write(tmp_path, text):
    base = (MODELS_DIR / "paper-gpt2.yaml").read_text()
    p = tmp_path / "bad.yaml"
    p.write_text(text(base))
    return p


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace("  layers: 12", "  layers: 12\n  lanes: 3"), "unknown field 'shape.lanes'"),
    (lambda s: s.replace("heads: 12\n  kv_heads", "heads: twelve\n  kv_heads"), "field 'shape.heads': expected an integer, found str 'twelve'"),
    (lambda s: s.replace("s_sat: 80.0", "s_sat: -80.0"), "field 'numerics.s_sat': value -80.0 is out of range (allowed 1e-06 <= x <= 1e+09 uA x T_max)"),
    (lambda s: s.replace("t_max_ns: 15.0", "t_max_ns: .inf"), "field 'timing.t_max_ns': expected a finite number, found float inf"),
    (lambda s: s.replace("q_levels: 16", "q_levels: 1"), "field 'numerics.q_levels': value 1 is out of range (allowed 2 <= x <= 65536 levels)"),
    (lambda s: s.replace("cell_law: cubic", "cell_law: quartic"), "field 'numerics.cell_law': expected one of ['linear', 'cubic'], found 'quartic'"),
    (lambda s: s.replace("kv_heads: 12", "kv_heads: 5"), "field 'shape.kv_heads': 5 does not divide heads = 12"),
    (lambda s: s.replace("    write: 5.0\n", ""), "missing ['write']"),
    (lambda s: s.replace("    write: 5.0", "    write: 5.5"), "not a whole number of clock cycles"),
    (lambda s: s.replace("q_range: [0.0, 1.0]", "q_range: [1.0, 0.0]"), "expected lo < hi"),
    (lambda s: s.replace("  layers: 12\n", ""), "missing required field 'shape.layers'"),
    (lambda s: s + "\n  : : [\n", "not valid YAML"),
])
def test_malformed_descriptions(tmp_path, edit, message):
    p = _write(tmp_path, edit)
    with pytest.raises(HardwareError) as err:
        load_hardware(p)
    assert str(p) in str(err.value)
    assert message in str(err.value)


def test_missing_model_lists_shipped_ones():
    with pytest.raises(HardwareError, match="not found; shipped models: .*paper-gpt2"):
        load_hardware("no-such-model")
