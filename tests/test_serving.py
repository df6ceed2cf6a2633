"""The serving mode (issue 23): requests over simulated time, a K/V bank each, prefill on the
host, the prompt's K/V through the chip's writers, decode steps batched at the host. The
two-request case is worked by hand from the RTX 4090 preset and GPT-2's widths (the same
figures as tests/test_system.py)."""
import pytest

from gcsim import load_hardware
from gcsim.errors import UsageError
from gcsim.serving.requests import Request, from_csv, poisson
from gcsim.serving.run import simulate

BW = 1008e9 * 0.8            # RTX 4090 preset: 806.4 GB/s reached
LAUNCH_PS = 4_000_000
LAYER1_PS = 14_208_000 / BW * 1e12 + 7 * LAUNCH_PS          # a GPT-2 host layer at one sequence
STEP1_PS = 77_408_068 / BW * 1e12 + 4 * LAUNCH_PS           # embedding, final norm, LM head, sampling
STEP_PS = 12 * (LAYER1_PS + 65_000) + STEP1_PS               # a decode step with the chip's 65 ns per layer
# A 16-token prefill, by hand (b = 2 bytes, all memory-bound at 16 rows): embedding 16 x 768 x 4
# = 49,152 bytes; per layer add+norm 2 x 16 x 768 x 4 + 1536 = 99,840 (twice), QKV 2 (768 x 2304
# + 16 x 768 + 16 x 2304) = 3,637,248, the prompt's attention 2 x 16 x (2 x 768 + 2 x 768) =
# 98,304, out 2 (768^2 + 2 x 16 x 768) = 1,228,800, up and down 2 (768 x 3072 + 16 x 768 + 16 x
# 3072) = 4,841,472 each, GELU 16 x 3072 x 4 = 196,608: 15,043,584 per layer; the last token's
# final norm 7680, LM head 77,296,802 and sampling 100,514. 1 + 12 x 8 + 3 = 100 kernels.
PREFILL16_PS = (49_152 + 12 * 15_043_584 + 7_680 + 77_296_802 + 100_514) / BW * 1e12 + 100 * LAUNCH_PS
WRITE16_PS = 16 * 5_000      # 16 tokens' K/V, one 5 ns write phase each, every layer at once


@pytest.fixture(scope="module")
def gpt2():
    return load_hardware("paper-gpt2").derive(host={"device": "rtx4090"},
                                              periphery={"sequences": 1, "batching": "lockstep"})


def test_two_requests_on_one_bank_worked_by_hand(gpt2):
    """Request 0 arrives at 0 (16-token prompt, 3 tokens out), request 1 at 100 us (16, 2).
    One K/V bank: request 1 waits for request 0 to finish. Request 0: prefill (first token),
    prompt K/V write, 2 decode steps; request 1: admitted when request 0 finishes, then the same
    with 1 decode step."""
    res, rep, rows = simulate(gpt2, [Request(0, 0, 16, 3), Request(1, 100_000_000, 16, 2)])
    assert PREFILL16_PS == pytest.approx(719_912_148, abs=1)   # the code rounds each of its 100 kernels to 1 ps
    first0 = PREFILL16_PS
    finish0 = first0 + WRITE16_PS + 2 * STEP_PS
    first1 = finish0 + PREFILL16_PS
    finish1 = first1 + WRITE16_PS + STEP_PS
    tol = 200   # ps: every kernel rounded to whole ps
    r0, r1 = rows
    assert r0["queue_ms"] == 0 and r0["ttft_ms"] * 1e9 == pytest.approx(first0, abs=tol)
    assert r0["tpot_ms"] * 1e9 == pytest.approx((WRITE16_PS + 2 * STEP_PS) / 2, abs=tol)
    assert r0["latency_ms"] * 1e9 == pytest.approx(finish0, abs=tol)
    assert r1["queue_ms"] * 1e9 == pytest.approx(finish0 - 100_000_000, abs=tol)   # waited for the bank
    assert r1["ttft_ms"] * 1e9 == pytest.approx(first1 - 100_000_000, abs=tol)
    assert r1["tpot_ms"] * 1e9 == pytest.approx(WRITE16_PS + STEP_PS, abs=tol)
    assert r1["latency_ms"] * 1e9 == pytest.approx(finish1 - 100_000_000, abs=tol)
    assert rep["ttft_ms"]["p50"] * 1e9 == pytest.approx((first0 + first1 - 100_000_000) / 2, abs=tol)
    assert rep["throughput"]["tokens_per_s"] == pytest.approx(5 / (finish1 * 1e-12), rel=1e-6)
    # energy: the host is busy 2 prefills and 3 decode steps' host work at 450 W; the chip's
    # write DACs wrote 2 prompts of 16 tokens and 3 decode tokens, 2 x 12 x 64 cells each, 12 layers
    host_ps = 2 * PREFILL16_PS + 3 * (12 * LAYER1_PS + STEP1_PS)
    assert rep["energy"]["host_mj"] * 1e9 == pytest.approx(450 * host_ps, abs=450 * 500)
    counts = res.ledger.counts
    dac = sum(int(v.sum()) for (comp, act), v in counts.items() if act == "kv_write_dac")
    assert dac == (2 * 16 + 3) * 1536 * 12
    assert rep["energy"]["per_request_mj"] == pytest.approx(
        (rep["energy"]["chip_mj"] + rep["energy"]["host_mj"] + rep["energy"]["links_mj"]) / 2)


