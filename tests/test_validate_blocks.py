"""`gcsim validate` compares block by block as the run goes (flat memory): its figures and
verdict equal those of the whole-trace comparison, computed here independently (the whole
sequence through the reference at once, the simulator's records kept whole, numpy's lstsq
for the affine fit)."""
import numpy as np
import pytest
from inputs import random_trace

from gcsim import load_hardware
from gcsim.commands import validate as validate_cmd
from gcsim.reference import layer_attention
from gcsim.sim import Simulator
from gcsim.traces import open_trace, write_synthetic


@pytest.fixture(scope="module")
def small():
    return load_hardware("paper-gpt2").derive(shape={"layers": 2, "heads": 4, "kv_heads": 2, "window": 128})


def whole_trace_figures(hw, trace, T, sample):
    """The comparison as it was before (every step's records kept, the reference over the whole
    sequence), written out here with numpy's own formulas."""
    hw64 = hw.derive(numerics={"dtype": "float64"})
    s = hw.shape
    step = 2 / (hw.numerics.out_levels - 1)
    rec = {"codes": np.zeros((T, s.layers, s.heads, s.n_sub_tiles, s.d_head)), "out": np.zeros((T, s.layers, s.heads, s.d_head)),
           "ages": np.zeros((T, s.layers, s.window), np.int64), "S": {}, "phi": {}}

    def hook(seq, t, l, ages, S, phi, codes, out):
        rec["codes"][t, l], rec["out"][t, l], rec["ages"][t, l] = np.round(codes / step), out, ages
        if t in sample:
            rec["S"][t, l], rec["phi"][t, l] = S.reshape(s.heads, -1).copy(), phi.reshape(s.heads, -1).copy()
    Simulator(hw64, trace, steps=T, stages_hook=hook).run()
    rows = []
    for l in range(s.layers):
        q, k, v = (np.asarray(a[:T, l], np.float64) for a in (trace.q, trace.k, trace.v))
        ex = layer_attention(q, k, v, hw64, scalers=trace.scalers, layer=l, ages_ps=rec["ages"][:, l])
        nom = layer_attention(q, k, v, hw64, scalers=trace.scalers, layer=l, stages=False)
        ideal = layer_attention(q, k, v, hw64, variant="softmax", stages=False).out
        out = rec["out"][:, l]
        S = np.stack([rec["S"][t, l] for t in sample])
        x, y = out.transpose(1, 0, 2).reshape(s.heads, -1), ideal.transpose(1, 0, 2).reshape(s.heads, -1)
        res = tot = 0.0
        for h in range(s.heads):
            A = np.stack([x[h], np.ones_like(x[h])], axis=1)
            coef, *_ = np.linalg.lstsq(A, y[h], rcond=None)
            res += ((A @ coef - y[h]) ** 2).sum()
            tot += ((y[h] - y[h].mean()) ** 2).sum()
        norms = np.linalg.norm(out, axis=-1) * np.linalg.norm(ideal, axis=-1)
        cos = (out * ideal).sum(-1)[norms > 0] / norms[norms > 0]   # vectors of norm 0 left out
        rows.append({"S max": np.abs(S - ex.S[sample]).max(), "S mean": np.abs(S - ex.S[sample]).mean(),
                     "out mean": np.abs(out - ex.out).mean(), "nominal max": np.abs(out - nom.out).max(),
                     "nominal mean": np.abs(out - nom.out).mean(),
                     "codes differ": int((rec["codes"][:, l] != np.round(ex.sub_out / step)).sum()),
                     "nominal codes differ": int((rec["codes"][:, l] != np.round(nom.sub_out / step)).sum()),
                     "codes": ex.sub_out.size, "cosine": cos.mean(), "fit": np.sqrt(res / tot)})
    return rows


def check_against(rep, want):
    for row, w in zip(rep["layers"], want):
        e, n = row["exact"], row["nominal"]
        assert e["code_mismatches"] == w["codes differ"] == 0 and e["codes"] == w["codes"]
        assert n["code_mismatches"] == w["nominal codes differ"] > 0    # the chip's timing moves some codes
        assert e["S"]["max_abs"] == pytest.approx(w["S max"], rel=1e-9, abs=1e-15)
        assert e["S"]["mean_abs"] == pytest.approx(w["S mean"], rel=1e-9, abs=1e-15)
        assert e["out"]["mean_abs"] == pytest.approx(w["out mean"], rel=1e-9, abs=1e-15)
        assert n["out"]["max_abs"] == pytest.approx(w["nominal max"], rel=1e-12)
        assert n["out"]["mean_abs"] == pytest.approx(w["nominal mean"], rel=1e-12)
        assert row["vs_softmax"]["source"] == "reference softmax"
        assert row["vs_softmax"]["cosine"] == pytest.approx(w["cosine"], rel=1e-12)
        assert row["vs_softmax"]["affine_fit_rel_rmse"] == pytest.approx(w["fit"], rel=1e-9)
        assert 0 < w["fit"] < 1 and 0 < w["cosine"] < 1


