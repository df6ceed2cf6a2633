"""The adaptation pipeline (gcsim/chipmodel/adapt.py) end to end at a tiny scale (4 iterations
of batch 2 per training stage), its provenance, resumption and the ablation's evaluation; the
scaler adaptation on the chip GPT, checked against the statistics of an independent numpy
forward pass."""
import csv
import json

import numpy as np
import pytest

pytest.importorskip("jax")

from gcsim.adaptation import AdaptationConfig, signal_stats  # noqa: E402
from gcsim.chipmodel import adapt  # noqa: E402
from gcsim.chipmodel.weights import load_weights  # noqa: E402

SMALL = dict(iters=4, batch_size=2, warmup=2, eval_every=2, eval_batches=1)
QUIET = lambda *a: None  # noqa: E731


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapt")
    final = adapt.run_pipeline(out, ablation=True, adaptation=AdaptationConfig(max_passes=4), log=QUIET, **SMALL)
    return out, final


@pytest.mark.slow
def test_pipeline_stages_and_provenance(pipeline):
    out, final = pipeline
    assert final == out / "chipgpt-chip.npz"
    w = load_weights(final)
    assert w.cfg.attention == "cubic" and w.meta["experiment"] == "adapted"
    stages = w.meta["pipeline"]
    assert list(stages) == ["softmax", "linear", "calibrate", "cubic"]
    # each stage names the checksum of the weights it started from
    for stage, before in (("linear", "softmax"), ("calibrate", "linear"), ("cubic", "calibrate")):
        assert stages[stage]["source"]["params_sha256"] == stages[before]["params_sha256"]
    assert stages["cubic"]["params_sha256"] == adapt.params_sha256(w.params)
    assert stages["linear"]["iterations"] == 4 and stages["cubic"]["grad_law"] == "linear"
    assert stages["calibrate"]["passes"] <= 4 and stages["calibrate"]["adaptation"]["tol"] == 1e-4
    # the linear stage starts from the closed-form scalers of the twin, not the paper's defaults
    lin = load_weights(adapt.weights_path(out, "linear"))
    assert lin.meta["initial_scalers"] == "closed-form" and lin.cfg.attention == "linear"
    # the curve: the fine-tunes' iterations (0 = the start) and the calibration passes
    rows = list(csv.DictReader(open(out / "curve.csv")))
    stages_seen = [r["stage"] for r in rows]
    assert stages_seen == sorted(stages_seen, key=["linear", "calibrate", "cubic"].index)
    assert [r["step"] for r in rows if r["stage"] == "linear"] == ["0", "1", "2", "3", "4"]
    assert all(float(r["heldout_perplexity"]) > 1 for r in rows if r["stage"] == "calibrate")
    assert (out / "curve.png").exists() or pytest.importorskip("matplotlib") is None


@pytest.mark.slow
def test_pipeline_resumes_and_reproduces(pipeline, tmp_path):
    """A rerun leaves finished stages alone; a stage redone from its source gives the same
    weights (same inputs and seed, identical outputs)."""
    out, final = pipeline
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    assert adapt.run_pipeline(out, ablation=True, log=QUIET, **SMALL) == final
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p.name != "chipgpt-chip.npz")
    again = adapt.cubic_finetune(adapt.weights_path(out, "calibrate"), tmp_path / "cubic",
                                 adapt.replace(adapt.CUBIC_FINETUNE, **SMALL), log=QUIET)
    a, b = load_weights(again), load_weights(adapt.weights_path(out, "cubic"))
    assert adapt.params_sha256(a.params) == adapt.params_sha256(b.params)


