"""Trace format v2 (issue 11 point 2): the header checksum, typed and range-checked fields,
zero padding, no trailing bytes, v1 files with a warning, `gcsim trace upgrade`."""
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_trace_format import MODEL, good, read_header, rewrite_header, write  # noqa: F401 (good: a fixture)

from gcsim.cli import main as cli
from gcsim.resources import DEFAULT_TRACE
from gcsim.traces import TraceError, TraceFormatWarning, open_trace, upgrade_trace
from gcsim.traces import format as fmt

# sha256 of the arrays of the shipped trace as `gcsim trace record` wrote them (format v1,
# traces/README.md); `gcsim trace upgrade` made the file v2 without changing them.
SHIPPED_ARRAYS_SHA256 = {
    "q": "5c019a539183cc1dad3c131a15f9d0a5993974221f0517e6a375f1f00f9e87fa",
    "k": "6c2a734cd8749d4e7c45c030d9a6f6305282bdd36d5e76cc035cb6904e6ea0e8",
    "v": "58c0de0c0c458d35bd28e4d20b93cdb1ae95a69ad9cc45133dd94e5de19dd2b6",
    "attn_out": "c88284ec5da1ed72ba7fbdbb5ddc58141e13f7ce4ef1f126393b3805fc96f737",
    "token_ids": "3dee14c4cd605a58d6ae4cfc43ea43c559defaaacfd0dde2fb7776843852895f",
}


def make_v1(path):
    """The same file as format version 1 wrote it: no header_sha256, version 1."""
    rewrite_header(path, lambda h: (h.pop("header_sha256"), h.update(version=1)), seal=False)


def test_the_shipped_trace_is_v2_with_the_recorded_data():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a v2 file opens without a warning
        tr = open_trace(DEFAULT_TRACE)
    assert tr.header["version"] == 2
    raw = DEFAULT_TRACE.read_bytes()
    for name, sha in SHIPPED_ARRAYS_SHA256.items():
        e = tr.header["arrays"][name]
        assert hashlib.sha256(raw[e["offset"]:e["offset"] + e["nbytes"]]).hexdigest() == sha


def test_a_one_digit_edit_of_a_scaler_is_detected(good):
    header, n = read_header(good)
    raw = bytearray(good.read_bytes())
    at = 16 + raw.index(b'"a_q":[[', 16) + len(b'"a_q":[[') - 16
    assert raw[at:at + 2] == b"0."
    raw[at] = ord("9")  # 0.xx -> 9.xx, still valid JSON
    good.write_bytes(bytes(raw))
    with pytest.raises(TraceError, match="header checksum mismatch"):
        open_trace(good)


def test_every_header_byte_flip_is_detected(good):
    _, n = read_header(good)
    base = good.read_bytes()
    for i in range(0, 16 + n, 7):
        raw = bytearray(base)
        raw[i] ^= 0x04
        good.write_bytes(bytes(raw))
        with pytest.raises(TraceError):
            open_trace(good)


@pytest.mark.parametrize("where", ["after header", "after the last array", "trailing"])
def test_padding_and_trailing_bytes_must_be_zero_or_absent(good, where):
    header, n = read_header(good)
    raw = bytearray(good.read_bytes())
    if where == "after header":
        assert 16 + n < header["arrays"]["q"]["offset"]
        raw[16 + n] = 1
        message = "padding at offsets"
    elif where == "after the last array":
        t = header["arrays"]["token_ids"]  # 5 x 4 bytes, padded to 64
        raw[t["offset"] + t["nbytes"]] = 1
        message = "padding at offsets"
    else:
        raw += b"junk"
        message = "4 bytes after the last array"
    good.write_bytes(bytes(raw))
    with pytest.raises(TraceError, match=message):
        open_trace(good)


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.update(version=True), "field 'version' must be a positive integer, got bool"),
    (lambda h: h.update(steps=True), "field 'steps' must be an integer"),
    (lambda h: h.update(steps="5"), "field 'steps' must be an integer"),
    (lambda h: h["clip_fraction"].update(q=[[float("nan")] * 4] * 2), "clip_fraction 'q' holds nan"),
    (lambda h: h["clip_fraction"].update(k=[[7.5, 0.0]] * 2), "clip_fraction 'k' holds 7.5"),
    (lambda h: h["scalers"].update(a_q="abc"), "field 'scalers.a_q' must hold numbers only"),
    (lambda h: h["scalers"].update(a_q=[[1, 2], [3]]), "field 'scalers.a_q' is not a rectangular array"),
    (lambda h: h.update(provenance=[1, 2]), "field 'provenance' must be an object"),
    (lambda h: h["arrays"]["q"].update(shape=5), "field 'arrays.q.shape' must be a list of integers"),
    (lambda h: h["arrays"]["q"].update(offset=1.5), "array 'q' has invalid offset 1.5"),
    (lambda h: h["arrays"]["k"].update(offset=h["arrays"]["q"]["offset"]), "array 'k' has invalid offset"),
    (lambda h: h["model"].update(name=["x"]), "model.name must be a string"),
    (lambda h: h.update(scalers=3), "field 'scalers' must be an object"),
])
def test_header_fields_are_typed_and_range_checked(good, edit, message):
    rewrite_header(good, lambda h: (h["provenance"].update(prompt=None), edit(h)))  # room for longer values
    with pytest.raises(TraceError, match=message):
        open_trace(good)