def test_a_free_bank_means_no_queue_and_the_admission_policy_orders_the_waiting(gpt2):
    """With two banks two requests start at once; with one bank and two waiting when it
    frees, fcfs takes the first arrived and shortest_first the shorter."""
    _, _, rows = simulate(gpt2.derive(periphery={"sequences": 2}), [Request(0, 0, 16, 2), Request(1, 0, 16, 2)])
    assert [r["queue_ms"] for r in rows] == [0, 0] and {r["bank"] for r in rows} == {0, 1}
    reqs = [Request(0, 0, 16, 4), Request(1, 1_000, 64, 8), Request(2, 2_000, 16, 2)]
    order = {}
    for policy in ("fcfs", "shortest_first"):
        _, _, rows = simulate(gpt2.derive(periphery={"admission": policy}), reqs)
        order[policy] = [r["request"] for r in sorted(rows, key=lambda r: r["queue_ms"] + r["arrival_ms"])]
    assert order == {"fcfs": [0, 1, 2], "shortest_first": [0, 2, 1]}


def test_lockstep_serving_batches_the_requests_in_flight(gpt2):
    """Eight requests at once on eight banks: one prefill after another on the host (the
    i-th request's first token after i + 1 prefills), then their decode steps in one batch."""
    hw = gpt2.derive(periphery={"sequences": 8})
    _, rep, rows = simulate(hw, [Request(i, 0, 16, 2) for i in range(8)])
    ttft = sorted(r["ttft_ms"] * 1e9 for r in rows)
    assert ttft == pytest.approx([(i + 1) * PREFILL16_PS for i in range(8)], abs=2000)
    assert rep["queue_ms"]["max"] == 0


def test_poisson_and_csv_requests(tmp_path):
    a = poisson(100.0, 5, (8, 16), 4, seed=3)
    assert a == poisson(100.0, 5, (8, 16), 4, seed=3) and len(a) == 5
    assert all(8 <= r.prompt <= 16 and r.output == 4 for r in a)
    assert all(x.arrival_ps < y.arrival_ps for x, y in zip(a, a[1:]))
    p = tmp_path / "r.csv"
    p.write_text("arrival_ns,prompt_tokens,output_tokens\n100,16,2\n0.5,8,1\n")
    assert from_csv(p) == [Request(1, 500, 8, 1), Request(0, 100_000, 16, 2)]
    p.write_text("100,16\n")
    with pytest.raises(UsageError, match="row 1: expected 3 columns"):
        from_csv(p)
    p.write_text("100,0,2\n")
    with pytest.raises(UsageError, match="request 0: expected arrival >= 0, prompt >= 1"):
        from_csv(p)


def test_gcsim_serve_writes_its_report(tmp_path, capsys):
    from gcsim.cli import main as cli
    out = tmp_path / "s"
    assert cli(["serve", "--count", "4", "--rates", "50,400", "--prompt", "16", "--output", "2:3", "--sequences", "2",
                "--no-plot", "--no-progress", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Poisson arrivals at 400/s" in text and "TTFT" in text and "TPOT" in text
    assert (out / "serving.json").is_file() and len((out / "requests.csv").read_text().splitlines()) == 9
    csvp = tmp_path / "r.csv"
    csvp.write_text("0,16,2\n")
    assert cli(["serve", "--requests", str(csvp), "--no-progress", "-o", str(tmp_path / "c")]) == 0
    assert cli(["serve", "--requests", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "d")]) == 2
