"""The chip in a system (issue 23): the host device in the description, the roofline of a
decode layer at batch 1 and 8, the GPU-only attention at two contexts, all worked by hand
from the RTX 4090 preset's datasheet figures (docs/system.md)."""
import pytest

from gcsim import HardwareError, load_hardware
from gcsim.system import gpu_attention, gpu_only_step, host_device, host_layer, host_step, presets
from gcsim.system.roofline import gemm

# RTX 4090 preset at fp16: 165.2 TFLOP/s x 0.7, 1008 GB/s x 0.8, 4 us per kernel, 450 W.
FLOPS = 165.2e12 * 0.7      # 115.64 TFLOP/s
BW = 1008e9 * 0.8           # 806.4 GB/s
LAUNCH_PS = 4_000_000


@pytest.fixture(scope="module")
def gpt2():
    hw = load_hardware("paper-gpt2").derive(host={"device": "rtx4090"})
    return hw, host_device(hw)


def test_shipped_descriptions_have_their_networks_and_no_host():
    """Real models carry their widths; no shipped description opts into a host (the paper's
    figures stay the chip's alone)."""
    widths = {"paper-gpt2": (768, 3072, 50257, "plain"), "smollm2": (576, 1536, 49152, "gated"),
              "llama3-8b": (4096, 14336, 128256, "gated"), "chipgpt": (128, 512, 65, "plain")}
    for name, want in widths.items():
        hw = load_hardware(name)
        assert (hw.shape.d_model, hw.shape.d_ff, hw.shape.vocab, hw.shape.mlp) == want, name
        assert host_device(hw) is None
    assert {"rtx4090", "h100-sxm", "jetson-nano", "apple-m2-max"} <= set(presets())


def test_presets_resolve_and_fields_override(gpt2):
    _, dev = gpt2
    assert (dev.peak_flop_per_s, dev.memory_byte_per_s, dev.bytes_per_element) == (165.2e12, 1008e9, 2)
    hw = load_hardware("paper-gpt2").derive(host={"device": "h100-sxm", "precision": "fp8",
                                                  "launch_overhead_ns": 1500.0, "peak_tflops": {"fp16": 900.0}})
    dev = host_device(hw)
    assert dev.peak_flop_per_s == 1978.9e12 and dev.bytes_per_element == 1 and dev.launch_overhead_ps == 1_500_000
    assert host_device(hw.derive(host={"precision": "fp16"})).peak_flop_per_s == 900e12  # one peak changed
    assert host_device(hw.derive(host={"device": "jetson-nano", "precision": None})).memory_byte_per_s == 25.6e9


