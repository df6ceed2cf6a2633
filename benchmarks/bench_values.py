"""Functional replay speed (values computed), per step at full window, side by side in one run:

  numpy floor, stored powers   one step's arithmetic in plain numpy (no gcsim), K/V kept as the
                               float32 y, y^2, y^3 that every read streams (the old design's floor)
  numpy floor, compact codes   K/V kept as uint8 DAC codes, levels and powers looked up per read,
                               the same matmuls (what numpy alone makes of the compact form)
  previous gcsim (--previous)  `git archive` of that commit in a temporary folder, imported in its
                               own process: its Simulator and its DecodeState (float32)
  gcsim (this tree)            Simulator (functional) and DecodeState (float32), with 1 and 2
                               kernel threads; timing-only Simulator for reference

Every figure is the median [min, max] of R consecutive segments of n steps of one run, all at
full window: GPT-2 and SmolLM2 shapes replay the first M steps of a synthetic trace untimed;
the Llama-3-8B size (window 4096) starts from a pre-filled window instead (RingBuffer.prefill:
tokens -4095..-1 written before time 0 with random DAC levels), then replays random inputs.
The numpy floors compute all M slots from the first step (their cost does not depend on fill).
Peak memory is each worker process's VmHWM. Each measurement runs in a fresh process with
OPENBLAS_NUM_THREADS=1 and GCSIM_THREADS (NUMBA_NUM_THREADS for a previous tree) = the
thread count shown.

With --device (cuda, torch:cpu, array-api-strict; gcsim/kernels/device.py) the simulator is
also run with its bank reads on that device, next to the CPU rows of the same run.

With --busy N, N CPU-bound processes run next to every row (a busy machine: how the kernel
threads behave when a core is taken).

Run: python benchmarks/bench_values.py [--model paper-gpt2|smollm2|llama3-8b] [--segment 16]
     [--repeats 5] [--previous b1385e8] [--threads 1,2] [--busy 1] [--device cuda]
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from trees import tree_at  # benchmarks/trees.py

ROOT = Path(__file__).resolve().parent.parent


# ---- workers (run in their own process) -------------------------------------------------

def _vmhwm_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _now():
    """(wall, process CPU) time: the CPU time of a segment counts every thread of the process
    and is less affected by other jobs on the machine than the wall time."""
    return time.perf_counter(), time.process_time()


def _segments(stamps: dict, start: int, n: int, repeats: int) -> dict:
    seg = [(stamps[start + r * n], stamps[start + (r + 1) * n]) for r in range(repeats)]
    return {"rates": [n / (b[0] - a[0]) for a, b in seg], "cpu_ms": [1e3 * (b[1] - a[1]) / n for a, b in seg]}


def _shape(model_name):
    from gcsim import load_hardware

    return load_hardware(model_name)


def worker_floor(cfg):
    """Plain numpy: DAC front end, one slot written, S, phi, A, output codes, readout per layer."""
    s = cfg["shape"]
    L, H, KV, d, M, a = s["layers"], s["heads"], s["kv_heads"], s["d_head"], s["window"], s["array_size"]
    G, n_sub = H // KV, M // a
    f32 = np.float32
    rng = np.random.default_rng(0)
    c = np.array([0.52136, 13.61226, -2.62045, 46.05484], f32)
    kv_step, zero = f32(0.9 / 7), f32(0.45)
    lut = [(np.arange(8, dtype=f32) * kv_step - zero) ** i for i in (1, 2, 3)]
    codes = cfg["form"] == "codes"
    if codes:
        kc = rng.integers(0, 8, (L, KV, M, d), dtype=np.uint8)
        vc = rng.integers(0, 8, (L, KV, M, d), dtype=np.uint8)
    else:
        y = rng.integers(0, 8, (2, L, KV, M, d)).astype(f32) * kv_step - zero
        kp = np.stack([y[0], y[0] ** 2, y[0] ** 3], axis=1)  # [L, 3, KV, M, d]
        vp = np.stack([y[1], y[1] ** 2, y[1] ** 3], axis=1)
    decay = rng.uniform(0.9, 1, M).astype(f32)
    d_pow = [decay, decay * decay, decay * decay * decay]
    stamps = {}
    n, R = cfg["segment"], cfg["repeats"]
    for t in range(n * R + 1):
        stamps[t] = _now()
        q_all = rng.uniform(0, 1, (L, H, d)).astype(f32)
        kv_all = rng.normal(0, 0.3, (2, L, KV, d)).astype(f32)
        slot = t % M
        for l in range(L):
            q = (np.round(np.clip(q_all[l], 0, 1) / f32(1 / 15)) * f32(1 / 15)).reshape(KV, G, d)
            w = np.round(np.clip(kv_all[:, l] + zero, 0, 0.9) / kv_step)
            if codes:
                kc[l, :, slot], vc[l, :, slot] = w[0], w[1]
                kpl = [np.take(lut[i], kc[l]) for i in range(3)]
                vpl = [np.take(lut[i], vc[l]) for i in range(3)]
            else:
                yw = w * kv_step - zero
                kp[l, :, :, slot] = np.stack([yw[0], yw[0] ** 2, yw[0] ** 3])
                vp[l, :, :, slot] = np.stack([yw[1], yw[1] ** 2, yw[1] ** 3])
                kpl, vpl = kp[l], vp[l]
            S = (c[0] * q.sum(-1))[..., None]
            for i in range(3):
                S = S + (c[i + 1] * d_pow[i]) * np.matmul(q, kpl[i].transpose(0, 2, 1))
            phi = np.clip(S / f32(80), 0, 1)
            A = (c[0] * phi.reshape(KV, G, n_sub, a).sum(-1))[..., None]
            for i in range(3):
                wi = (phi * (c[i + 1] * d_pow[i])).reshape(KV, G, n_sub, a).transpose(0, 2, 1, 3)
                A = A + np.matmul(wi, vpl[i].reshape(KV, n_sub, a, d)).transpose(0, 2, 1, 3)
            out = np.round(np.clip(A / f32(40), -1, 1) / f32(2 / 31)) * f32(2 / 31)
            out.sum(axis=-2)
    return _segments(stamps, 0, n, R)


class _RandomSource:
    """Random host inputs for any shape (no trace file), stamping each step's start."""

    def __init__(self, hw, steps):
        s = hw.shape
        self.last_layer = s.layers - 1
        self.steps, self.scalers, self.path = steps, None, "<random>"
        self.model = {"layers": s.layers, "heads": s.heads, "kv_heads": s.kv_heads, "d_head": s.d_head}
        rng = np.random.default_rng(0)
        self.pool = [(rng.uniform(0, 1, (s.heads, s.d_head)).astype(np.float32),
                      rng.normal(0, 0.3, (2, s.kv_heads, s.d_head)).astype(np.float32)) for _ in range(7)]
        self.stamps = {}

    def layer_inputs(self, seq, step, layer):
        q, kv = self.pool[(step + layer) % len(self.pool)]
        return q, kv[0], kv[1]

    def receive(self, seq, step, layer, out):
        if layer == self.last_layer:  # step done: the next one starts
            self.stamps.setdefault(step + 1, _now())


