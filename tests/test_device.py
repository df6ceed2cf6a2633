"""The value path on another array library (--device): the same codes as the CPU path.
No GPU is needed: 'array-api-strict' and 'torch:cpu' run the device code path on the CPU
(`cuda` itself is only exercised where a GPU is present)."""
import numpy as np
import pytest
from inputs import random_trace

from gcsim import load_hardware
from gcsim.cli import main as cli
from gcsim.commands.validate import validate
from gcsim.kernels import DeviceError, make_store
from gcsim.kernels.device import namespace_for
from gcsim.sim import Simulator


@pytest.fixture
def small():
    return load_hardware("paper-gpt2").derive(shape={"layers": 2, "heads": 4, "kv_heads": 2, "window": 128})


def _device_or_skip(name):
    pytest.importorskip({"array-api-strict": "array_api_strict", "torch:cpu": "torch"}[name])
    return name


@pytest.mark.parametrize("device", ["array-api-strict", "torch:cpu"])
def test_device_path_gives_the_cpu_codes(small, device):
    device = _device_or_skip(device)
    trace = random_trace(small, 140, seed=2)  # wraps the 128-slot window
    hw64 = small.derive(numerics={"dtype": "float64"})
    outs = {}
    for dev in ("cpu", device):
        res = Simulator(hw64, trace, outputs=np.zeros((140, 2, 4, 64)), device=dev).run()
        outs[dev] = res.outputs
    assert make_store(small, np.float32, device=device).kind == "powers"
    # outputs are a_out x (sum of 2 sub-tile codes) + b_out: equal codes give equal outputs
    np.testing.assert_allclose(outs[device], outs["cpu"], rtol=0, atol=1e-12)
    assert np.abs(outs["cpu"]).max() > 0.1


def test_validate_on_a_device_passes(small):
    _device_or_skip("array-api-strict")
    rep = validate(small, random_trace(small, 20, seed=4), stage_steps=5, device="array-api-strict")
    assert rep["pass"] and all(r["exact"]["code_mismatches"] == 0 for r in rep["layers"])


def test_unknown_or_missing_device_is_a_one_line_error(capsys):
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        namespace_for("tpu")
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        try:
            import cupy  # noqa: F401
        except ImportError:
            assert cli(["run", "--device", "cuda", "--steps", "2", "-o", "/nonexistent/never"]) == 2
            assert "no CUDA GPU found" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["array-api-strict", "torch:cpu"])
def test_device_codes_equal_the_cpu_codes_on_a_synthetic_trace(small, device, tmp_path):
    """Every sub-tile output code of every step and layer (not only the outputs built from
    them), float64, on a synthetic trace (`gcsim trace synth`'s generator) that wraps the window:
    the device path (physics over float powers, on another array library) gives the CPU path's
    codes (numba kernel over DAC codes)."""
    device = _device_or_skip(device)
    from gcsim.traces import open_trace, write_synthetic
    path = write_synthetic(tmp_path / "t.gctrace", layers=2, heads=4, kv_heads=2, steps=150, seed=3)
    hw64 = small.derive(numerics={"dtype": "float64"})
    step = 2 / (hw64.numerics.out_levels - 1)
    codes = {}
    for dev in ("cpu", device):
        got = codes[dev] = np.zeros((150, 2, 4, hw64.shape.n_sub_tiles, 64), np.int8)

        def hook(seq, t, l, ages, S, phi, c, out, got=got):
            got[t, l] = np.round(np.asarray(c) / step)
        Simulator(hw64, open_trace(path), stages_hook=hook, device=dev).run()
    assert make_store(hw64, np.float64, device="cpu").kind == "codes"   # two different implementations
    assert np.array_equal(codes[device], codes["cpu"])
    assert (codes["cpu"] != 0).mean() > 0.5 and len(np.unique(codes["cpu"])) > 10   # codes that say something
