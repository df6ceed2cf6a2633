"""Property-based fuzzing (hypothesis) of every input path: descriptions, --set values and
trace files (truncation at every section boundary is in test_trace_v2.py, byte flips, header
fields of the wrong type). Each case must end in a gcsim error (exit 2, one line, no
traceback) or a correct result (finite outputs), within a per-case time limit, and must never
change its input file.

Bounded for the default suite (a few seconds per test, derandomized so CI is reproducible);
GCSIM_FUZZ=nightly runs thousands of random cases per test.
"""
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hostile import run_cli, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcsim import GcsimError, load_hardware
from gcsim.hardware import MODELS_DIR, to_dict
from gcsim.sim import ArrayTrace, Simulator
from gcsim.traces import TraceError, default_scalers, open_trace, write_trace
from gcsim.traces import format as fmt

NIGHTLY = os.environ.get("GCSIM_FUZZ") == "nightly"
settings.register_profile("gcsim-default", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("gcsim-nightly", max_examples=2000, deadline=None,
                          suppress_health_check=list(HealthCheck))
FUZZ = settings(settings.get_profile("gcsim-nightly" if NIGHTLY else "gcsim-default"))

PAPER = to_dict(load_hardware("paper-gpt2"))
PAPER.pop("source")
TINY_SHAPE = {"layers": 2, "heads": 4, "kv_heads": 2, "d_head": 8, "window": 16, "array_size": 8}


def assert_clean_error(rc, err):
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err
    lines = err.splitlines()
    assert lines and lines[-1].startswith("gcsim ") and "error: " in lines[-1], err
    assert len(lines) == 1 or lines[0].startswith("usage: "), err  # one line, or argparse's usage + error


def leaf_paths(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from leaf_paths(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


LEAVES = sorted(leaf_paths(PAPER))

weird_numbers = st.sampled_from([0, -1, 1, 2, 3, 7, 2**31, 2**63, 10**30, -(10**30), 0.0, -0.0, 1e-308, 5e-324,
                                 1e308, -1e308, 1e-4, 0.5, 1.5, 1e7, float("nan"), float("inf"), float("-inf")])
yaml_scalars = st.one_of(weird_numbers, st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                         st.booleans(), st.none(), st.text(max_size=12))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                  st.dictionaries(st.text(max_size=6), inner,
                                                                                  max_size=3)), max_leaves=6)


def set_path(d, path, value):
    *parents, leaf = path.split(".")
    for p in parents:
        d = d[p]
    d[leaf] = value


# --- descriptions -------------------------------------------------------------------------------

@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(LEAVES), yaml_values), min_size=1, max_size=3),
       extra_key=st.one_of(st.none(), st.text(min_size=1, max_size=8)))
def test_fuzzed_descriptions_load_or_fail_cleanly(changes, extra_key):
    data = json.loads(json.dumps(PAPER))
    for path, value in changes:
        set_path(data, path, value)
    if extra_key is not None:
        data[extra_key] = 1
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "fuzz.yaml"
        p.write_text(yaml.safe_dump(data, allow_unicode=True))
        before = hashlib.sha256(p.read_bytes()).hexdigest()
        try:
            with time_limit():
                hw = load_hardware(p)
        except GcsimError as exc:
            assert str(p) in str(exc)
        else:  # it loaded: every number in it is finite and the checks hold
            assert all(not isinstance(v, float) or math.isfinite(v) for v in _numbers(to_dict(hw)))
        assert hashlib.sha256(p.read_bytes()).hexdigest() == before


def _numbers(d):
    if isinstance(d, dict):
        for v in d.values():
            yield from _numbers(v)
    elif isinstance(d, (list, tuple)):
        for v in d:
            yield from _numbers(v)
    else:
        yield d


def _get(d, path):
    for p in path.split("."):
        d = d[p]
    return d


NUMERIC_LEAVES = [p for p in LEAVES if isinstance(_get(PAPER, p), (int, float))
                  and not isinstance(_get(PAPER, p), bool) and not p.startswith("shape.")]


@FUZZ
@given(path=st.sampled_from(NUMERIC_LEAVES), value=weird_numbers)
def test_any_accepted_description_simulates_to_finite_outputs(path, value):
    data = json.loads(json.dumps(PAPER))
    data["shape"] = dict(TINY_SHAPE)
    set_path(data, path, value)
    try:
        hw = load_hardware("paper-gpt2").derive(**data)
    except GcsimError:
        return
    rng = np.random.default_rng(0)
    s = hw.shape
    trace = ArrayTrace(rng.normal(0.4, 0.4, (3, s.layers, s.heads, s.d_head)),
                       rng.normal(0, 0.3, (3, s.layers, s.kv_heads, s.d_head)),
                       rng.normal(0, 0.3, (3, s.layers, s.kv_heads, s.d_head)))
    outputs = np.zeros((3, s.layers, s.heads, s.d_head), np.float32)
    try:
        with time_limit(), np.errstate(all="ignore"):
            Simulator(hw, trace, outputs=outputs).run()
    except GcsimError:  # e.g. NumericsError naming the stage, or the budget checks
        return
    assert np.isfinite(outputs).all()


