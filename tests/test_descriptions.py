"""Descriptions: the safe YAML loader, physical ranges, whole picoseconds, the budget checks,
model-name resolution, `extends:` and `gcsim describe` (issue 11 point 3, issue 12 point 6)."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gcsim import HardwareError, SimError, load_hardware
from gcsim.cli import main as cli
from gcsim.commands.describe import format_fields
from gcsim.hardware import MODELS_DIR, from_dict, parse_overrides, to_dict
from gcsim.sim import ArrayTrace, Simulator

ROOT = Path(__file__).resolve().parent.parent
PAPER = (MODELS_DIR / "paper-gpt2.yaml").read_text()


def write(tmp_path, text, name="d.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# --- the safe loader --------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    (PAPER.replace("  heads: 12\n", "  heads: 12\n  heads: 6\n", 1), "line 13: duplicate key 'heads' (first at line 12)"),
    (PAPER + "\n? [1, 2]\n: 3\n", "a mapping key must be a plain value"),
    ("name: x\nshape: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 32 levels"),
    (PAPER + "\nunknown_top: 1\n", "unknown field 'unknown_top'"),
    (PAPER + "\n  : : [\n", "not valid YAML: line"),
])
def test_bad_yaml_is_one_clear_error(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(HardwareError) as err:
        load_hardware(p)
    assert str(p) in str(err.value) and message in str(err.value)


def test_billion_laughs_is_refused_quickly(tmp_path):
    lines = ["name: x", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    p = write(tmp_path, "\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(HardwareError, match="more than 100000 values once its aliases are expanded"):
        load_hardware(p)
    assert time.perf_counter() - t0 < 5  # it used to take 45 s and 3 GB


def test_oversized_file_is_refused(tmp_path):
    p = write(tmp_path, PAPER + "#" * (1 << 20))
    with pytest.raises(HardwareError, match="more than the 1 MiB gcsim reads as a hardware description"):
        load_hardware(p)


def test_a_file_that_is_not_a_description_is_never_quoted(tmp_path):
    secret = "root:$6$S3cr3tHash$abcdef:19000:0:99999:7:::"
    p = write(tmp_path, secret + "\nbin:*:19000:0:99999:7:::\n", "shadow")
    for arg in (p, str(p)):
        with pytest.raises(HardwareError) as err:
            load_hardware(arg)
        assert "S3cr3t" not in str(err.value) and "not a gcsim hardware description" in str(err.value)
    p2 = write(tmp_path, "password: S3cr3t\n", "conf.yaml")  # a YAML mapping, but not a description
    with pytest.raises(HardwareError) as err:
        load_hardware(p2)
    assert "S3cr3t" not in str(err.value) and "password" not in str(err.value)
    p3 = write(tmp_path, "S3cr3t: [ unclosed\n", "bad.yaml")  # a YAML error quotes nothing either
    with pytest.raises(HardwareError) as err:
        load_hardware(p3)
    assert "S3cr3t" not in str(err.value)


# --- ranges and times -------------------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("timing.clock_mhz=1e7", "field 'timing.clock_mhz': value 10000000.0 is out of range (allowed 0.001 <= x <= 1000000 MHz)"),
    ("numerics.s_sat=1e-308", "field 'numerics.s_sat': value 1e-308 is out of range (allowed 1e-06 <= x <= 1e+09 uA x T_max)"),
    ("numerics.q_range=[-1e308, 1e308]", "field 'numerics.q_range[0]': value -1e+308 is out of range (allowed 0 <= x <= 1 fraction of T_max)"),
    ("energy.static_mw.chip=-2", "field 'energy.static_mw.chip': value -2.0 is out of range (allowed 0 <= x <= 1e+09 mW)"),
    ("energy.static_mw.chip=.inf", "field 'energy.static_mw.chip': expected a finite number, found float inf"),
    ("timing.phases_ns.write=0.0004", "field 'timing.phases_ns.write': 0.0004 ns is not a whole number of picoseconds"),
    ("timing.host_ns_per_layer=0.5005", "field 'timing.host_ns_per_layer': 0.5005 ns is not a whole number of picoseconds"),
    ("numerics.retention.refresh_interval_ns=0.0001", "field 'numerics.retention.refresh_interval_ns': 0.0001 ns is not a whole number"),
    ("interconnect.links.bank_to_host.gbps=1e-300", "field 'interconnect.links.bank_to_host.gbps': value 1e-300 is out of range"),
    ("interconnect.out_bits=100000000000000000000", "field 'interconnect.out_bits': value 100000000000000000000 is out of range (allowed 1 <= x <= 64 bits)"),
    ("timing.nominal_token_period_ns=0", "field 'timing.nominal_token_period_ns': value 0.0 is out of range (allowed 0 < x"),
    ("shape.window={a: [1, 2]}", "field 'shape.window': expected an integer, found dict {'a': [1, 2]}"),
    ("numerics.cell_law=[1, 2]", "field 'numerics.cell_law': expected a string, found list [1, 2]"),
    ("timing.phases_ns={write: 0, q_phase: 0, v_phase: 0, output_count: 0, adder_tree: 0, routing: 0}",
     "the phases add up to 0 ns"),
])
def test_out_of_range_values_name_field_value_and_range(override, message):
    with pytest.raises(HardwareError) as err:
        load_hardware().derive(**parse_overrides([override]))
    assert "paper-gpt2.yaml" in str(err.value) and message in str(err.value)


def test_set_conflicts_are_errors_not_tracebacks(capsys):
    with pytest.raises(HardwareError, match="'shape' is already set to a value by an earlier --set"):
        parse_overrides(["shape=1", "shape.window=256"])
    with pytest.raises(HardwareError, match="set twice"):
        parse_overrides(["shape.window=256", "shape=1"])
    assert cli(["run", "--steps", "1", "-s", "shape=1", "-s", "shape.window=256"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_integer_picoseconds_cannot_overflow():
    hw = load_hardware().derive(shape={"layers": 2, "heads": 2, "kv_heads": 2, "d_head": 8, "window": 16,
                                       "array_size": 8}, timing={"host_ns_per_layer": 1e12})
    trace = ArrayTrace(*(__import__("numpy").zeros((3, 2, 2, 8)) for _ in range(3)))
    Simulator(hw, trace, values=False).run()  # 3 steps x 2 layers x 1000 s: fits
    import numpy as np
    long = ArrayTrace(np.zeros((3_000_000, 2, 2, 8), np.float16), np.zeros((3_000_000, 2, 2, 8), np.float16),
                      np.zeros((3_000_000, 2, 2, 8), np.float16))
    with pytest.raises(SimError, match=r"simulated time could reach .* past what integer picoseconds hold"):
        Simulator(hw, long, values=False)


def test_memory_is_estimated_before_allocating(capsys):
    hw = load_hardware().derive(shape={"window": 1 << 24}, periphery={"sequences": 4096})
    trace = ArrayTrace(*(__import__("numpy").zeros((2, 12, 12, 64), "float16") for _ in range(3)))
    with pytest.raises(SimError, match=r"the largest part, K/V state, is periphery.sequences x shape.layers x "
                                       r"shape.kv_heads x shape.window x shape.d_head = [0-9.]+ PiB"):
        Simulator(hw, trace)
    assert cli(["run", "--steps", "1", "-s", "shape.window=1048576", "-s", "periphery.sequences=4096"]) == 2
    assert "TiB of memory" in capsys.readouterr().err


# --- model names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("../../etc/passwd", "hardware description not found"),       # a path (it has a /), relative to cwd
    ("..", "is not a model name"),
    ("paper gpt2", "is not a model name"),
    (None, "found NoneType None"),
    (12, "found int 12"),
])
def test_model_names_resolve_only_in_models(name, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)        # '../../etc/passwd' must not depend on where the suite runs
    with pytest.raises(HardwareError, match=message):
        load_hardware(name)


def test_a_path_to_a_foreign_file_is_refused_without_quoting_it():
    with pytest.raises(HardwareError) as err:
        load_hardware("/etc/passwd")
    assert "not a gcsim hardware description" in str(err.value) and "root:" not in str(err.value)


def test_names_never_leave_the_models_folder(tmp_path, monkeypatch):
    (tmp_path / "evil.yaml").write_text(PAPER)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HardwareError, match="not found; shipped models"):
        load_hardware("evil")                          # a bare name is never a file in the cwd
    assert load_hardware("./evil.yaml").name == "paper-gpt2"  # an explicit path is


# --- extends ----------------------------------------------------------------------------------

def test_stall_scenarios_extend_the_paper_model_and_resolve_to_the_same_values():
    base = to_dict(load_hardware("paper-gpt2"))
    changed = {"stall-host": {("timing", "host_ns_per_layer"): 200.0, ("timing", "nominal_token_period_ns"): 3180.0},
               "stall-multiseq": {("periphery", "sequences"): 4},
               "stall-shared-counters": {("periphery", "counters_shared_by"): 3,
                                         ("timing", "nominal_token_period_ns"): 1140.0}}
    for name, diffs in changed.items():
        text = (MODELS_DIR / f"{name}.yaml").read_text()
        assert "extends: paper-gpt2" in text and len(text.splitlines()) < 30
        got = to_dict(load_hardware(name))
        for (section, key), value in diffs.items():
            assert got[section][key] == value
            got[section][key] = base[section][key]
        assert {k: v for k, v in got.items() if k not in ("name", "description", "source")} == \
               {k: v for k, v in base.items() if k not in ("name", "description", "source")}
    link = load_hardware("stall-link")
    assert link.interconnect.links["bank_to_host"].gbps == 64.0 and link.periphery.sequences == 2
    assert link.interconnect.links["host_to_controller"].gbps == 0.0


def test_extends_merges_then_validates_the_whole(tmp_path):
    write(tmp_path, "extends: paper-gpt2\nname: mine\nshape: {window: 256}\n", "mine.yaml")
    hw = load_hardware(tmp_path / "mine.yaml")
    assert hw.name == "mine" and hw.shape.window == 256 and hw.shape.layers == 12 and hw.shape.n_sub_tiles == 4
    write(tmp_path, "extends: mine.yaml\nname: child\nnumerics: {retention: {mode: 'off'}}\n", "child.yaml")
    child = load_hardware(tmp_path / "child.yaml")  # a chain; the base path is relative to the file
    assert child.shape.window == 256 and child.numerics.retention.mode == "off"
    assert child.numerics.retention.tau_ns == 5e6
    write(tmp_path, "extends: paper-gpt2\nname: bad\nshape: {window: 100}\n", "bad.yaml")
    with pytest.raises(HardwareError, match="field 'shape.window': 100 is not a multiple of array_size = 64"):
        load_hardware(tmp_path / "bad.yaml")
    write(tmp_path, "extends: b.yaml\nname: a\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\nname: b\n", "b.yaml")
    with pytest.raises(HardwareError, match="loops back"):
        load_hardware(tmp_path / "a.yaml")
    write(tmp_path, "extends: [paper-gpt2]\nname: c\n", "c.yaml")
    with pytest.raises(HardwareError, match="field 'extends': expected a model name or a path, found list"):
        load_hardware(tmp_path / "c.yaml")
    write(tmp_path, "extends: paper-gpt2\nname: d\nshape: {lanes: 2}\n", "d.yaml")
    with pytest.raises(HardwareError, match="unknown field 'shape.lanes'"):
        load_hardware(tmp_path / "d.yaml")


# --- gcsim describe ---------------------------------------------------------------------------

def test_describe_prints_the_resolved_description(capsys):
    assert cli(["describe", "stall-multiseq", "--set", "shape.window=512"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# resolved from ") and "extends" in out.splitlines()[0]
    data = yaml.safe_load(out)
    assert "extends" not in data and data["periphery"]["sequences"] == 4 and data["shape"]["window"] == 512
    assert to_dict(from_dict(data)) | {"source": None} == \
        to_dict(load_hardware("stall-multiseq").derive(shape={"window": 512})) | {"source": None}


def test_describe_fields_lists_every_validated_field_and_docs_are_current(capsys):
    assert cli(["describe", "--fields"]) == 0
    out = capsys.readouterr().out
    assert "numerics.s_sat" in out and "1e-06 <= x <= 1e+09 uA x T_max" in out and "80.0" in out
    assert "timing.phases_ns" in out and "whole ps" in out
    # every leaf of a resolved description appears in the reference
    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("phases_ns", "actions_pj", "static_mw", "items", "links"):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"
    data = to_dict(load_hardware())
    data.pop("source")
    for leaf in leaves(data):
        assert f"\n{leaf} " in out, leaf
    doc = (ROOT / "docs" / "description-fields.md").read_text()
    assert format_fields(markdown=True) in doc, "regenerate: gcsim describe --fields --markdown"


def test_python_m_gcsim_describe_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import sys; from gcsim.cli import main; sys.exit(main())",
                           "describe", "paper-gpt2"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "name: paper-gpt2" in proc.stdout


def test_set_field_names_are_plain_and_errors_stay_on_one_line(capsys):
    # found by the nightly fuzz run: a carriage return in the field name split the error line
    with pytest.raises(HardwareError, match="FIELD a dotted field name"):
        parse_overrides(["\r=1"])
    assert cli(["describe", "paper-gpt2", "--set", "shape.\nwindow=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\\n" in err


def test_a_description_path_that_is_not_a_regular_file(tmp_path):
    with pytest.raises(HardwareError, match="not a regular file"):
        load_hardware(tmp_path)                       # a directory
    import os
    fifo = tmp_path / "d.yaml"
    os.mkfifo(fifo)
    with pytest.raises(HardwareError, match="not a regular file"):
        load_hardware(fifo)                           # a FIFO: refused, not read (it would block)
