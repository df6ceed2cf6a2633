"""The .gctrace format v2: round trip, streaming, atomicity, validation, lazy reading, summary."""

import hashlib
import json
import os

import numpy as np
import pytest

from gcsim.traces import (Trace, TraceError, TraceWriter, default_scalers, format_summary,
                          open_trace, summarize, write_trace)
from gcsim.traces import format as fmt
from gcsim.traces import summary as summary_mod

MODEL = {"name": "tiny", "layers": 2, "heads": 4, "kv_heads": 2, "d_head": 8}
STEPS = 5


def make_data(seed=0, steps=STEPS, attn_out=False):
    rng = np.random.default_rng(seed)
    L, H, KV, d = 2, 4, 2, 8
    data = {"q": rng.normal(size=(steps, L, H, d)).astype(np.float32),
            "k": rng.normal(size=(steps, L, KV, d)).astype(np.float32),
            "v": rng.normal(size=(steps, L, KV, d)).astype(np.float32),
            "token_ids": rng.integers(0, 50257, steps).astype(np.int32)}
    if attn_out:
        data["attn_out"] = rng.normal(size=(steps, L, H, d)).astype(np.float32)
    return data


def scalers_for(model=MODEL):
    s = default_scalers(model["layers"], model["heads"], model["kv_heads"])
    s["a_q"] = s["a_q"] * 0.1 + np.arange(model["heads"]) / 3.0  # non-round floats round-trip
    return s


CLIP = {"q": np.full((2, 4), 0.001), "k": np.zeros((2, 2)), "v": np.zeros((2, 2))}
PROV = {"source": "unit-test", "prompt": "Hello, wörld", "seed": 7, "command": "pytest"}


def write(path, dtype="float32", attn_out=False, seed=0):
    data = make_data(seed, attn_out=attn_out)
    write_trace(path, **data, model=MODEL, scalers=scalers_for(), clip_fraction=CLIP,
                provenance=PROV, dtype=dtype)
    return data


def read_header(path):
    raw = path.read_bytes()
    n = int.from_bytes(raw[8:16], "little")
    return json.loads(raw[16:16 + n]), n


def rewrite_header(path, edit, seal=True):
    """Apply edit(header) in place; the JSON is padded with spaces to its old length. seal:
    recompute the header checksum (as a tool that knows the format would), so that the
    reader's field checks, not the checksum, are what reject the edit."""
    raw = bytearray(path.read_bytes())
    header, n = read_header(path)
    edit(header)
    new = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(new) <= n
    new = new + b" " * (n - len(new))
    if seal and b'"header_sha256":"' in new:
        new = new.replace(header["header_sha256"].encode(), fmt.header_checksum(new).encode(), 1)
    raw[16:16 + n] = new
    path.write_bytes(bytes(raw))


# ---------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_values_and_header(tmp_path, dtype):
    path = tmp_path / "t.gctrace"
    data = write(path, dtype=dtype)
    with open_trace(path) as tr:
        assert isinstance(tr, Trace)
        for name in ("q", "k", "v"):
            np.testing.assert_array_equal(getattr(tr, name), data[name].astype(dtype))
            assert getattr(tr, name).dtype == np.dtype(dtype)
        np.testing.assert_array_equal(tr.token_ids, data["token_ids"])
        assert tr.attn_out is None
        assert tr.model == MODEL and tr.steps == STEPS and tr.dtype == dtype
        h = tr.header
        assert h["format"] == "gcsim-trace" and h["version"] == 2
        assert set(h) == {"format", "version", "model", "steps", "dtype", "scalers",
                          "clip_fraction", "provenance", "arrays", "header_sha256"}
        assert tr.provenance["prompt"] == "Hello, wörld" and tr.provenance["seed"] == 7
        assert tr.provenance["synthetic"] is False and tr.provenance["gcsim_version"] == "0.1.0"
        assert tr.provenance["source_sha256"] is None
        for name, ref in scalers_for().items():
            assert tr.scalers[name].dtype == np.float64
            np.testing.assert_array_equal(tr.scalers[name], ref)  # exact float64 round trip
        np.testing.assert_array_equal(tr.clip_fraction["q"], CLIP["q"])
        assert h["arrays"]["q"]["shape"] == [STEPS, 2, 4, 8]
        assert h["arrays"]["k"]["shape"] == [STEPS, 2, 2, 8]
        assert h["arrays"]["token_ids"] == {**h["arrays"]["token_ids"], "dtype": "int32",
                                            "shape": [STEPS]}
        for name, entry in h["arrays"].items():
            assert entry["offset"] % 64 == 0
            expected = data[name].astype(np.dtype(entry["dtype"]).newbyteorder("<"))
            assert entry["nbytes"] == expected.nbytes
            assert entry["sha256"] == hashlib.sha256(expected.tobytes()).hexdigest()
        q0, k0, v0 = tr.step(0)
        assert q0.dtype == k0.dtype == v0.dtype == np.float32
        assert not isinstance(q0, np.memmap) and q0.flags.writeable
        np.testing.assert_array_equal(v0, data["v"][0].astype(dtype).astype(np.float32))
        with pytest.raises(IndexError):
            tr.step(STEPS)