@pytest.mark.slow
def test_calibrated_model_matches_the_linear_statistics(pipeline):
    """The adapted cubic model's scaled signals, measured with the numpy forward pass (not the
    JAX one the adaptation ran), have the linear model's means and stds on the calibration
    batch to the adaptation's tolerance where it converged, and closer than before it."""
    from gcsim.chipmodel.model import forward
    from gcsim.hardware import load_hardware
    out, _ = pipeline
    lin, cal = (load_weights(adapt.weights_path(out, s)) for s in ("linear", "calibrate"))
    hw = load_hardware("chipgpt")
    batch = adapt.calibration_windows(lin.cfg)

    def stats(w, cfg):
        rec = []
        forward(w.params, batch, cfg, np, hw=hw, record=rec)
        stacked = {name: np.stack([r[i] for r in rec], axis=2) for i, name in enumerate(("q", "k", "v", "out"))}
        record = {name: a.reshape((-1,) + a.shape[2:]) for name, a in stacked.items()}  # [B*T, L, H, d]
        return signal_stats(record, w.params)
    target = stats(lin, lin.cfg)
    after = stats(cal, cal.cfg)
    before = stats(lin, cal.cfg)  # the linear model's scalers with the cubic law: the start
    err = lambda s: max(float(np.abs(s[k][i] - target[k][i]).max()) for k in s for i in (0, 1))  # noqa: E731
    assert err(after) < err(before) / 10


@pytest.mark.slow
def test_ablation_evaluates_every_arm(pipeline):
    from gcsim.chipmodel.ablation import run_ablation
    out, _ = pipeline
    summary = run_ablation(out, windows=2, progress=False, log=QUIET)
    arms = [r["arm"] for r in summary["rows"]]
    assert arms == ["softmax", "linear", "scratch", "direct", "adapted", "adapted_finetuned"]
    by = {r["arm"]: r for r in summary["rows"]}
    assert by["scratch"]["chip_iterations"] == by["direct"]["chip_iterations"] == 4
    assert by["adapted_finetuned"]["chip_iterations"] == 8 and by["adapted"]["chip_iterations"] == 4
    assert not by["scratch"]["from_twin"] and by["direct"]["from_twin"]
    for r in summary["rows"][1:]:
        # the reference model and the simulator in the loop over the same 2 windows
        arm = json.loads((out / "ablation" / f"{r['arm']}.json").read_text())
        assert arm["windows"] == r["windows"] == 2 and arm["simulator"]["tokens"] == arm["reference"]["tokens"] == 512
        assert r["simulator_perplexity"] == pytest.approx(r["reference_perplexity"], rel=1e-3)
    assert "| cubic, adapted and fine-tuned" in (out / "ablation.md").read_text()


def test_adaptation_curve_holds_each_iteration_once(tmp_path):
    """A log written across resumed chunks (a chunk killed after logging iterations past its
    checkpoint, which the next chunk did again) gives one curve row per iteration, the record
    written last; the calibration passes come between the two fine-tunes."""
    for stage, recs in (("linear", [(0, None, 2.0), (1, 1.9, None), (2, 1.8, 1.7), (3, 9.0, None),
                                    (2, 1.8, 1.7), (3, 1.6, None)]),
                        ("cubic", [(0, None, 1.5), (1, 1.4, 1.45)])):
        (tmp_path / stage).mkdir()
        with open(tmp_path / stage / f"{stage}.log.jsonl", "w") as f:
            for i, (it, loss, val) in enumerate(recs):
                r = {"iter": it, "elapsed_s": float(i)}
                r.update({} if loss is None else {"loss": loss})
                r.update({} if val is None else {"val_loss": val})
                f.write(json.dumps(r) + "\n")
    (tmp_path / "calibrate").mkdir()
    (tmp_path / "calibrate" / "calibration.csv").write_text(
        "pass,heldout_loss,heldout_perplexity\n0,1.9,6.69\n1,1.6,4.95\n")
    rows = adapt.adaptation_curve(tmp_path)
    assert [(r["stage"], r["step"]) for r in rows] == [("linear", 0), ("linear", 1), ("linear", 2), ("linear", 3),
                                                       ("calibrate", 0), ("calibrate", 1), ("cubic", 0), ("cubic", 1)]
    assert rows[3]["train_loss"] == 1.6 and rows[2]["elapsed_s"] == 4.0   # the later record of each
    assert rows[2]["heldout_perplexity"] == pytest.approx(np.exp(1.7)) and rows[1]["heldout_perplexity"] is None