def test_a_negative_token_id_is_rejected(good):
    header, _ = read_header(good)
    raw = bytearray(good.read_bytes())
    tid = header["arrays"]["token_ids"]
    raw[tid["offset"]:tid["offset"] + 4] = np.int32(-5).tobytes()
    new_sha = hashlib.sha256(raw[tid["offset"]:tid["offset"] + tid["nbytes"]]).hexdigest()
    good.write_bytes(bytes(raw))
    rewrite_header(good, lambda h: h["arrays"]["token_ids"].update(sha256=new_sha))  # a consistent file
    with pytest.raises(TraceError, match="array 'token_ids' holds a negative token id at step 0"):
        open_trace(good)


def test_a_deeply_nested_header_is_an_error(good):
    _, n = read_header(good)
    deep = b"[" * (n // 2) + b"]" * (n // 2)
    raw = bytearray(good.read_bytes())
    raw[16:16 + 2 * (n // 2)] = deep
    good.write_bytes(bytes(raw))
    with pytest.raises(TraceError, match="header"):
        open_trace(good)


def test_bad_magic_does_not_quote_the_file(tmp_path):
    p = tmp_path / "secret"
    p.write_bytes(b"S3cr3tPW and more text")
    with pytest.raises(TraceError) as e:
        open_trace(p)
    assert "S3cr3t" not in str(e.value) and "not a gcsim trace" in str(e.value)


def test_v1_opens_with_one_warning_and_upgrade_keeps_the_data(good, tmp_path, capsys):
    data_v2 = open_trace(good)
    arrays = {name: np.array(getattr(data_v2, name)) for name in ("q", "k", "v", "token_ids")}
    make_v1(good)
    with pytest.warns(TraceFormatWarning, match="version 1 has no header checksum"):
        v1 = open_trace(good)
    assert v1.header["version"] == 1
    assert cli(["trace", "info", str(good)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gcsim: warning: ") and "trace upgrade" in err
    out = tmp_path / "up.gctrace"
    assert cli(["trace", "upgrade", str(good), "-o", str(out)]) == 0
    assert "gcsim: warning" not in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        up = open_trace(out)
    assert up.header["version"] == 2
    for name, arr in arrays.items():
        np.testing.assert_array_equal(getattr(up, name), arr)
        assert up.header["arrays"][name]["sha256"] == v1.header["arrays"][name]["sha256"]
    assert up.header["provenance"] == v1.header["provenance"]
    assert up.header["scalers"] == v1.header["scalers"] and up.model == MODEL
    upgrade_trace(good, good)  # in place: atomic
    assert open_trace(good).header["version"] == 2


def test_truncation_at_every_section_boundary(good):
    header, n = read_header(good)
    base = good.read_bytes()
    cuts = {0, 7, 8, 15, 16, 16 + n - 1, 16 + n}
    for e in header["arrays"].values():
        cuts |= {e["offset"], e["offset"] + 1, e["offset"] + e["nbytes"] - 1, e["offset"] + e["nbytes"]}
    for cut in sorted(c for c in cuts if c < len(base)):
        good.write_bytes(base[:cut])
        with pytest.raises(TraceError):
            open_trace(good)


def test_trace_format_doc_describes_v2():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "trace-format.md").read_text()
    assert "version 2" in doc and "header_sha256" in doc and "gcsim trace upgrade" in doc
    assert json.dumps(fmt.VERSION) == "2"