def _prefill(sim, hw, rng):
    """Fill every tile's window with M - 1 tokens of random DAC levels before time 0."""
    from gcsim.datapath import dac_kv

    s = hw.shape
    period = hw.timing.nominal_token_period_ps

    def values(u):
        x = rng.normal(0, 0.3, (2, s.kv_heads, s.d_head)).astype(hw.numerics.dtype)
        one = np.ones(s.kv_heads)
        return (dac_kv(x[0], one, 0.45 * one, hw, hw.numerics.cell_law),
                dac_kv(x[1], one, 0.45 * one, hw, hw.numerics.cell_law))

    for _, _, ring in sim.rings():
        ring.prefill(s.window - 1, period, values if sim.values else None)


def worker_sim(cfg):
    sys.path.insert(0, cfg["root"])
    from gcsim import load_hardware
    from gcsim.sim import Simulator

    hw = load_hardware(cfg["model_path"])
    M, n, R = hw.shape.window, cfg["segment"], cfg["repeats"]
    if cfg.get("prefill"):
        src = _RandomSource(hw, n * R + 2)
        sim = Simulator(hw, src, values=cfg["values"], **_device(cfg))
        _prefill(sim, hw, np.random.default_rng(1))
        sim.run()
        return {**_segments(src.stamps, 1, n, R), "vmhwm_mb": _vmhwm_mb()}
    from gcsim.traces import open_trace

    sim = Simulator(hw, open_trace(cfg["trace"]), values=cfg["values"], steps=M + n * R + 1, **_device(cfg))
    stamps, last = {}, hw.shape.layers - 1
    if hasattr(sim, "source"):  # the host hands every layer's outputs (None: timing-only) back
        receive = sim.source.receive

        def stamped_receive(seq, step, layer, out):
            if layer == last:
                stamps.setdefault(step + 1, _now())
            return receive(seq, step, layer, out)
        sim.source.receive = stamped_receive
    else:  # gcsim up to b1385e8: the host port's generator per layer
        inputs = sim.host.layer_inputs

        def layer_inputs(seq, step, layer):
            if layer == 0:
                stamps.setdefault(step, _now())
            return inputs(seq, step, layer)
        sim.host.layer_inputs = layer_inputs
    sim.run()
    return {**_segments(stamps, M, n, R), "vmhwm_mb": _vmhwm_mb()}


