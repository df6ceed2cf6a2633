"""report.json: lean (per-layer figures once, per-step series in per_step.csv), with provenance."""
import csv
import hashlib
import json

import numpy as np
import pytest

from gcsim import load_hardware
from gcsim.cli import main as cli
from gcsim.provenance import hardware_sha256, source_sha256, trace_sha256
from gcsim.resources import DEFAULT_TRACE
from gcsim.sim import Simulator
from gcsim.traces import open_trace


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    assert cli(["run", "-o", str(out), "--quiet"]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_default_report_is_small_and_names_each_layer_once(default_run):
    out, rep = default_run
    assert (out / "report.json").stat().st_size < 50_000
    assert rep["schema"] == "gcsim.report/2"
    assert [r["layer"] for r in rep["layers"]] == list(range(30))
    # per-layer energy appears once per layer and adds up to the total (no static power here)
    assert sum(r["energy_pj"] for r in rep["layers"]) == pytest.approx(rep["energy"]["total_pj"], rel=1e-12)
    by_action = sum(sum(r["energy_by_action_pj"].values()) for r in rep["layers"])
    assert by_action == pytest.approx(rep["energy"]["total_pj"], rel=1e-12)
    assert sum(a["energy_pj"] for a in rep["energy"]["by_action"].values()) == pytest.approx(
        rep["energy"]["total_pj"], rel=1e-12)
    # activity summed over layers: the tiles are one unit per K/V bank, 30 layers x 3 banks
    tiles = rep["activity"]["tiles"]
    assert tiles["units"] == 30 * 3
    assert tiles["busy_ps"] + tiles["stalled_ps"] + tiles["idle_ps"] == tiles["units"] * rep["time"]["elapsed_ps"]


def test_per_step_series_live_in_their_own_file(default_run):
    out, rep = default_run
    rows = list(csv.DictReader(open(out / "per_step.csv")))
    assert len(rows) == rep["steps"] == 41
    res = Simulator(load_hardware("smollm2"), open_trace(DEFAULT_TRACE), values=False).run()
    assert [int(r["latency_ps_seq0"]) for r in rows] == res.step_latency_ps(0).tolist()
    np.testing.assert_allclose([float(r["energy_pj_per_sequence"]) for r in rows], res.ledger.step_pj(), rtol=1e-5)
    assert "per_step" not in rep


def test_provenance_names_code_description_trace_and_command(default_run):
    out, rep = default_run
    p = rep["provenance"]
    assert p["command"] == f"gcsim run -o {out} --quiet"
    assert p["gcsim_source_sha256"] == source_sha256() and len(p["gcsim_source_sha256"]) == 64
    hw = load_hardware("smollm2")
    assert p["hardware"]["sha256"] == hardware_sha256(hw)
    # independent recomputation of the trace checksum from the header's per-array sha256
    arrays = open_trace(DEFAULT_TRACE).header["arrays"]
    want = hashlib.sha256("".join(f"{n}:{arrays[n]['sha256']}\n" for n in sorted(arrays)).encode()).hexdigest()
    assert p["trace"]["sha256"] == want == trace_sha256(open_trace(DEFAULT_TRACE))
    assert p["seed"] is None


def test_description_hash_follows_content_not_path(tmp_path):
    hw = load_hardware("paper-gpt2")
    copy = tmp_path / "copy.yaml"
    copy.write_text(open(hw.source).read())
    assert hardware_sha256(load_hardware(copy)) == hardware_sha256(hw)
    assert hardware_sha256(hw.derive(shape={"window": 256})) != hardware_sha256(hw)


@pytest.mark.parametrize("argv, name", [(["reference", "--steps", "2"], "summary.json"),
                                         (["profile", "--steps", "2"], "profile.json")])
def test_other_outputs_carry_provenance(argv, name, tmp_path):
    assert cli(argv + ["-o", str(tmp_path / "o"), "-q"]) == 0
    p = json.loads((tmp_path / "o" / name).read_text())["provenance"]
    assert p["command"].startswith(f"gcsim {argv[0]}") and p["trace"]["steps"] == 41
    assert p["hardware"]["name"] == "smollm2"


def test_validate_json_carries_provenance(tmp_path):
    assert cli(["validate", "--steps", "2", "-q", "--json", str(tmp_path / "v.json")]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["provenance"]["hardware"]["name"] == "smollm2"
