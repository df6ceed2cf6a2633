"""Property-based: the command line and the Python API driven with generated hostile inputs
(odd files, huge or non-finite numbers, control characters, wrong types, mismatched arrays,
sweep specs with huge axes and hostile constraints). Every case must end in success or a
documented exit code (one line on stderr for exit 2) / a GcsimError: no traceback, no exit 3,
no hang (a time limit per case), no unbounded memory (peak RSS checked).

Default profile: a few seconds per test, derandomized (CI is reproducible). GCSIM_FUZZ=nightly,
or the `slow` tests, run many more cases.
"""
import math
import os

import numpy as np
import pytest
from hostile import DOCUMENTED_EXITS, peak_rss_mb, run_cli, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gcsim
from gcsim.sim import ArrayTrace

NIGHTLY = os.environ.get("GCSIM_FUZZ") == "nightly"
QUICK = settings(max_examples=2000 if NIGHTLY else 20, deadline=None, derandomize=not NIGHTLY,
                 suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
MEMORY_MB = 1500          # growth of the peak RSS a whole test may cause

HW = gcsim.load_hardware("paper-gpt2").derive(shape={"layers": 1, "heads": 2, "kv_heads": 2, "d_head": 8,
                                                     "window": 16, "array_size": 8})

# --- values a hostile user types ---------------------------------------------------------------

NUMBERS = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["1" * 5000, "0x" + "f" * 300, "1e999", "-0", ".nan", "-.inf", "1_000"]))
TEXTS = st.one_of(st.text(max_size=30), st.sampled_from(["\x1b[2J", "\u202eevil", "a\nb", "", " ", "%s%d"]))
YAML_VALUES = st.one_of(NUMBERS.map(str), TEXTS.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
                        st.sampled_from(["null", "[]", "{}", "[[[[[[[[[[1]]]]]]]]]]", "{a: {b: {c: 1}}}", "&a [*a]",
                                         "!!python/object:os.system 'true'", "[1, 2, 3]", "true"]))