def test_file_layout_magic_sorted_header_zero_padding(tmp_path):
    path = tmp_path / "t.gctrace"
    write(path)
    raw = path.read_bytes()
    assert raw[:8] == b"GCTRACE\0"
    header, n = read_header(path)
    text = raw[16:16 + n].decode()
    assert text == json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    first = min(e["offset"] for e in header["arrays"].values())
    assert first == -(-(16 + n) // 64) * 64
    assert set(raw[16 + n:first]) <= {0}
    last = max(header["arrays"].values(), key=lambda e: e["offset"])
    assert len(raw) == -(-(last["offset"] + last["nbytes"]) // 64) * 64


def test_attn_out_round_trip(tmp_path):
    path = tmp_path / "a.gctrace"
    data = write(path, attn_out=True)
    with open_trace(path) as tr:
        np.testing.assert_array_equal(tr.attn_out, data["attn_out"].astype(np.float32))
        assert tr.header["arrays"]["attn_out"]["shape"] == [STEPS, 2, 4, 8]


def test_same_input_same_bytes(tmp_path):
    a, b, c = tmp_path / "a.gctrace", tmp_path / "b.gctrace", tmp_path / "c.gctrace"
    write(a), write(b), write(c, seed=1)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_streaming_writer_equals_in_memory_writer(tmp_path):
    a, b = tmp_path / "mem.gctrace", tmp_path / "stream.gctrace"
    data = write(a, dtype="float16", attn_out=True)
    with TraceWriter(b, model=MODEL, steps=STEPS, scalers=scalers_for(), clip_fraction=CLIP,
                     provenance=PROV, dtype="float16", attn_out=True) as w:
        for t in range(STEPS):
            w.append_step(data["q"][t], data["k"][t], data["v"][t], int(data["token_ids"][t]),
                          data["attn_out"][t])
        assert w.steps_written == STEPS
    assert a.read_bytes() == b.read_bytes()


def test_lazy_read_only_memmaps(tmp_path):
    path = tmp_path / "t.gctrace"
    write(path)
    tr = open_trace(path)
    for arr in (tr.q, tr.k, tr.v, tr.token_ids):
        assert isinstance(arr, np.memmap)
        assert not arr.flags.writeable
    tr.close()
    assert tr.q is None


# ---------------------------------------------------------------------------- atomicity


def test_exception_mid_write_leaves_no_file(tmp_path):
    path = tmp_path / "t.gctrace"
    data = make_data()
    with pytest.raises(RuntimeError, match="boom"):
        with TraceWriter(path, model=MODEL, steps=STEPS, scalers=scalers_for(),
                         clip_fraction=CLIP, provenance=PROV) as w:
            w.append_step(data["q"][0], data["k"][0], data["v"][0], 1)
            assert (tmp_path / f".t.gctrace.tmp-{os.getpid()}").exists()
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "t.gctrace"
    write(path)
    before = path.read_bytes()
    bad = make_data()
    bad["v"] = bad["v"][:, :, :1]  # wrong K/V head count: fails at the first step
    with pytest.raises(TraceError, match=r"'v' has shape \(2, 1, 8\), expected \(2, 2, 8\)"):
        write_trace(path, **bad, model=MODEL, scalers=scalers_for(), clip_fraction=CLIP,
                    provenance=PROV)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["t.gctrace"]


def test_incomplete_trace_is_not_finalised(tmp_path):
    path = tmp_path / "t.gctrace"
    data = make_data()
    with pytest.raises(TraceError, match="only 2 of 5 steps were written"):
        with TraceWriter(path, model=MODEL, steps=STEPS, scalers=scalers_for(),
                         clip_fraction=CLIP, provenance=PROV) as w:
            for t in range(2):
                w.append_step(data["q"][t], data["k"][t], data["v"][t], 0)
    assert os.listdir(tmp_path) == []


def test_writer_rejects_float16_overflow(tmp_path):
    data = make_data()
    data["k"][3, 1, 0, 4] = 1e6  # finite in float32, Inf in float16
    with pytest.raises(TraceError, match=r"'k' contains NaN or Inf, first at step 3, layer 1, "
                                         r"kv_head 0 \(dim 4\) \(after conversion to float16\)"):
        write_trace(tmp_path / "t.gctrace", **data, model=MODEL, scalers=scalers_for(),
                    clip_fraction=CLIP, provenance=PROV, dtype="float16")
    assert os.listdir(tmp_path) == []


def test_writer_rejects_bad_model_and_scalers(tmp_path):
    with pytest.raises(TraceError, match=r"kv_heads \(3\) must divide model.heads \(4\)"):
        TraceWriter(tmp_path / "x", model={**MODEL, "kv_heads": 3}, steps=1,
                    scalers=scalers_for(), clip_fraction=None, provenance={})
    s = scalers_for()
    s["a_k"] = np.ones((2, 4))
    with pytest.raises(TraceError, match=r"scaler 'a_k' has shape \(2, 4\), expected \(2, 2\)"):
        TraceWriter(tmp_path / "x", model=MODEL, steps=1, scalers=s, clip_fraction=None,
                    provenance={})
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- validation


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.gctrace"
    write(path)
    return path


def test_bad_magic(good):
    raw = bytearray(good.read_bytes())
    raw[:8] = b"NOTTRACE"
    good.write_bytes(bytes(raw))
    with pytest.raises(TraceError, match="not a gcsim trace") as e:
        open_trace(good)
    assert str(good) in str(e.value)


def test_header_not_json(good):
    raw = bytearray(good.read_bytes())
    raw[16] = ord("x")
    good.write_bytes(bytes(raw))
    with pytest.raises(TraceError, match="header is not valid JSON") as e:
        open_trace(good)
    assert str(good) in str(e.value)


@pytest.mark.parametrize("field", ["dtype", "scalers", "provenance", "steps", "arrays"])
def test_missing_required_field(good, field):
    rewrite_header(good, lambda h: h.pop(field))
    with pytest.raises(TraceError, match=f"missing required field '{field}'"):
        open_trace(good)


def test_missing_nested_field(good):
    rewrite_header(good, lambda h: h["model"].pop("d_head"))
    with pytest.raises(TraceError, match=r"missing required field 'model\.d_head'"):
        open_trace(good)


def test_newer_version(good):
    rewrite_header(good, lambda h: h.update(version=3))
    with pytest.raises(TraceError) as e:
        open_trace(good)
    assert str(e.value) == (f"{good}: trace format version 3 is newer than this gcsim "
                            "supports (2); upgrade gcsim")


def test_array_missing(good):
    rewrite_header(good, lambda h: h["arrays"].pop("v"))
    with pytest.raises(TraceError, match="array 'v' is missing"):
        open_trace(good)


def test_array_truncated(good):
    header, _ = read_header(good)
    tid = header["arrays"]["token_ids"]
    raw = good.read_bytes()
    cut = tid["offset"] + 7
    good.write_bytes(raw[:cut])
    with pytest.raises(TraceError) as e:
        open_trace(good)
    msg = str(e.value)
    assert "array 'token_ids' is truncated" in msg
    assert f"expected {tid['nbytes']} bytes at offset {tid['offset']}" in msg
    assert f"actual file size {cut} bytes" in msg


def test_shape_inconsistent(good):
    rewrite_header(good, lambda h: h["arrays"]["k"].update(shape=[STEPS, 2, 4, 8]))
    with pytest.raises(TraceError, match=r"array 'k' has shape \(5, 2, 4, 8\), "
                                         r"expected \(5, 2, 2, 8\)"):
        open_trace(good)


def test_wrong_dtype(good):
    rewrite_header(good, lambda h: h["arrays"]["q"].update(dtype="float16"))
    with pytest.raises(TraceError, match="array 'q' has dtype float16, expected float32"):
        open_trace(good)


def test_nan_reported_with_location(good, monkeypatch):
    monkeypatch.setattr(fmt, "_CHUNK_BYTES", 1)  # one step per chunk: exercises step offsets
    header, _ = read_header(good)
    entry = header["arrays"]["q"]
    raw = bytearray(good.read_bytes())
    t, layer, head, dim = 3, 1, 2, 5
    pos = entry["offset"] + (((t * 2 + layer) * 4 + head) * 8 + dim) * 4
    raw[pos:pos + 4] = np.array([np.nan], "<f4").tobytes()
    good.write_bytes(bytes(raw))
    new_sha = hashlib.sha256(raw[entry["offset"]:entry["offset"] + entry["nbytes"]]).hexdigest()
    rewrite_header(good, lambda h: h["arrays"]["q"].update(sha256=new_sha))
    with pytest.raises(TraceError) as e:
        open_trace(good)
    assert str(e.value) == (f"{good}: array 'q' contains NaN or Inf, first at step 3, "
                            "layer 1, head 2 (dim 5)")


def test_checksum_mismatch(good):
    header, _ = read_header(good)
    raw = bytearray(good.read_bytes())
    raw[header["arrays"]["v"]["offset"] + 10] ^= 0x01
    good.write_bytes(bytes(raw))
    with pytest.raises(TraceError, match="checksum mismatch for array 'v'"):
        open_trace(good)
    with open_trace(good, verify=False) as tr:  # opt-out skips the scan
        assert tr.steps == STEPS


# ---------------------------------------------------------------------------- summary


def test_summary_matches_numpy(tmp_path, monkeypatch):
    monkeypatch.setattr(summary_mod, "_CHUNK_BYTES", 300)  # several chunks: exercises merging
    path = tmp_path / "t.gctrace"
    rng = np.random.default_rng(3)
    data = make_data(seed=3, steps=40)
    data["q"] = data["q"] * 3 + 0.5
    s = scalers_for()
    s["a_k"] = rng.uniform(0.1, 0.3, (2, 2))
    write_trace(path, **data, model=MODEL, scalers=s, clip_fraction=None, provenance=PROV,
                dtype="float16")
    summ = summarize(path)
    assert summ["steps"] == 40 and summ["dtype"] == "float16" and summ["model"] == MODEL
    assert summ["file_bytes"] == os.path.getsize(path)
    assert summ["arrays"]["k"] == {"shape": [40, 2, 2, 8], "dtype": "float16"}
    assert summ["provenance"]["prompt"] == "Hello, wörld"
    ranges = {"q": (0.0, 1.0), "k": (0.0, 0.9), "v": (0.0, 0.9)}
    for name in ("q", "k", "v"):
        x = data[name].astype(np.float16).astype(np.float64)
        st = summ["stats"][name]
        np.testing.assert_allclose(st["min"], x.min(axis=(0, 2, 3)))
        np.testing.assert_allclose(st["max"], x.max(axis=(0, 2, 3)))
        np.testing.assert_allclose(st["mean"], x.mean(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(st["std"], x.std(axis=(0, 2, 3)), rtol=1e-12)
        y = x * s[f"a_{name}"][..., None] + s[f"b_{name}"][..., None]
        lo, hi = ranges[name]
        frac = ((y < lo) | (y > hi)).mean(axis=(0, 3))
        c = summ["clipping"][name]
        np.testing.assert_allclose(c["per_head"], frac)
        assert c["mean"] == pytest.approx(frac.mean()) and c["max"] == pytest.approx(frac.max())
        assert tuple(c["worst"]) == np.unravel_index(np.argmax(frac), frac.shape)
    assert 0 < summ["clipping"]["q"]["mean"] < 1  # q*3+0.5 with a_q≈0.1..1 clips some values
    text = format_summary(summ)
    assert "tiny: 2 layers x 4 heads (2 K/V heads) x d_head 8" in text
    assert "steps     40   dtype float16" in text
    assert f"worst: layer {summ['clipping']['q']['worst'][0]}" in text


def test_rejected_step_writes_nothing_and_writer_can_go_on(tmp_path):
    a, b = tmp_path / "a.gctrace", tmp_path / "b.gctrace"
    data = write(a, dtype="float16")
    with TraceWriter(b, model=MODEL, steps=STEPS, scalers=scalers_for(), clip_fraction=CLIP,
                     provenance=PROV, dtype="float16") as w:
        for t in range(STEPS):
            with pytest.raises(TraceError, match=f"step {t}: 'v' has shape"):
                w.append_step(data["q"][t], data["k"][t], data["v"][t][:, :1], 0)
            w.append_step(data["q"][t], data["k"][t], data["v"][t], int(data["token_ids"][t]))
    assert a.read_bytes() == b.read_bytes()