@pytest.mark.parametrize("host, message", [
    ({"device": "tpu-v9"}, "field 'host.device': no host preset 'tpu-v9'; shipped presets: "),
    ({"launch_overhead_ns": 10.0}, "field 'host.launch_overhead_ns': host fields need a device"),
    ({"device": "jetson-nano", "precision": "int8"}, "field 'host.precision': 'int8' has no peak"),
    ({"device": "rtx4090", "peak_tflops": {"fp4": 1.0}}, "field 'host.peak_tflops.fp4': not a precision"),
    ({"device": "rtx4090", "memory_efficiency": 1.5}, "field 'host.memory_efficiency': value 1.5 is out of range"),
    ({"device": "rtx4090", "attention": "flash"}, "field 'host.attention': expected one of ['fused', 'unfused']"),
])
def test_bad_host_fields_are_named(host, message):
    with pytest.raises(HardwareError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_hardware("paper-gpt2").derive(host=host)


def test_a_host_needs_the_network_widths(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("extends: paper-gpt2\nname: d\nhost: {device: rtx4090}\n")
    assert host_device(load_hardware(p)).name == "rtx4090"
    p.write_text("extends: stall-host\nname: d\nshape: {d_ff: null}\nhost: {device: rtx4090}\n")
    with pytest.raises(HardwareError, match="field 'shape.d_ff': a host device .* needs the network's shape"):
        load_hardware(p)


def test_roofline_layer_of_gpt2_at_batch_1_and_8(gpt2):
    """GPT-2's host layer (7 kernels) on the 4090, worked by hand. Batch 1 bytes (b = 2):
    add+norm 2 x (768 x 4 x 2 + 768 x 2) = 2 x 7680; QKV 2 (768 x 2304 + 768 + 2304) = 3,545,088;
    out 2 (768^2 + 2 x 768) = 1,182,720; up and down 2 (768 x 3072 + 768 + 3072) = 4,726,272 each;
    GELU 3072 x 2 x 2 = 12,288: 14,208,000 bytes. FLOPs 2 x 7,077,888 weights + 8 x 3072 + 2 x
    5 x 768 = 14,188,032. Arithmetic intensity ~1 FLOP/byte, far below the ridge (115.64e12 /
    806.4e9 = 143): memory-bound, 14,208,000 / 806.4 GB/s = 17.619 us, plus 7 x 4 us."""
    hw, dev = gpt2
    one = host_layer(hw, dev, 1)
    assert (one.kernels, one.flops, one.bytes) == (7, 14_188_032, 14_208_000)
    assert one.time_ps == pytest.approx(14_208_000 / BW * 1e12 + 7 * LAUNCH_PS, abs=7)  # each kernel rounded to 1 ps
    assert one.time_ps == pytest.approx(45_619_048, abs=7)
    assert one.total_pj == pytest.approx(450 * one.time_ps)          # W x ps = pJ
    # Batch 8: the weights are read once, 2 x 7,077,888 = 14,155,776 bytes, and the norms'
    # weights 2 x 768 x 2 = 3072; per sequence: the products' inputs and outputs 2 x (3072 + 1536
    # + 3840 + 3840) = 24,576, the two add+norms 2 x 768 x 4 x 2 = 12,288, GELU 12,288: 49,152.
    # (Batch 1 is the same sum: 14,155,776 + 3072 + 49,152 = 14,208,000.)
    eight = host_layer(hw, dev, 8)
    assert (eight.flops, eight.bytes) == (8 * 14_188_032, 14_552_064)
    assert eight.time_ps == pytest.approx(14_552_064 / BW * 1e12 + 7 * LAUNCH_PS, abs=7)
    assert eight.time_ps / 8 < one.time_ps / 7.9   # 8 tokens for the price of ~1


def test_a_large_batch_turns_compute_bound(gpt2):
    """QKV at batch 256: 2 x 256 x 768 x 2304 = 905,969,664 FLOPs -> 7.834 us at 115.64 TFLOP/s,
    against 2 x (768 x 2304 + 256 x 3072) = 5,111,808 bytes -> 6.339 us: compute wins."""
    op = gemm("qkv", 256, 768, 2304, 2)
    assert (op.flops, op.bytes) == (905_969_664, 5_111_808)
    from gcsim.system.roofline import kernel_ps
    assert kernel_ps(op, gpt2[1]) == round(905_969_664 / FLOPS * 1e12)


def test_gpu_only_attention_at_two_contexts(gpt2):
    """One GPT-2 layer's attention on the 4090, batch 1, fused: the K/V append (2 x 768 values
    read and written: 6144 bytes) and one kernel reading K and V of the context (2 x 12 heads x
    c x 64 x 2 bytes) plus q and the output (2 x 768 x 2): c = 1024 -> 3,148,800 bytes, 3.9048 us;
    c = 256 -> 789,504 bytes, 0.9790 us. Each kernel adds 4 us of launch."""
    hw, dev = gpt2
    for c, nbytes in ((1024, 3_148_800), (256, 789_504)):
        att = gpu_attention(hw, dev, 1, c)
        assert att.kernels == 2 and att.bytes == 6144 + nbytes
        assert att.flops == 4 * 12 * c * 64 + 5 * 12 * c
        assert att.time_ps == pytest.approx((6144 + nbytes) / BW * 1e12 + 2 * LAUNCH_PS, abs=2)
    assert gpu_attention(hw, dev, 1, 1024).time_ps == pytest.approx(11_912_381, abs=2)
    assert gpu_attention(hw, dev, 1, 256).time_ps == pytest.approx(8_986_667, abs=2)
    # unfused: Q.K^T, softmax, .V with the 12 x c scores through memory; 4 kernels
    hw_unfused = hw.derive(host={"attention": "unfused"})
    unfused = gpu_attention(hw_unfused, host_device(hw_unfused), 1, 1024)
    scores = 12 * 1024
    want = 6144 + 2 * (12 * 1024 * 64 + 768 + scores) + 2 * scores * 2 + 2 * (12 * 1024 * 64 + scores + 768)
    assert unfused.kernels == 4 and unfused.bytes == want


def test_gpu_only_step_adds_the_layers_and_the_head(gpt2):
    """A step: 12 x (host layer + attention) + embedding, final norm, LM head (768 x 50257
    weights: 77.2 MB, 95.7 us) and sampling."""
    hw, dev = gpt2
    step = gpu_only_step(hw, dev, 1, 1024)
    layer = host_layer(hw, dev, 1).time_ps + gpu_attention(hw, dev, 1, 1024).time_ps
    head = host_step(hw, dev, 1)
    assert step.time_ps == 12 * layer + head.time_ps and step.kernels == 12 * 9 + 4
    lm_head_bytes = 2 * (768 * 50257 + 768 + 50257)
    assert head.bytes == lm_head_bytes + 2 * 768 * 2 + (2 * 768 * 4 + 2 * 768) + 50257 * 2


def test_calibrating_to_the_papers_4090_figures():
    """docs/system.md's recipe: at batch 64 (fused), 22.37 us = 3.1299 us / e + 2 x 4 us / 64
    gives e = 0.1407; 7.178 mJ / 22.37 us = 320.9 W."""
    hw = load_hardware("paper-gpt2").derive(host={"device": "rtx4090", "memory_efficiency": 0.1407,
                                                  "busy_power_w": 320.9})
    att = gpu_attention(hw, host_device(hw), 64, 1024)
    assert att.time_ps / 64 / 1e6 == pytest.approx(3_154_944 / 1008e9 / 0.1407 * 1e6 + 0.125, rel=1e-9)
    assert att.time_ps / 64 / 1e6 == pytest.approx(22.37, abs=0.005)
    assert att.total_pj / 64 / 1e9 == pytest.approx(7.178, abs=0.002)


# --- the host port in a run -----------------------------------------------------------------

def _zeros_trace(hw, T):
    import numpy as np
    from gcsim.sim import ArrayTrace
    s = hw.shape
    z = lambda *shape: np.broadcast_to(np.zeros((), np.float32), shape)  # noqa: E731
    return ArrayTrace(z(T, s.layers, s.heads, s.d_head), z(T, s.layers, s.kv_heads, s.d_head),
                      z(T, s.layers, s.kv_heads, s.d_head))


def _run(hw, T):
    from gcsim.report import build_report
    from gcsim.sim import Simulator
    res = Simulator(hw, _zeros_trace(hw, T), values=False).run()
    return res, build_report(res, values=False)


# GPT-2's step kernels on the 4090 at batch 1, by hand: embedding 768 x 2 x 2 = 3072 bytes,
# final add+norm 7680, LM head 2 (768 x 50257 + 768 + 50257) = 77,296,802, sampling 50257 x 2:
# 77,408,068 bytes / 806.4 GB/s = 95.992 us, + 4 launches.
STEP1_PS = 77_408_068 / BW * 1e12 + 4 * LAUNCH_PS
LAYER1_PS = 14_208_000 / BW * 1e12 + 7 * LAUNCH_PS


def test_a_run_with_a_host_adds_its_roofline_to_every_layer_and_step(gpt2):
    """One sequence: a step is 12 x (host layer + the chip's 65 ns) + the step's kernels, and
    the host's energy is 450 W x its busy time."""
    hw, _ = gpt2
    T = 5
    res, rep = _run(hw, T)
    step_ps = 12 * (LAYER1_PS + 65_000) + STEP1_PS
    assert res.step_latency_ps(0) == pytest.approx([step_ps] * T, abs=12 * 7 + 4)
    host_pj = rep["energy"]["by_component_pj"]["host"]
    assert host_pj == pytest.approx(450 * T * (12 * LAYER1_PS + STEP1_PS), abs=450 * T * (12 * 7 + 4))
    sysrep = rep["system"]
    t = sysrep["per_token_ns"]
    assert t["chip_attention"] == 12 * 65 and t["links"] == 0 and t["batch_wait"] == 0
    assert t["host"] * 1000 == pytest.approx(12 * LAYER1_PS + STEP1_PS, abs=100)
    assert t["end_to_end"] == pytest.approx(t["chip_attention"] + t["host"])
    # the chip's own energy per head and token is unchanged by the host beside it
    chip_only = _run(load_hardware("paper-gpt2"), T)[1]
    assert rep["energy"]["per_head_per_token_pj"] == chip_only["energy"]["per_head_per_token_pj"]
    assert sysrep["per_token_pj"]["chip_attention"] + sysrep["per_token_pj"]["links"] == \
        pytest.approx(chip_only["energy"]["total_pj"] / T)
    # the GPU-only baseline at contexts 1..5: each layer's attention reads 3072 c + 3072 bytes
    # of K, V, q and out, the append 6144; 2 kernels
    base = [12 * (LAYER1_PS + (6144 + 3072 * c + 3072) / BW * 1e12 + 2 * LAUNCH_PS) + STEP1_PS
            for c in range(1, T + 1)]
    assert sysrep["gpu_only"]["per_token_ns"] * 1000 == pytest.approx(sum(base) / T, abs=200)
    assert sysrep["speedup"] == pytest.approx(sum(base) / T / step_ps, rel=1e-6)
    assert sysrep["gpu_only"]["per_token_pj"] == pytest.approx(450 * sum(base) / T, rel=1e-6)
    from gcsim.sweeps.point import report_metrics   # a sweep's table has the same figures
    m = report_metrics(rep)
    assert m["system.speedup"] == sysrep["speedup"] and m["system.host_ns_per_token"] == t["host"]


def test_lockstep_batches_every_sequence_in_flight(gpt2):
    """8 sequences, lockstep: the host computes each layer once for all 8 (46.046 us: the
    weights read once), the chip serves them one after another (8 x 65 ns) and the next layer
    waits for the last: a step is 12 x (host(8) + 520 ns) + the step's kernels at 8. Step
    kernels at 8 by hand: embedding 24,576 bytes, final add+norm 8 x 6144 + 1536 = 50,688, LM
    head 2 (768 x 50257 + 8 x 768 + 8 x 50257) = 78,011,152, sampling 804,112."""
    hw = gpt2[0].derive(periphery={"sequences": 8, "batching": "lockstep"})
    res, rep = _run(hw, 3)
    layer8 = 14_552_064 / BW * 1e12 + 7 * LAUNCH_PS
    step8 = (24_576 + 50_688 + 78_011_152 + 804_112) / BW * 1e12 + 4 * LAUNCH_PS
    want = 12 * (layer8 + 8 * 65_000) + step8
    for seq in range(8):
        assert res.step_latency_ps(seq) == pytest.approx([want] * 3, abs=12 * 7 + 4)
    t = rep["system"]["per_token_ns"]
    # per layer every sequence waits 7 x 65 ns for the others: at the chip (layer busy) or at
    # the host's next batch (batch wait)
    assert t["batch_wait"] + t["chip_attention"] == pytest.approx(12 * 8 * 65)
    assert rep["system"]["speedup"] > 1
    # the same 8 sequences without batching: each layer's weights are read 8 times
    apart = _run(gpt2[0].derive(periphery={"sequences": 8}), 3)[0]
    assert apart.step_latency_ps(0)[-1] > 7 * want



# --- end-to-end curves (gcsim system) ---------------------------------------------------------

def test_a_curve_point_at_a_long_context(gpt2):
    """GPT-2 at 2048 tokens, one sequence: the chip's window is full (M = 1024), so the chip
    side costs what it costs at any context, the paper's 12 x 65 ns and 144 heads x 6150 pJ;
    the GPU-only baseline reads all 2048 tokens' K and V: 3072 x 2048 + 3072 bytes per layer."""
    from gcsim.system.curves import point
    hw, _ = gpt2
    p = point(hw, 2048, 1)
    assert p["chip_ns"] == 780 and p["chip_pj"] == pytest.approx(144 * 6150)
    with_chip = 12 * (LAYER1_PS + 65_000) + STEP1_PS
    att = (6144 + 3072 * 2048 + 3072) / BW * 1e12 + 2 * LAUNCH_PS
    gpu = 12 * (LAYER1_PS + att) + STEP1_PS
    assert p["token_ns"] * 1000 == pytest.approx(with_chip, abs=100)
    assert p["gpu_only_token_ns"] * 1000 == pytest.approx(gpu, abs=100)
    assert p["speedup"] == pytest.approx(gpu / with_chip, rel=1e-6)
    assert p["gpu_only_attention_share"] == pytest.approx(12 * att / gpu, rel=1e-6)
    assert p["amdahl_bound"] > p["speedup"] > 1
    short = point(hw, 2, 1)   # one token in the window before this one: the arrays cost less
    assert short["chip_pj"] < p["chip_pj"] and short["token_ns"] == p["token_ns"]


def test_gcsim_system_writes_its_curves(tmp_path, capsys):
    import csv
    from gcsim.cli import main as cli
    out = tmp_path / "sys"
    assert cli(["system", "-m", "paper-gpt2", "--contexts", "64,2048", "--sequences", "1,2", "--no-plot",
                "-o", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "system.csv")))
    assert [(r["curve"], r["context"], r["sequences"]) for r in rows] == \
        [("context", "64", "1"), ("context", "2048", "1"), ("sequences", "1024", "1"), ("sequences", "1024", "2")]
    assert "paper-gpt2 (host rtx4090" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli(["system", "--contexts", "0,5", "-o", str(tmp_path / "x")])
    assert exc.value.code == 2 and "expected comma-separated whole numbers > 0, found '0,5'" in capsys.readouterr().err
    assert cli(["system", "--device", "tpu-v9", "-o", str(tmp_path / "y")]) == 2