FIELDS = st.sampled_from(["shape.window", "shape.array_size", "shape.heads", "numerics.q_levels",
                          "numerics.retention.mode", "numerics.s_sat", "timing.host_ns_per_layer",
                          "periphery.sequences", "name", "interconnect.links.bank_to_host.gbps", "nothing.here",
                          "shape", ""])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Odd things to hand gcsim as a file."""
    d = tmp_path_factory.mktemp("hostile")
    fifo = d / "fifo"
    os.mkfifo(fifo)
    (d / "empty").write_bytes(b"")
    (d / "random").write_bytes(np.random.default_rng(0).bytes(3000))
    (d / "yaml-bomb.yaml").write_text("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
    (d / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    (d / "big-int.yaml").write_text("name: x\nshape: {window: " + "9" * 5000 + "}\n")
    (d / "not-utf8.yaml").write_bytes(b"name: \xff\xfe\n")
    (d / "sub").mkdir()
    from gcsim.traces.synthetic import write_synthetic
    trace = write_synthetic(d / "t.gctrace", layers=1, heads=2, kv_heads=2, d_head=8, steps=3, seed=0)
    raw = bytearray(trace.read_bytes())
    for i, at in enumerate((20, 200, len(raw) // 2, len(raw) - 5)):
        flipped = bytearray(raw)
        flipped[at] ^= 0xFF
        (d / f"flipped-{i}.gctrace").write_bytes(bytes(flipped))
    (d / "truncated.gctrace").write_bytes(bytes(raw[: len(raw) // 2]))
    names = [str(p) for p in sorted(d.iterdir())] + ["/dev/zero", "/dev/null", str(d / "missing"), "", "-",
                                                     str(d) + "/" + "x" * 300, "paper-gpt2", "smollm2"]
    return d, names


def _check(rc, out, err):
    assert rc in DOCUMENTED_EXITS, (rc, err[-2000:])
    assert "Traceback" not in out + err and "internal error" not in err, err[-2000:]
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, err


# --- the command line ---------------------------------------------------------------------------

def _argv(files, out):
    d, names = files
    path = st.sampled_from(names)
    file_path = st.sampled_from([n for n in names if n.startswith("/")])     # never a model name
    setting = st.tuples(FIELDS, YAML_VALUES).map(lambda fv: f"{fv[0]}={fv[1]}")
    int_opt = st.one_of(st.integers(-10, 10**12).map(str), NUMBERS.map(str), TEXTS)
    return st.one_of(
        st.tuples(st.just("describe"), path).map(list),
        st.tuples(st.just("describe"), st.just("paper-gpt2"), st.lists(setting, min_size=1, max_size=3)).map(
            lambda t: [t[0], t[1], *[x for s in t[2] for x in ("--set", s)]]),
        st.tuples(st.just("trace"), st.just("info"), path).map(list),
        st.tuples(path, path).map(lambda p: ["run", p[0], "-m", p[1], "--steps", "1", "-o", out, "--no-progress"]),
        st.tuples(path).map(lambda p: ["sweep", p[0], "-o", out, "--cache", out + "-cache"]),
        st.tuples(path).map(lambda p: ["sweep", "plot", p[0]]),
        st.tuples(path).map(lambda p: ["eval", "--text", p[0], "--windows", "1", "--sim-windows", "0",
                                       "--sensitivity-windows", "0", "-o", out]),
        st.tuples(file_path).map(lambda p: ["eval", "--lm", p[0], "--windows", "1", "--sim-windows", "0",
                                            "--sensitivity-windows", "0", "-o", out]),
        st.tuples(file_path).map(lambda p: ["decode", "--prompt", "ROMEO:", "-n", "1", "--json", p[0]]),
        st.tuples(st.sampled_from(["--window", "--windows", "--noise-windows", "--noise-seed"]), int_opt).map(
            lambda t: ["eval", t[0], t[1], "--text", names[0], "-o", out]),
        # the last --iters 0 keeps a valid option value from starting a training run
        st.tuples(st.sampled_from(["--threads", "--iters", "--max-minutes", "--stop-at"]), int_opt).map(
            lambda t: ["train", "chip", t[0], t[1], "--iters", "0", "-o", str(d / "sub" / "never")]),
        st.tuples(st.one_of(st.sampled_from(["0", "-1", "2", "3", "1e3", "nan", "", str(10**13), "9" * 5000]),
                            TEXTS), int_opt).map(
            lambda t: ["trace", "synth", "--model", "paper-gpt2", "--steps", t[0], "--seed", t[1], "-o",
                       str(d / "sub" / "synth.gctrace")]),
        st.lists(st.one_of(TEXTS, st.sampled_from(["-o", "--set", "--steps", "--force", "-j", "--ray"])),
                 max_size=4).map(lambda xs: ["run", "--steps", "1", *xs]),
    )


def _cli_property(files, tmp_path_factory, profile, monkeypatch):
    work = tmp_path_factory.mktemp("work")
    monkeypatch.chdir(work)                  # relative outputs land here, never in the repository
    out = str(work / "o")
    rss0 = peak_rss_mb()

    @profile
    @given(_argv(files, out))
    def prop(argv):
        rc, stdout, stderr = run_cli(argv)
        _check(rc, stdout, stderr)
    prop()
    assert peak_rss_mb() - rss0 < MEMORY_MB
    d, _ = files
    assert not (d / "sub" / "never").exists()           # no training ever started


def test_cli_with_hostile_inputs(files, tmp_path_factory, monkeypatch):
    _cli_property(files, tmp_path_factory, QUICK, monkeypatch)


@pytest.mark.slow
def test_cli_with_hostile_inputs_long(files, tmp_path_factory, monkeypatch):
    _cli_property(files, tmp_path_factory, LONG, monkeypatch)


# --- sweep specs ----------------------------------------------------------------------------

OPS = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "<", "==", " in ", " and ", " or "])
ATOMS = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=False).map(repr),
                  st.sampled_from(["shape.window", "shape.array_size", "'a'", "[1, 2]", "None", "True", "9 ** 9",
                                   "min(1, 2)", "abs(-3)", "__import__('os')", "(lambda: 1)()", "shape.nope",
                                   "10 ** 10", "2.0 ** 999"]))
EXPRESSIONS = st.recursive(ATOMS, lambda inner: st.one_of(
    st.tuples(inner, OPS, inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
    inner.map(lambda e: f"not {e}"), inner.map(lambda e: f"-{e}")), max_leaves=8)
VALUES = st.lists(st.one_of(st.integers(1, 4096), st.floats(), TEXTS, st.none()), min_size=0, max_size=40)
DIST = st.one_of(st.tuples(st.sampled_from(["uniform", "loguniform", "randint"]),
                           st.lists(st.one_of(st.integers(-2**70, 2**70), st.floats()), max_size=3)),
                 st.tuples(st.just("choice"), st.lists(st.integers(), max_size=3))).map(lambda t: {t[0]: t[1]})
AXES = st.lists(st.one_of(
    st.dictionaries(FIELDS, VALUES, min_size=1, max_size=7).map(lambda g: {"grid": g}),
    st.dictionaries(FIELDS, VALUES, min_size=1, max_size=3).map(lambda z: {"zip": z}),
    st.tuples(st.integers(-3, 10**7), st.dictionaries(FIELDS, DIST, min_size=1, max_size=2)).map(
        lambda t: {"random": {"samples": t[0], "fields": t[1]}})), max_size=4)
SPECS = st.fixed_dictionaries({"hardware": st.just("paper-gpt2"), "traces": st.just([{"synthetic": {"steps": 2}}]),
                               "axes": AXES, "constraints": st.lists(EXPRESSIONS, max_size=2)},
                              optional={"seed": st.one_of(st.integers(-5, 2**80), st.floats(), TEXTS),
                                        "steps": st.one_of(st.integers(-5, 2**80), TEXTS),
                                        "mode": st.sampled_from(["timing-only", "eval", "fast", ""])})


def _spec_property(profile, monkeypatch):
    import gcsim.sweeps.spec
    # the bound at a test's scale: planning a point builds its description (5-20 ms), so the
    # 10,000 of a real spec take minutes; the rule is the same at 300
    monkeypatch.setattr(gcsim.sweeps.spec, "MAX_POINTS", 300)
    rss0 = peak_rss_mb()

    @profile
    @given(SPECS)
    def prop(spec):
        with time_limit():
            try:
                points = gcsim.sweeps.load_spec(spec).points()
            except gcsim.GcsimError:
                return
        assert len(points) <= 300
    prop()
    assert peak_rss_mb() - rss0 < MEMORY_MB


def test_sweep_specs_with_hostile_axes_and_constraints(monkeypatch):
    _spec_property(QUICK, monkeypatch)


@pytest.mark.slow
def test_sweep_specs_with_hostile_axes_and_constraints_long(monkeypatch):
    _spec_property(LONG, monkeypatch)


# --- the Python API -----------------------------------------------------------------------

DIMS = st.integers(0, 3)
DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, bool, object, "U3"])


@st.composite
def arrays(draw, ndim=None):
    shape = tuple(draw(st.lists(DIMS, min_size=ndim or 0, max_size=ndim or 5)))
    if draw(st.booleans()):     # the shape the description wants, most of the time
        shape = (draw(st.integers(0, 3)), 1, 2, 8)
    dtype = draw(DTYPES)
    fill = draw(st.sampled_from([0.1, -0.3, float("nan"), float("inf"), 1e30]))
    try:
        with np.errstate(all="ignore"):
            return np.full(shape, fill).astype(dtype)
    except (ValueError, OverflowError):
        return np.zeros(shape, dtype)


SCALERS = st.one_of(st.none(), st.sampled_from(["calibrate", "defaults", "trace", "bogus", 5, [], {}]),
                    st.dictionaries(st.sampled_from(["a_q", "b_q", "a_k", "b_k", "a_v", "b_v", "a_out", "b_out",
                                                     "x", 3]),
                                    st.one_of(st.just(np.ones((1, 2))), st.just(np.ones(3)), st.floats(), TEXTS,
                                              st.none()), max_size=8))
TRACES = st.one_of(st.tuples(arrays(), arrays(), arrays()), st.sampled_from([None, 3, "no.gctrace", "", b"x", []]))


def _api_property(profile):
    rss0 = peak_rss_mb()

    @profile
    @given(TRACES, st.one_of(st.just(HW), st.sampled_from(["paper-gpt2", 3, None, "", "/dev/zero"])), SCALERS,
           st.one_of(st.none(), st.integers(-3, 10**9), st.floats(), TEXTS), st.one_of(st.booleans(), st.none()))
    def prop(trace, hw, scalers, steps, values):
        with time_limit():
            try:
                tr = ArrayTrace(*trace) if isinstance(trace, tuple) else trace
                res = gcsim.simulate(tr, hw, scalers=scalers, steps=steps, values=values)
            except gcsim.GcsimError:
                return
        assert all(math.isfinite(x) for x in res.token_latency_ns.ravel())
        if res.outputs is not None:
            assert np.isfinite(res.outputs).all()
    prop()

    @profile
    @given(arrays(), arrays(), arrays(), SCALERS, st.sampled_from([None, "softmax", "linear", "cubic", "x", 3]),
           st.sampled_from([np.float64, np.float32, "float16", "foo", None]))
    def prop_reference(q, k, v, scalers, variant, dtype):
        from gcsim.reference import head_attention
        qkv = [a[:, 0, 0] if a.ndim == 4 and a.shape[1] and a.shape[2] else a for a in (q, k, v)]
        with time_limit():
            try:
                head_attention(*qkv, HW, scalers=scalers, variant=variant, dtype=dtype)
            except gcsim.GcsimError:
                pass
    prop_reference()
    assert peak_rss_mb() - rss0 < MEMORY_MB


def test_api_with_hostile_inputs():
    _api_property(QUICK)


@pytest.mark.slow
def test_api_with_hostile_inputs_long():
    _api_property(LONG)