def test_block_by_block_equals_the_whole_trace(small):
    # 300 steps through a 128-slot window: blocks of 128 steps start past the first wrap, so the
    # reference of a later block sees only its window's tokens
    hw = small.derive(timing={"nominal_token_period_ns": 1e6})  # nominal ages far from the real ones: codes move
    trace = random_trace(hw, 300, seed=5)
    sample = [0, 100, 199, 299]   # 4 evenly spaced, last included
    want = whole_trace_figures(hw, trace, 300, sample)
    reps = [validate_cmd.validate(hw, trace, stage_steps=4, block=b) for b in (128, 256, 512)]
    for rep in reps:
        assert rep["pass"] and rep["stage_steps"] == sample
        check_against(rep, want)
    # the block size changes nothing but the order of float sums
    for a, b in zip(reps[0]["layers"], reps[1]["layers"]):
        assert a["exact"]["code_mismatches"] == b["exact"]["code_mismatches"]
        assert a["nominal"]["code_mismatches"] == b["nominal"]["code_mismatches"]
        assert a["exact"]["S"]["max_abs"] == b["exact"]["S"]["max_abs"]


@pytest.mark.slow
def test_worker_processes_give_the_same_report(small, tmp_path, monkeypatch):
    path = write_synthetic(tmp_path / "t.gctrace", layers=2, heads=4, kv_heads=2, steps=260, seed=1)
    hw = small.derive(timing={"nominal_token_period_ns": 1e6})
    trace = open_trace(path)
    here = validate_cmd.validate(hw, trace, stage_steps=3, block=128, jobs=1)
    import gcsim.validation
    monkeypatch.setattr(gcsim.validation, "worth_it", lambda *a: True)   # a short trace: workers anyway
    there = validate_cmd.validate(hw, trace, stage_steps=3, block=128, jobs=2)
    every_core = validate_cmd.validate(hw, trace, stage_steps=3, block=128, jobs=None)  # the CLI's default
    assert here["pass"] and there["pass"]
    assert here["layers"] == there["layers"] == every_core["layers"]   # merged in the same order: the same floats


def test_a_mismatch_in_a_late_block_is_counted(small, monkeypatch):
    trace = random_trace(small, 300, seed=6)
    record = validate_cmd.StageRecorder.__call__

    def shifted(self, seq, step, layer, ages_ps, S, phi, codes, out):  # one code off at step 290 only
        if step == 290:
            codes = codes.copy()
            codes[0, 0, 0] += 2 / 31
        record(self, seq, step, layer, ages_ps, S, phi, codes, out)
    monkeypatch.setattr(validate_cmd.StageRecorder, "__call__", shifted)
    rep = validate_cmd.validate(small, trace, stage_steps=2, block=128)
    assert not rep["pass"]
    assert [r["exact"]["code_mismatches"] for r in rep["layers"]] == [1, 1]


def test_the_affine_fit_merges_blocks_exactly():
    rng = np.random.default_rng(0)
    x, y = rng.normal(3, 2, (50, 3, 8)), rng.normal(-1, 1, (50, 3, 8))
    y[:, 1] = 2 * x[:, 1] + 0.5          # a head the fit explains exactly
    whole = validate_cmd.SoftmaxDistance().add(x, y)
    parts = validate_cmd.SoftmaxDistance()
    for a, b in ((0, 7), (7, 8), (8, 50)):
        parts.merge(validate_cmd.SoftmaxDistance().add(x[a:b], y[a:b]))
    res = tot = 0.0
    for h in range(3):
        A = np.stack([x[:, h].ravel(), np.ones(400)], axis=1)
        coef, *_ = np.linalg.lstsq(A, y[:, h].ravel(), rcond=None)
        res += ((A @ coef - y[:, h].ravel()) ** 2).sum()
        tot += ((y[:, h] - y[:, h].mean()) ** 2).sum()
    for d in (whole, parts):
        assert d.affine_fit_rel_rmse == pytest.approx(np.sqrt(res / tot), rel=1e-12)
        cos = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
        assert d.cosine == pytest.approx(cos.mean(), rel=1e-12)


def test_gcsim_reference_block_by_block_equals_the_whole_sequence(small, tmp_path):
    from gcsim.commands.reference import _reference_layer
    from gcsim.streamio import NpyWriter
    trace = random_trace(small, 300, seed=7)
    s = small.shape
    path = tmp_path / "outputs.npy"
    NpyWriter(path, (300, s.layers, s.heads, s.d_head)).close()
    rows = [_reference_layer(l, trace=trace, hw=small, variant="cubic", T=300, outputs=path, block=128)
            for l in range(s.layers)]
    got = np.load(path)
    for l, row in enumerate(rows):
        q, k, v = (np.asarray(a[:, l], np.float64) for a in (trace.q, trace.k, trace.v))
        st = layer_attention(q, k, v, small, layer=l)
        np.testing.assert_array_equal(got[:, l], st.out.astype(np.float32))  # aligned blocks: the same floats
        ideal = layer_attention(q, k, v, small, variant="softmax", stages=False).out
        valid = np.minimum(np.arange(300) + 1, s.window).sum() * s.heads   # slots taking part
        assert row["mean_abs_out"] == pytest.approx(np.abs(st.out).mean(), rel=1e-12)
        assert row["phi_saturated"] == pytest.approx((st.phi >= 1).sum() / valid, rel=1e-12)
        assert row["phi_zero"] == pytest.approx(1 - (st.phi > 0).sum() / valid, rel=1e-12)
        assert row["codes_full_scale"] == pytest.approx((np.abs(np.round(st.sub_out * 15.5)) >= 15).mean(), rel=1e-12)
        norms = np.linalg.norm(st.out, axis=-1) * np.linalg.norm(ideal, axis=-1)
        cos = (st.out * ideal).sum(-1)[norms > 0] / norms[norms > 0]   # vectors of norm 0 left out
        assert row["cosine_vs_softmax"] == pytest.approx(cos.mean(), rel=1e-12)
        assert 0 < row["phi_saturated"] < 1 and 0 < row["phi_zero"] < 1