def _device(cfg) -> dict:
    """Simulator(device=...) only when asked: the previous gcsim has no such argument."""
    return {"device": cfg["device"]} if cfg.get("device") else {}


def worker_decode(cfg):
    """DecodeState per layer, float32: fill the window by writes, then time write + read."""
    sys.path.insert(0, cfg["root"])
    from gcsim import load_hardware
    from gcsim.reference import DecodeState

    hw = load_hardware(cfg["model_path"])
    s, M, n, R = hw.shape, hw.shape.window, cfg["segment"], cfg["repeats"]
    rng = np.random.default_rng(0)
    states = [DecodeState(hw, layer=l, dtype=np.float32) for l in range(s.layers)]
    pool = [(rng.uniform(0, 1, (s.layers, s.heads, s.d_head)), rng.normal(0, 0.3, (2, s.layers, s.kv_heads, s.d_head)))
            for _ in range(7)]
    per = hw.timing.nominal_token_period_ps
    for t in range(M - 1):
        kv = pool[t % 7][1]
        for l, st in enumerate(states):
            st.write(t, kv[0, l], kv[1, l], t * per)
    q = pool[0][0]
    for l, st in enumerate(states):  # one read untimed: compiles (or loads) any kernel first
        st.read(q[l], M - 2, (M - 2) * per)
    stamps = {}
    for t in range(M - 1, M - 1 + n * R + 1):
        stamps[t] = _now()
        q, kv = pool[t % 7]
        for l, st in enumerate(states):
            st.write(t, kv[0, l], kv[1, l], t * per)
            st.read(q[l], t, t * per)
    return {**_segments(stamps, M - 1, n, R), "vmhwm_mb": _vmhwm_mb()}


WORKERS = {"floor": worker_floor, "sim": worker_sim, "decode": worker_decode}


# ---- driver ---------------------------------------------------------------------------------

def run_worker(cfg, threads: int) -> dict:
    # GCSIM_THREADS: this tree's kernel threads; NUMBA_NUM_THREADS: the same for a previous tree
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", GCSIM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads),
               OMP_NUM_THREADS="1", PYTHONPATH=cfg.get("root", str(ROOT)))
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if "vmhwm_mb" not in res:
        res["vmhwm_mb"] = None
    return res


