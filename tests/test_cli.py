"""Command-line behaviour shared by the subcommands: --set overrides, `gcsim reference`,
help text."""
import json
from pathlib import Path

import numpy as np
import pytest

from gcsim import load_hardware
from gcsim.cli import main as cli
from gcsim.commands.common import overrides
from gcsim.reference import layer_attention
from gcsim.traces import open_trace

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "traces" / "smollm2-135m-default.gctrace"


def test_overrides_parse_nested_yaml_values():
    assert overrides(["numerics.q_levels=null", "shape.window=256", "numerics.retention.mode=off",
                      "numerics.retention.tau_ns=1.0e+3"]) == {
        "numerics": {"q_levels": None, "retention": {"mode": False, "tau_ns": 1000.0}}, "shape": {"window": 256}}
    # YAML 1.1 reads `off` as a boolean: the description accepts it for the mode field
    hw = load_hardware().derive(**overrides(["numerics.retention.mode=off"]))
    assert hw.numerics.retention.mode == "off"


@pytest.mark.parametrize("arg, message", [
    ("foo", "--set: expected FIELD=VALUE"),
    ("numerics.q_levels=3x", "field 'numerics.q_levels': expected an integer, found str '3x'"),
    ("numerix.q=1", "unknown field 'numerix'"),
])
def test_bad_overrides(arg, message, tmp_path, capsys):
    assert cli(["run", "-s", arg, "-o", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_reference_command_writes_the_reference_outputs(tmp_path):
    out = tmp_path / "ref"
    assert cli(["reference", "--variant", "linear", "--steps", "12", "-s", "numerics.retention.mode=off",
                "-o", str(out)]) == 0
    got = np.load(out / "outputs.npy")
    hw = load_hardware("smollm2").derive(numerics={"retention": {"mode": "off"}})
    tr = open_trace(SHIPPED)
    for layer in (0, 17):
        want = layer_attention(np.asarray(tr.q[:12, layer], np.float64), np.asarray(tr.k[:12, layer], np.float64),
                               np.asarray(tr.v[:12, layer], np.float64), hw, variant="linear",
                               scalers=tr.scalers, layer=layer).out
        np.testing.assert_array_equal(got[:, layer], want.astype(np.float32))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variant"] == "linear" and len(summary["layers"]) == 30
    assert all(0 <= r["phi_zero"] <= 1 and -1 <= r["cosine_vs_softmax"] <= 1 for r in summary["layers"])


def test_run_with_overrides_changes_the_result(tmp_path):
    for name, extra in (("base", []), ("nodecay", ["-s", "numerics.retention.tau_ns=1.0e+3"])):
        assert cli(["run", "--steps", "6", "--no-progress", "-o", str(tmp_path / name), *extra]) == 0
    a, b = (np.load(tmp_path / n / "outputs.npy") for n in ("base", "nodecay"))
    assert not np.array_equal(a, b)           # a 1 us retention leaks within a few 4.65 us tokens
    np.testing.assert_array_equal(a[0], b[0])  # the first token reads only itself, at age 0


def test_help_names_variants_and_settings(capsys):
    with pytest.raises(SystemExit):
        cli(["--help"])
    text = capsys.readouterr().out
    for word in ("softmax", "linear", "cubic", "--set", "retention", "reference"):
        assert word in text


def test_quickstart_example_runs(capsys):
    import runpy
    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "max |simulator - reference| = 0.00e+00" in out and "cubic" in out


def test_output_path_that_is_a_file_is_not_replaced(tmp_path, capsys):
    f = tmp_path / "results"
    f.write_text("keep me")
    assert cli(["run", "--steps", "2", "-o", str(f)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert f.read_text() == "keep me"