# --- --set --------------------------------------------------------------------------------------

@FUZZ
@given(path=st.one_of(st.sampled_from(LEAVES), st.text(max_size=20)),
       text=st.one_of(st.text(max_size=30), st.sampled_from(["null", "[1, 2]", "{a: 1}", "1e7", ".nan", "-.inf",
                                                             "&a [*a]", "!!python/object:os.system", "'x'",
                                                             "[" * 50, "1e-308", "0.0001", "true"])))
def test_fuzzed_set_values_exit_0_or_2(path, text):
    rc, out, err = run_cli(["describe", "paper-gpt2", "--set", f"{path}={text}"])
    if rc == 0:
        yaml.safe_load(out)  # the resolved description
    else:
        assert_clean_error(rc, err)


# --- traces -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny v2 trace and a description of its shape (extends paper-gpt2)."""
    d = tmp_path_factory.mktemp("fuzz")
    trace = d / "tiny.gctrace"
    rng = np.random.default_rng(1)
    # the prompt leaves room in the header for longer fuzzed values (dropped before editing)
    write_trace(trace, q=rng.normal(0.4, 0.3, (4, 2, 4, 8)), k=rng.normal(0, 0.3, (4, 2, 2, 8)),
                v=rng.normal(0, 0.3, (4, 2, 2, 8)), token_ids=[1, 2, 3, 4], model={"name": "tiny", **{
                    k: TINY_SHAPE[k] for k in ("layers", "heads", "kv_heads", "d_head")}},
                scalers=default_scalers(2, 4, 2), clip_fraction={"q": np.zeros((2, 4)), "k": np.zeros((2, 2)), "v": np.zeros((2, 2))},
                provenance={"prompt": "x" * 400})
    desc = d / "tiny.yaml"
    desc.write_text("extends: paper-gpt2\nname: tiny\nshape: " + json.dumps(TINY_SHAPE) + "\n")
    return trace, desc


def _flip_positions(size, header_end):
    return st.one_of(st.integers(0, header_end - 1), st.integers(0, size - 1))


@FUZZ
@given(data=st.data())
def test_any_byte_flip_is_detected(tiny, data):
    trace, _ = tiny
    raw = trace.read_bytes()
    header_end = 16 + int.from_bytes(raw[8:16], "little")
    i = data.draw(_flip_positions(len(raw), header_end))
    bit = data.draw(st.integers(0, 7))
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "t.gctrace"
        mutated = bytearray(raw)
        mutated[i] ^= 1 << bit
        p.write_bytes(bytes(mutated))
        with time_limit(), pytest.raises(TraceError):
            open_trace(p)
        rc, _, err = run_cli(["trace", "info", str(p)])
        assert_clean_error(rc, err)
        assert p.read_bytes() == bytes(mutated)


@FUZZ
@given(cut=st.integers(0, 10_000))
def test_any_truncation_is_detected(tiny, cut):
    trace, _ = tiny
    raw = trace.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "t.gctrace"
        p.write_bytes(raw[:cut % len(raw)])
        with time_limit(), pytest.raises(TraceError):
            open_trace(p)


HEADER_FIELDS = ["version", "steps", "dtype", "model", "model.layers", "model.heads", "model.d_head", "model.name",
                 "scalers", "scalers.a_q", "scalers.b_k", "clip_fraction", "clip_fraction.q", "provenance",
                 "arrays", "arrays.q", "arrays.q.shape", "arrays.k.offset", "arrays.v.nbytes", "arrays.q.dtype",
                 "arrays.token_ids.sha256", "format"]
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)


@FUZZ
@given(field=st.sampled_from(HEADER_FIELDS), value=json_values)
def test_header_fields_of_any_type_give_a_trace_error_or_a_valid_run(tiny, field, value):
    trace, desc = tiny
    raw = bytearray(trace.read_bytes())
    n = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16:16 + n])
    header["provenance"]["prompt"] = None
    node = header
    *parents, leaf = field.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    new = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(new) > n:  # does not fit in place (rare: 400 bytes of room)
        return
    new = new + b" " * (n - len(new))
    new = new.replace(header["header_sha256"].encode(), fmt.header_checksum(new).encode(), 1)  # re-sealed
    raw[16:16 + n] = new
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "t.gctrace"
        p.write_bytes(bytes(raw))
        out = Path(tmp) / "out"
        rc, _, err = run_cli(["run", str(p), "-m", str(desc), "--steps", "2", "--no-progress", "-o", str(out)])
        if rc == 0:
            assert np.isfinite(np.load(out / "outputs.npy")).all()
        else:
            assert_clean_error(rc, err)
            assert not out.exists()
        assert p.read_bytes() == bytes(raw)


def test_the_fuzzed_trace_runs_cleanly_unmutated(tiny, tmp_path):
    trace, desc = tiny  # the baseline of the trace fuzz tests is a valid run
    rc, _, err = run_cli(["run", str(trace), "-m", str(desc), "--steps", "2", "--no-progress",
                          "-o", str(tmp_path / "o")])
    assert rc == 0, err
    assert np.isfinite(np.load(tmp_path / "o" / "outputs.npy")).all()