def fmt(res) -> str:
    if "error" in res:
        return f"not run: {res['error'][:90]}"
    r, c = np.array(res["rates"]), np.array(res["cpu_ms"])
    mem = f"{res['vmhwm_mb']:8.0f}" if res.get("vmhwm_mb") else "       -"
    return f"{np.median(r):9.1f}  [{r.min():7.1f}, {r.max():7.1f}]  {np.median(c):8.2f} [{c.min():6.2f}, {c.max():6.2f}]  {mem}"


def _device_name(device: str) -> str:
    """The card's name, for the record (figures on a GPU are quoted with it)."""
    if device != "cuda":
        return "on the CPU (the device code path, not a GPU)"
    try:
        import torch
        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (PyTorch {torch.__version__})"
    except ImportError:
        pass
    try:
        import cupy
        return f"{cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()} (CuPy {cupy.__version__})"
    except Exception as err:  # noqa: BLE001 - any failure: no GPU found
        return f"no GPU found ({type(err).__name__})"


def previous_tree(commit: str, tmp: Path) -> Path | None:
    return tree_at(commit, tmp / f"gcsim-{commit}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="paper-gpt2")
    ap.add_argument("--segment", type=int, default=None, help="steps per timed segment (default 16; 2 for llama3-8b)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--previous", default="b1385e8", help="commit to compare with ('' to skip)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--busy", type=int, default=0,
                    help="run this many CPU-bound processes next to the measurements (a busy machine)")
    ap.add_argument("--device", default=None,
                    help="also run the Simulator with its bank reads on this device (cuda, torch:cpu, ...)")
    args = ap.parse_args()
    if args.worker:
        cfg = json.loads(args.worker)
        print(json.dumps(WORKERS[cfg["kind"]](cfg)))
        return

    sys.path.insert(0, str(ROOT))
    import gcsim
    from gcsim.hardware import MODELS_DIR
    from gcsim.traces import write_synthetic

    hw = _shape(args.model)
    s = hw.shape
    big = s.window > 2048
    n = args.segment or (2 if big else 16)
    R = args.repeats
    threads = [int(x) for x in args.threads.split(",")]
    model_path = str(MODELS_DIR / f"{args.model}.yaml")
    print(f"gcsim {gcsim.__version__} bench_values: {args.model} ({s.layers} layers x {s.heads} heads, "
          f"{s.kv_heads} K/V heads, d_head {s.d_head}, window {s.window}, arrays {s.array_size})")
    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine "
          f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, numpy {np.__version__}; "
          f"load average at start {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"per step at full window, median [min, max] of {R} segments of {n} steps: wall-clock steps/s and "
          f"process CPU ms per step (all threads); peak RSS (VmHWM) in MB; "
          f"{'pre-filled window' if big else f'the first {s.window} steps replayed untimed'}")
    if args.device:
        print(f"device {args.device}: {_device_name(args.device)}")
    shape = {k: getattr(s, k) for k in ("layers", "heads", "kv_heads", "d_head", "window", "array_size")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trace = None
        if not big:
            trace = tmp / "bench.gctrace"
            write_synthetic(trace, layers=s.layers, heads=s.heads, kv_heads=s.kv_heads, d_head=s.d_head,
                            steps=s.window + n * R + 2, seed=0)
        base = {"segment": n, "repeats": R, "model_path": model_path, "trace": str(trace) if trace else None,
                "prefill": big}
        rows.append(("numpy floor, stored powers (f32)", 1, {"kind": "floor", "form": "powers", "shape": shape, **base}))
        rows.append(("numpy floor, compact codes (f32)", 1, {"kind": "floor", "form": "codes", "shape": shape, **base}))
        prev = previous_tree(args.previous, tmp) if args.previous else None
        if prev is not None:   # its own description of the model (this tree's may have fields it does not know)
            prev_base = {**base, "model_path": str(prev / "models" / f"{args.model}.yaml")}
            if trace is not None:  # the previous gcsim reads only its own trace format (v1): same data, its writer
                prev_trace = tmp / "bench-previous.gctrace"
                subprocess.run([sys.executable, "-c",
                                "import sys; sys.path.insert(0, sys.argv[1]); "
                                "from gcsim.traces.synthetic import write_synthetic; "
                                "write_synthetic(sys.argv[2], layers=%d, heads=%d, kv_heads=%d, d_head=%d, "
                                "steps=%d, seed=0)" % (s.layers, s.heads, s.kv_heads, s.d_head, s.window + n * R + 2),
                                str(prev), str(prev_trace)], check=True, cwd=prev)
                prev_base["trace"] = str(prev_trace)
            for kind, label in (("sim", "Simulator"), ("decode", "DecodeState f32")):
                for th in threads:
                    rows.append((f"gcsim {args.previous}: {label}", th,
                                 {"kind": kind, "root": str(prev), "values": True, **prev_base}))
        for kind, label in (("sim", "Simulator"), ("decode", "DecodeState f32")):
            for th in threads:
                rows.append((f"gcsim (this tree): {label}", th, {"kind": kind, "root": str(ROOT), "values": True, **base}))
        if args.device:
            rows.append((f"gcsim (this tree): Simulator --device {args.device}", 1,
                         {"kind": "sim", "root": str(ROOT), "values": True, "device": args.device, **base}))
        rows.append(("gcsim (this tree): Simulator timing-only", 1,
                     {"kind": "sim", "root": str(ROOT), "values": False, **base}))
        print(f"{'what':44s} {'threads':>7s}  {'steps/s':>9s}  {'[min,':>8s} {'max]':>8s}  "
              f"{'CPU ms/step':>11s} {'[min,':>7s} {'max]':>6s}  {'RSS MB':>8s}")
        results = {}
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        if busy:
            print(f"with {len(busy)} CPU-bound process{'es' if len(busy) > 1 else ''} running next to every row")
        try:
            for label, th, cfg in rows:
                results[label, th] = res = run_worker(cfg, th)
                print(f"{label:44s} {th:7d}  {fmt(res)}", flush=True)
        finally:
            for p in busy:
                p.kill()
    print(f"load average at end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.model == "paper-gpt2":
        print_targets(results)


def _median(res, key="rates"):
    return float(np.median(res[key])) if res and "error" not in res else None


def print_targets(results):
    """Issue 13's targets for the GPT-2 shape, met or short, from this run's rows; a shortfall
    is split into the arithmetic (DecodeState: the same values, no events) and the rest."""
    print("targets (issue 13, GPT-2 shape, full window):")
    for what, label, th, target in (("functional, 1 core", "Simulator", 1, 200),
                                    ("functional, 2 cores", "Simulator", 2, 400),
                                    ("timing-only", "Simulator timing-only", 1, 5000)):
        res = results.get((f"gcsim (this tree): {label}", th))
        rate = _median(res)
        if rate is None:
            print(f"  {what:22s} not measured")
            continue
        line = f"  {what:22s} {rate:8.1f} steps/s (target {target}): "
        if rate >= target:
            print(line + "met")
            continue
        decode = _median(results.get(("gcsim (this tree): DecodeState f32", th)))
        split = ""
        if decode and decode > rate:
            split = (f"; a step {1e3 / rate:.2f} ms = the arithmetic {1e3 / decode:.2f} ms (DecodeState, {th} "
                     f"thread{'s' if th > 1 else ''}) + {1e3 / rate - 1e3 / decode:.2f} ms events, statistics and glue")
        elif decode:
            split = f"; DecodeState ran slower ({decode:.1f} steps/s): the machine's speed changed within the run"
        print(line + f"short by {target - rate:.1f}{split}")


if __name__ == "__main__":
    main()
