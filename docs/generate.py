"""Regenerate every table of figures and every chart in the README and docs/ from the code.

    python docs/generate.py                 # every section (the expensive ones take minutes)
    python docs/generate.py NAME [NAME ...] # only these sections
    python docs/generate.py --cheap         # only the cheap sections (seconds each)
    python docs/generate.py --list          # the sections: name, cost, page, what makes them
    python docs/generate.py --check         # cheap sections: say which differ from the docs, exit 1

A section is the text between `<!-- generated: NAME -->` and `<!-- end -->` in a markdown
file; this script replaces it with what the code computes now. **Cheap** sections (command
outputs, timing-only sweeps, the cost model's worked examples, the field reference) are
checked by tests/test_docs_generated.py: a change in the model fails the tests until the docs
follow (run this script, read the diff, commit). **Expensive** sections (functional and eval
sweeps, charts) end with the commit, date and command that made them; the test checks the
columns of theirs that a timing-only run can give (latency, energy), where there are any.

To add a section: write a function returning its markdown (and writing any PNG under docs/),
decorate it with @section(NAME, PAGE, cheap=...), and put the two markers in PAGE. Charts
need matplotlib (pip install -e '.[plot]'); the chip-model sections need nothing more.

Run from anywhere; it imports the gcsim of this repository.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

BEGIN = "<!-- generated: {name} -->"
END = "<!-- end -->"


@dataclass
class Section:
    name: str
    page: Path
    cheap: bool
    make: Callable[["Context"], str]
    check: Callable[["Context", str], list[str]] | None = None   # expensive: checks of the cheap columns
    what: str = ""


SECTIONS: dict[str, Section] = {}


def section(name: str, page: str, *, cheap: bool):
    def register(fn):
        SECTIONS[name] = Section(name, ROOT / page, cheap, fn, what=(fn.__doc__ or "").strip().split("\n")[0])
        return fn
    return register


def checks(name: str):
    """Register the check of an expensive section's cheap columns."""
    def register(fn):
        SECTIONS[name].check = fn
        return fn
    return register


class Context:
    """What a section may use: a scratch directory, a sweep cache of its own, the worker count."""

    def __init__(self, tmp: Path, jobs: int | None = None):
        self.tmp, self.jobs = tmp, jobs
        self.cache = tmp / "sweep-cache"

    def scratch(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path


# --- reading and writing the marked regions -----------------------------------------------

def region(text: str, name: str) -> tuple[int, int]:
    """Start and end offsets of the body between NAME's markers in `text` (ValueError if absent)."""
    begin = BEGIN.format(name=name)
    i = text.find(begin)
    if i < 0 or text.find(begin, i + 1) >= 0:
        raise ValueError(f"'{begin}' must occur exactly once")
    start = i + len(begin)
    end = text.find(END, start)
    if end < 0:
        raise ValueError(f"'{begin}' has no '{END}' after it")
    return start, end


def current(sec: Section) -> str:
    text = sec.page.read_text(encoding="utf-8")
    start, end = region(text, sec.name)
    return text[start:end].strip("\n")


def write(sec: Section, body: str) -> bool:
    """Put `body` between the section's markers; True if the page changed."""
    text = sec.page.read_text(encoding="utf-8")
    start, end = region(text, sec.name)
    new = text[:start] + "\n" + body.strip("\n") + "\n" + text[end:]
    if new != text:
        sec.page.write_text(new, encoding="utf-8")
    return new != text


def commit() -> str:
    """The commit the code was at, with +dirty when gcsim/ or docs/generate.py had changes."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "gcsim", "docs/generate.py"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def stamp(name: str, seconds: float, note: str = "") -> str:
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    return (f"<sub>Made by `python docs/generate.py {name}` at commit {commit()} on {day} "
            f"({seconds:.0f} s{note}).</sub>")


# --- helpers -------------------------------------------------------------------------------

def gcsim_output(argv: list[str]) -> str:
    """What `gcsim ARGV` prints on stdout (run in this process), checked for exit status 0."""
    from gcsim.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"gcsim {' '.join(argv)} exited {rc}")
    return buf.getvalue().rstrip("\n")


def run_sweep(ctx: Context, spec, jobs: int | None = None):
    from gcsim.sweeps.runner import run_sweep as run
    result = run(spec, jobs=jobs or ctx.jobs, cache=ctx.cache)
    if result.failed:
        raise RuntimeError(f"{result.failed} points of {spec} failed: "
                           + "; ".join(r["error"] for r in result.rows if r["status"] == "failed")[:500])
    return result


def markdown_table(rows, columns) -> str:
    from gcsim.sweeps.table import format_table
    return format_table(rows, columns, markdown=True)


def code_block(text: str) -> str:
    return "```\n" + text + "\n```"


def spec_with_trace(spec_file: Path, trace: Path) -> dict:
    """An example sweep description with its trace file replaced (paths made absolute)."""
    from gcsim import safeyaml
    data = safeyaml.load(spec_file.read_bytes())
    data["traces"] = [{"path": str(trace)}]
    return data


# --- cheap sections ------------------------------------------------------------------------

@section("quickstart", "README.md", cheap=True)
def quickstart(ctx: Context) -> str:
    """`gcsim run` on the shipped defaults (its summary)"""
    out = gcsim_output(["run", "--no-progress", "-o", str(ctx.tmp / "run")])
    out = out.replace(str(ROOT) + os.sep, "")       # the trace's path, as seen from a clone
    out = "\n".join(line for line in out.splitlines() if not line.startswith("wrote ")).rstrip()
    return code_block(out)


@section("paper", "docs/validate.md", cheap=True)
def paper_table(ctx: Context) -> str:
    """`gcsim paper`: the calibration point beside the paper's figures"""
    return code_block(gcsim_output(["paper", "--no-progress"]))


@section("fields", "docs/description-fields.md", cheap=True)
def fields(ctx: Context) -> str:
    """`gcsim describe --fields --markdown`: every field of a description"""
    from gcsim.commands.describe import format_fields
    return format_fields(markdown=True)


def _head_items(ctx: Context, hw) -> tuple[dict, float]:
    """Per head and token at a full window, by paper item, and the layer latency (ns), from a
    timing-only replay of a synthetic trace one window long."""
    from gcsim.sim import Simulator
    from gcsim.traces import open_trace, write_synthetic
    s = hw.shape
    path = ctx.scratch("cost-examples") / f"window-{s.window}.gctrace"
    write_synthetic(path, layers=s.layers, heads=s.heads, kv_heads=s.kv_heads, d_head=s.d_head, steps=s.window,
                    seed=0)
    with open_trace(path) as trace:
        res = Simulator(hw, trace, values=False).run()
    from gcsim.report import build_report
    rep = build_report(res, values=False)
    return {k: v["per_head_per_token_pj"] for k, v in rep["energy"]["paper_items"].items()}, \
        rep["time"]["layer_latency_ns"]["mean"]


@section("cost-examples", "docs/cost-model.md", cheap=True)
def cost_examples(ctx: Context) -> str:
    """the cost model's worked examples: one head of paper-gpt2 at windows 1024 and 256"""
    from gcsim import costs, load_hardware
    base = load_hardware("paper-gpt2").derive(shape={"layers": 1})
    designs = {1024: base, 256: base.derive(shape={"window": 256})}
    d = base.shape.d_head
    cols, sims = {}, {}
    for m, hw in designs.items():
        c = costs.derive(hw)
        a, n_sub = c.actions_pj, hw.shape.n_sub_tiles
        depth = costs.tree_depth(n_sub)
        link = hw.energy.link_pj_per_bit * (hw.interconnect.q_bits * d + 2 * d * hw.interconnect.kv_bits
                                            * hw.shape.kv_heads // hw.shape.heads + d * hw.interconnect.out_bits)
        adds = d * (n_sub - 1) * a["adder_tree_add"]
        per_head_fixed = d * a["output_scaler"] + a["control"] + link
        phi_v_rows, conv = m * a["v_row_read"], d * n_sub * a["output_conversion"]
        pwm, write_dac = d * n_sub * a["q_pwm_drive"], 2 * d * a["kv_write_dac"] * hw.shape.kv_heads / hw.shape.heads
        cols[m] = {
            "phi_qk": (f"{m:,} × {a['k_column_read']:g}", m * a["k_column_read"]),
            "phi_v": (f"{m:,} × {a['v_row_read']:g} + {d} × {n_sub} × {a['output_conversion']:g}",
                      phi_v_rows + conv),
            "digital_routing": (f"{d} × {n_sub - 1} × {a['adder_tree_add']:.6g} + {per_head_fixed:g}", adds + per_head_fixed),
            "dacs": (f"{d} × {n_sub} × {a['q_pwm_drive']:g} + {write_dac:g}", pwm + write_dac),
        }
        sims[m] = _head_items(ctx, hw)
        for item, (_, value) in cols[m].items():   # the explanation adds up to what the simulator books
            if abs(value - sims[m][0][item]) > 1e-9 * max(1.0, abs(value)):
                raise AssertionError(f"M={m} {item}: the formula gives {value}, the simulator {sims[m][0][item]}")
    labels = {"phi_qk": "φ(Q·Kᵀ): K columns × energy per read",
              "phi_v": "φ(S)·V: V rows × energy per read + d × n_sub output conversions",
              "digital_routing": "digital and routing: d × (n_sub − 1) adds + scaler, control and link bits",
              "dacs": "DACs: d × n_sub PWM drives + the head's share of the K/V write DACs"}
    lines = ["| item (pJ per head and token) | M = 1024 | M = 256 |", "|---|---|---|"]
    for item, label in labels.items():
        cells = [f"{cols[m][item][0]} = {cols[m][item][1]:,.6g}" for m in (1024, 256)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines.append("| total | " + " | ".join(f"{sum(v for _, v in cols[m].values()):,.6g}" for m in (1024, 256)) + " |")
    times = []
    for m in (64, 256, 512, 1024, 2048):
        hw = base.derive(shape={"window": m})
        times.append(f"M = {m:,}: {hw.shape.n_sub_tiles} sub-tile{'s' if hw.shape.n_sub_tiles > 1 else ''}, depth {costs.tree_depth(hw.shape.n_sub_tiles)}, "
                     f"adder tree {costs.adder_tree_ps(hw) / 1000:g} ns, layer "
                     f"{_head_items(ctx, hw)[1] if m not in sims else sims[m][1]:g} ns")
    area = []
    for m, hw in designs.items():
        ar = costs.area(hw)
        per_head = ar["total_mm2"] / hw.shape.heads
        area.append(f"M = {m:,}: {ar['gain_cells_mm2'] / hw.shape.heads:.6g} mm² of cells + {hw.shape.n_sub_tiles} × "
                    f"{ar['per_sub_tile_periphery_mm2']:.6g} + {ar['per_head_periphery_mm2']:.6g} = {per_head:.3f} mm² per head")
    return ("\n".join(lines) + "\n\nLayer latency by window (at 1 GHz): " + "; ".join(times)
            + ".\n\nArea: " + "; ".join(area) + ".")


def _timing_study(ctx: Context, spec: str, columns: list[str]) -> str:
    result = run_sweep(ctx, ROOT / "examples" / spec)
    return markdown_table(result.rows, columns)


@section("study-sequences", "docs/sweep.md", cheap=True)
def study_sequences(ctx: Context) -> str:
    """examples/sweep_sequences.yaml: sequences in flight (timing-only)"""
    return _timing_study(ctx, "sweep_sequences.yaml", [
        "periphery.sequences", "latency_per_token_ns", "throughput_tokens_per_s",
        "stall.layer_busy_other_sequence_ns_per_token"])


@section("study-shared-counters", "docs/sweep.md", cheap=True)
def study_shared_counters(ctx: Context) -> str:
    """examples/sweep_shared_counters.yaml: output counters shared by n heads (timing-only)"""
    return _timing_study(ctx, "sweep_shared_counters.yaml", [
        "periphery.counters_shared_by", "status", "latency_per_layer_ns",
        "stall.output_counters_shared_ns_per_token", "error"])


@section("study-link-bandwidth", "docs/sweep.md", cheap=True)
def study_link_bandwidth(ctx: Context) -> str:
    """examples/sweep_link_bandwidth.yaml: bank-to-host bandwidth x sequences (timing-only)"""
    return _timing_study(ctx, "sweep_link_bandwidth.yaml", [
        "interconnect.links.bank_to_host.gbps", "periphery.sequences", "latency_per_layer_ns",
        "throughput_tokens_per_s", "stall.link_bank_to_host_ns_per_token"])


@section("traces", "traces/README.md", cheap=True)
def shipped_traces(ctx: Context) -> str:
    """the shipped traces as they are: format version, steps, arrays, size"""
    import warnings

    from gcsim.traces import open_trace
    lines = ["| file | format version | steps | arrays | size |", "|---|---|---|---|---|"]
    for path in sorted((ROOT / "traces").glob("*.gctrace")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # a format-1 file warns that its header is unchecked
            with open_trace(path) as tr:
                arrays = ", ".join(f"{name} {spec['dtype']}{list(spec['shape'])}"
                                   for name, spec in sorted(tr.header["arrays"].items()))
                version = tr.header.get("version", 1)
        lines.append(f"| `{path.name}` | {version} | {tr.steps:,} | {arrays} | "
                     f"{path.stat().st_size / 2**20:.2f} MiB |")
    return "\n".join(lines)


@section("charge-smollm2", "docs/cost-model.md", cheap=True)
def charge_smollm2(ctx: Context) -> str:
    """costs.array_read=charge against per_cell on the shipped SmolLM2 trace"""
    from gcsim import costs, simulate
    from gcsim.resources import DEFAULT_TRACE
    cell = simulate(DEFAULT_TRACE, "smollm2")
    charge = simulate(DEFAULT_TRACE, "smollm2", costs={"array_read": "charge"})
    kappa = costs.charge_pj(charge.raw.hw)
    per_cell = costs.derive(cell.raw.hw).actions_pj
    acts = charge.report["energy"]["by_action"]
    k_pj, v_pj = acts["k_column_read"]["pj_each"], acts["v_row_read"]["pj_each"]
    k_q, v_q = k_pj / kappa["k_column_read"], v_pj / kappa["v_row_read"]
    k_up, v_up = k_q / costs.CAL_K_COLUMN_UA_TMAX - 1, v_q / costs.CAL_V_ROW_UA_TMAX - 1
    a, a0 = charge.energy_by_paper_item_pj["phi_qk"], cell.energy_by_paper_item_pj["phi_qk"]
    b, b0 = charge.energy_by_paper_item_pj["phi_v"], cell.energy_by_paper_item_pj["phi_v"]
    return (f"On the shipped SmolLM2 trace ({cell.steps} steps, `gcsim run`), the mean charge per read is "
            f"{'above' if k_up > 0 else 'below'} the calibration's: {k_q:.1f} µA·T_max per K column ({100 * k_up:+.0f} %) "
            f"and {v_q:.1f} per V row ({100 * v_up:+.0f} %), so the K reads cost {k_pj:.3f} pJ instead of "
            f"{per_cell['k_column_read']:.3f} and the V rows {v_pj:.3f} instead of {per_cell['v_row_read']:.4g}: "
            f"φ(Q·Kᵀ) {a:.1f} pJ instead of {a0:.1f} and φ(S)·V {b:.1f} instead of {b0:.1f} per head and token "
            f"(the trace never fills the {cell.raw.hw.shape.window}-token window).")


# --- expensive sections --------------------------------------------------------------------

WINDOW_LAW_COST = ["shape.window", "numerics.cell_law", "full_window_steps", "latency_per_token_ns",
                   "energy_per_token_pj", "energy_item.phi_qk_pj"]
WINDOW_LAW = WINDOW_LAW_COST + ["out_rel_rmse_vs_softmax", "out_cosine_vs_softmax"]


def _window_law_trace(ctx: Context) -> Path:
    """The 2,100-step synthetic GPT-2 trace of examples/sweep_window_law.sh."""
    path = ctx.scratch("traces") / "gpt2-2100.gctrace"
    if not path.is_file():
        gcsim_output(["trace", "synth", "--model", "paper-gpt2", "--steps", "2100", "--seed", "0", "-o", str(path),
                      "--quiet"])
    return path


def _plots(result, out: Path, keep: dict[str, str]) -> None:
    """Draw the sweep's charts (as `gcsim sweep plot`) and copy those named in `keep` to docs/."""
    import shutil

    from gcsim.sweeps.plot import plot_sweep
    from gcsim.sweeps.table import write_outputs
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(out, result)
    plot_sweep(out, out)
    for src, dest in keep.items():
        shutil.copyfile(out / src, DOCS / dest)


@section("study-window-law", "docs/sweep.md", cheap=False)
def study_window_law(ctx: Context) -> str:
    """examples/sweep_window_law.yaml: window x cell law, functional, 2,100 steps; two charts"""
    t0 = time.time()
    spec = spec_with_trace(ROOT / "examples" / "sweep_window_law.yaml", _window_law_trace(ctx))
    result = run_sweep(ctx, spec)
    _plots(result, ctx.scratch("window-law"), {"pareto.png": "sweep-window-law-pareto.png",
                                               "axis-shape.window.png": "sweep-window-law-window.png"})
    jobs = result.provenance.get("jobs")
    return (markdown_table(result.rows, WINDOW_LAW) + "\n\n"
            + stamp("study-window-law", time.time() - t0, f" for {len(result.rows)} points on {jobs} workers"))


def table_cells(markdown: str) -> list[list[str]]:
    """The cells of a Markdown table's header and rows (the separator row left out)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|") and not line.startswith("|---")]


@checks("study-window-law")
def check_window_law(ctx: Context, body: str) -> list[str]:
    """The cost columns of the table against a timing-only run of the same points."""
    spec = spec_with_trace(ROOT / "examples" / "sweep_window_law.yaml", _window_law_trace(ctx))
    spec["mode"] = "timing-only"
    want = table_cells(markdown_table(run_sweep(ctx, spec).rows, WINDOW_LAW_COST))
    have = [row[:len(WINDOW_LAW_COST)] for row in table_cells(body)]
    if len(have) != len(want):
        return [f"{len(have) - 1} rows in the docs, {len(want) - 1} from the model"]
    return [f"row {i}: the docs say {' | '.join(h)}; the model gives {' | '.join(w)}"
            for i, (h, w) in enumerate(zip(have, want)) if h != w]


EVAL_WINDOW = ["shape.window", "numerics.cell_law", "perplexity", "top1_agreement", "kl", "latency_per_token_ns",
               "energy_per_token_pj", "energy_item.phi_qk_pj"]


@section("study-eval-window", "docs/sweep.md", cheap=False)
def study_eval_window(ctx: Context) -> str:
    """examples/sweep_eval_window_law.yaml: the chip model's accuracy against window x law; a chart"""
    t0 = time.time()
    result = run_sweep(ctx, ROOT / "examples" / "sweep_eval_window_law.yaml")
    _plots(result, ctx.scratch("eval-window"), {"axis-shape.window.png": "sweep-eval-window.png"})
    return (markdown_table(result.rows, EVAL_WINDOW) + "\n\n"
            + stamp("study-eval-window", time.time() - t0, f" on {result.provenance.get('jobs')} workers"))


@section("study-eval-noise", "docs/sweep.md", cheap=False)
def study_eval_noise(ctx: Context) -> str:
    """examples/sweep_eval_noise.yaml: the chip model's accuracy against read noise x cell spread"""
    t0 = time.time()
    result = run_sweep(ctx, ROOT / "examples" / "sweep_eval_noise.yaml")
    cols = ["numerics.noise.read_sigma_rel", "numerics.noise.cell_sigma_rel", "perplexity", "top1_agreement", "kl"]
    return (markdown_table(result.rows, cols) + "\n\n"
            + stamp("study-eval-noise", time.time() - t0, f" on {result.provenance.get('jobs')} workers"))


@section("timeline", "docs/profile.md", cheap=False)
def timeline(ctx: Context) -> str:
    """docs/timeline-stall-link.png: two sequences sharing a 64 Gbit/s link (gcsim profile --timeline)"""
    t0 = time.time()
    work = ctx.scratch("timeline")
    trace = work / "gpt2.gctrace"
    gcsim_output(["trace", "synth", "--model", "stall-link", "--steps", "4", "-o", str(trace), "--quiet"])
    gcsim_output(["profile", str(trace), "-m", "stall-link", "--timeline", "--timeline-steps", "0:1",
                  "--timeline-layers", "0,1", "-o", str(work / "link"), "--quiet"])
    sys.path.insert(0, str(ROOT / "examples"))
    from plot_timeline import plot_timeline
    plot_timeline(work / "link" / "timeline.json", DOCS / "timeline-stall-link.png",
                  title="gcsim timeline: stall-link, steps 0-1, layers 0-1")
    return ("![timeline of two sequences sharing a 64 Gbit/s link to the host](timeline-stall-link.png)\n\n"
            + stamp("timeline", time.time() - t0))


@section("architecture", "docs/architecture.md", cheap=False)
def architecture(ctx: Context) -> str:
    """docs/architecture.png: the component graph of gpt2-two-chips cut to two layers"""
    t0 = time.time()
    sys.path.insert(0, str(DOCS))
    from draw_architecture import main as draw
    draw(DOCS / "architecture.png")
    return ("![component graph of gpt2-two-chips cut to two layers](architecture.png)\n\n"
            + stamp("architecture", time.time() - t0))


# --- the chip in a system (docs/system.md) -------------------------------------------------

@section("system-paper-check", "docs/system.md", cheap=True)
def system_paper_check(ctx: Context) -> str:
    """the GPU-only roofline of one GPT-2 layer's attention beside the paper's measured GPU figures"""
    from gcsim import load_hardware, paper
    from gcsim.system import gpu_attention, host_device
    lines = ["| device, attention | batch | gcsim µs | of which roofline | paper µs | paper / gcsim | gcsim mJ | "
             "paper / gcsim |", "|---|---|---|---|---|---|---|---|"]
    names = {"rtx4090": "RTX 4090", "jetson-nano": "Jetson Nano"}
    for dev, att, batch in (("rtx4090", "fused", 64), ("rtx4090", "unfused", 64), ("rtx4090", "fused", 1),
                            ("rtx4090", "unfused", 1), ("jetson-nano", "fused", 64), ("jetson-nano", "unfused", 1)):
        hw = load_hardware("paper-gpt2").derive(host={"device": dev, "attention": att})
        d = host_device(hw)
        c = gpu_attention(hw, d, batch, 1024)
        us = c.time_ps / batch / 1e6
        roof = (c.time_ps - c.kernels * d.launch_overhead_ps) / batch / 1e6
        mj = c.total_pj / batch / 1e9
        ref = paper.GPUS[names[dev]]
        lines.append(f"| {names[dev]}, {att} | {batch} | {us:.2f} | {roof:.2f} | {ref['latency_us']:g} | "
                     f"{ref['latency_us'] / us:.1f}× | {mj:.2f} | {ref['energy_mj'] / mj:.1f}× |")
    return "\n".join(lines)


@section("system-run", "docs/system.md", cheap=True)
def system_run(ctx: Context) -> str:
    """`gcsim run -s host.device=rtx4090`: end to end per token on the shipped SmolLM2 trace"""
    out = gcsim_output(["run", "-s", "host.device=rtx4090", "--no-progress", "-o", str(ctx.tmp / "system-run")])
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("end to end per token"))
    last = next(i for i, line in enumerate(lines) if line.strip().startswith("speed-up"))
    return code_block("$ gcsim run -s host.device=rtx4090\n" + "\n".join(lines[first:last + 1]))


@section("system-curves", "docs/system.md", cheap=False)
def system_curves(ctx: Context) -> str:
    """`gcsim system`: GPT-2, SmolLM2-135M, Llama-3-8B beside the RTX 4090; a table and docs/system-curves.png"""
    from gcsim import load_hardware
    from gcsim.system.curves import break_even, curves, plot
    t0 = time.time()
    rows, lines = [], ["| model | window | attention share of the GPU-only step, 1 sequence at the window | "
                       "speed-up there | from context (≥ 1.1×, 1 sequence) | 64 sequences at the window |",
                       "|---|---|---|---|---|---|"]
    for name in ("paper-gpt2", "smollm2", "llama3-8b"):
        mine = curves(load_hardware(name).derive(host={"device": "rtx4090"}))
        rows += mine
        one = next(r for r in mine if r["curve"] == "sequences" and r["sequences"] == 1)
        many = next(r for r in mine if r["curve"] == "sequences" and r["sequences"] == 64)
        over = [r["sequences"] for r in mine if r["curve"] == "sequences" and not r["gpu_only_fits_memory"]]
        note = f"; GPU-only over the host's memory from {min(over)} sequences" if over else ""
        lines.append(f"| {name} | {one['window']} | {100 * one['gpu_only_attention_share']:.1f} % | "
                     f"{one['speedup']:.3f}× ({one['token_ns'] / 1e3:.1f} against {one['gpu_only_token_ns'] / 1e3:.1f} "
                     f"µs per token) | {break_even(mine)} | {many['speedup']:.2f}× (Amdahl bound "
                     f"{many['amdahl_bound']:.2f}×){note} |")
    plot(rows, DOCS / "system-curves.png")
    return ("![End-to-end speed-up and energy ratio of the chip beside an RTX 4090](system-curves.png)\n\n"
            + "\n".join(lines) + "\n\n" + stamp("system-curves", time.time() - t0))


@section("serving-rates", "docs/system.md", cheap=False)
def serving_rates(ctx: Context) -> str:
    """`gcsim serve`: GPT-2 beside the RTX 4090, 8 banks, Poisson 50..250/s; a table and docs/serving-latency.png"""
    import json
    import shutil
    t0 = time.time()
    out = ctx.scratch("serve") / "out"
    gcsim_output(["serve", "--quiet", "-o", str(out)])
    runs = json.loads((out / "serving.json").read_text())["runs"]
    shutil.copyfile(out / "serving.png", DOCS / "serving-latency.png")
    lines = ["| rate (requests/s) | TTFT p50 / p99 (ms) | TPOT p50 / p99 (ms) | queueing p99 (ms) | tokens/s | "
             "energy per request (mJ) |", "|---|---|---|---|---|---|"]
    for r in runs:
        rep = r["report"]
        lines.append(f"| {r['rate_per_s']:g} | {rep['ttft_ms']['p50']:.3f} / {rep['ttft_ms']['p99']:.3g} | "
                     f"{rep['tpot_ms']['p50']:.3f} / {rep['tpot_ms']['p99']:.3f} | {rep['queue_ms']['p99']:.3g} | "
                     f"{rep['throughput']['tokens_per_s']:.0f} | {rep['energy']['per_request_mj']:.0f} |")
    return ("![TTFT, TPOT and queueing delay percentiles against the arrival rate](serving-latency.png)\n\n"
            + "\n".join(lines) + "\n\n" + stamp("serving-rates", time.time() - t0))


# --- the checks of the checks (docs/validation.md) ----------------------------------------

@section("mutations", "docs/validation.md", cheap=False)
def mutations(ctx: Context) -> str:
    """tests/mutations/run.py: every planted bug against validate and the tests (40 min idle, hours busy); docs/validation-mutations.json"""
    import json
    t0 = time.time()
    record, table = DOCS / "validation-mutations.json", ctx.scratch("mutations") / "table.md"
    p = subprocess.run([sys.executable, str(ROOT / "tests" / "mutations" / "run.py"), "--tests-for", "all",
                        "--json", str(record), "--markdown", str(table)], cwd=ROOT, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"tests/mutations/run.py exited {p.returncode}")
    rec = json.loads(record.read_text())
    base = rec["baseline"]
    rates = "\n".join(f"- {line}" for line in rec["summary"].splitlines())
    return (table.read_text() + "\n" + rates + "\n\n"
            + f"Run of {rec['date']} on the tree at {rec['commit']}: {rec['wall_s'] / 60:.0f} min wall time "
              f"(the unmutated tree: validate {base['validate']['seconds']:.0f} s, tests "
              f"{base['tests']['seconds']:.0f} s); the record is [validation-mutations.json](validation-mutations.json).\n\n"
            + stamp("mutations", time.time() - t0))


# --- command line --------------------------------------------------------------------------

def differences(sec: Section, ctx: Context) -> list[str]:
    """What differs between the docs and the code for a cheap section (or an expensive one's check)."""
    have = current(sec)
    if sec.cheap:
        want = sec.make(ctx).strip("\n")
        if have == want:
            return []
        import difflib
        diff = difflib.unified_diff(have.splitlines(), want.splitlines(), "the docs", "the code now", lineterm="", n=1)
        return ["\n".join(diff)]
    return sec.check(ctx, have) if sec.check else []


# --- accuracy (issue 19): docs/accuracy.md and the README -----------------------------------

ABLATION_JSON = DOCS / "accuracy-ablation.json"   # gcsim adapt --ablation's ablation.json, as measured
CURVE_CSV, CURVE_PNG = DOCS / "accuracy-curve.csv", DOCS / "accuracy-curve.png"
# the folder of a finished `gcsim adapt --ablation` run (its logs make the adaptation curve)
ADAPT_DIR = Path(os.environ.get("GCSIM_ADAPT_DIR", ROOT / "out" / "adapt"))


def _ablation() -> dict:
    import json
    return json.loads(ABLATION_JSON.read_text(encoding="utf-8"))


@section("accuracy-ablation", "docs/accuracy.md", cheap=True)
def accuracy_ablation(ctx: Context) -> str:
    """the ablation at equal compute, from docs/accuracy-ablation.json (gcsim adapt --ablation)"""
    from gcsim.chipmodel.ablation import table_markdown
    data = _ablation()
    prov = data["provenance"]
    return (table_markdown(data) + f"\n\n<sub>From docs/accuracy-ablation.json (`{prov['command']}`), "
            f"evaluated {prov['evaluated_utc']} UTC over {data['eval_windows']} held-out windows of 256 "
            f"characters, gcsim source sha256 {prov['gcsim_source_sha256'][:12]}.</sub>")


@section("readme-accuracy", "README.md", cheap=True)
def readme_accuracy(ctx: Context) -> str:
    """the README's short accuracy table, from docs/accuracy-ablation.json"""
    rows = {r["arm"]: r for r in _ablation()["rows"]}
    twin = rows["softmax"]
    lines = ["| held-out tiny Shakespeare, " + f"{twin['windows']} windows of 256 characters | perplexity |",
             "|---|---|",
             f"| softmax twin (software) | {twin['reference_perplexity']:.3f} |"]
    for key, what in (("adapted_finetuned", "chip model (`gcsim adapt`: linear fine-tune, scaler adaptation, "
                                            "cubic fine-tune)"),
                      ("direct", "chip model fine-tuned from the twin without adaptation, same compute "
                                 "(the best: shipped)"),
                      ("scratch", "chip model trained from scratch, same compute")):
        r = rows.get(key)
        if r and r.get("simulator_perplexity"):
            lines.append(f"| {what}, simulator in the loop | {r['simulator_perplexity']:.3f} "
                         f"({r['simulator_gap_pct']:+.1f} %) |")
    return "\n".join(lines)


def _fmt_s(seconds) -> str:
    return "-" if seconds is None else f"{seconds:,.0f} s"


def _stages_table(stages: dict) -> str:
    """A table of training stages as their weights' provenance records them (stage -> meta)."""
    lines = ["| stage | starts from (parameters sha256) | recipe | iterations / passes | wall time | "
             "parameters sha256 |", "|---|---|---|---|---|---|"]
    for name, st in stages.items():
        src = st.get("source")
        start = "random initialisation (seed 1337)" if src is None else \
            f"{src['experiment']} ({src['params_sha256'][:12]})"
        if st.get("initial_scalers") == "closed-form":
            start += ", closed-form scalers"
        tc = st.get("train")
        if tc:
            recipe = (f"AdamW lr {tc['lr']:g} -> {tc['min_lr']:g}, warm-up {tc['warmup']}, batch "
                      f"{tc['batch_size']} x 256" + (f", gradient of the {st['grad_law']} law" if st.get("grad_law")
                                                     else ""))
            count = f"{st['iterations']:,}"
        else:
            ad = st["adaptation"]
            recipe = (f"scaler adaptation, alpha {ad['alpha_max']:g} -> {ad['alpha_min']:g} over "
                      f"{ad['alpha_passes']} passes, tol {ad['tol']:g}, at most {ad['max_passes']} passes")
            count = f"{st['passes']} ({'converged' if st['converged'] else 'not converged'})"
        lines.append(f"| {name} | {start} | {recipe} | {count} | {_fmt_s(st.get('train_seconds', st.get('seconds')))}"
                     f" | {st['params_sha256'][:12]} |")
    return "\n".join(lines)


@section("accuracy-recipe", "docs/accuracy.md", cheap=True)
def accuracy_recipe(ctx: Context) -> str:
    """the shipped weights' provenance: their stages' recipe, iterations, wall time and checksums"""
    from gcsim.chipmodel.adapt import params_sha256
    from gcsim.chipmodel.weights import SHIPPED, load_weights
    chip, twin = load_weights(SHIPPED["chip"]), load_weights(SHIPPED["softmax"])
    stages = dict(chip.meta["pipeline"]) if "pipeline" in chip.meta else \
        {"softmax": dict(twin.meta), chip.meta["experiment"]: dict(chip.meta)}
    last = list(stages)[-1]
    stages["softmax"]["params_sha256"] = params_sha256(twin.params)
    stages[last]["params_sha256"] = params_sha256(chip.params)
    for st in stages.values():   # the chain: each stage starts from the one before, by checksum
        assert "source" not in st or st["source"]["params_sha256"] in {s["params_sha256"] for s in stages.values()}
    total = sum(st.get("train_seconds", st.get("seconds", 0.0)) for st in stages.values())
    return (_stages_table(stages) + f"\n\nTotal {total:,.0f} s. `gcsim/data/chipgpt-softmax.npz` holds the "
            f"softmax stage's parameters, `gcsim/data/chipgpt-chip.npz` the {last} stage's (read from the files' "
            "own provenance; the checksums are recomputed from the parameters).")


@section("accuracy-curve", "docs/accuracy.md", cheap=False)
def accuracy_curve(ctx: Context) -> str:
    """the adaptation curve (the paper's Fig. 4c) from a finished gcsim adapt run's logs ($GCSIM_ADAPT_DIR)"""
    import shutil
    from gcsim.chipmodel.adapt import adaptation_curve, read_log, write_curve
    t0 = time.time()
    rows = adaptation_curve(ADAPT_DIR)
    if not rows:
        raise RuntimeError(f"no adaptation logs in {ADAPT_DIR} (set GCSIM_ADAPT_DIR to a gcsim adapt output folder)")
    refs = {}
    for label, stage in (("softmax twin", "softmax"), ("linear model", "linear")):
        evals = [r for r in read_log(ADAPT_DIR / stage / f"{stage}.log.jsonl") if "val_loss" in r]
        refs[label] = float(__import__("math").exp(evals[-1]["val_loss"]))
    tmp = ctx.scratch("curve")
    written = write_curve(tmp, rows, refs)
    shutil.copyfile(tmp / "curve.csv", CURVE_CSV)
    if tmp / "curve.png" not in written:
        raise RuntimeError("the adaptation curve's chart needs matplotlib: pip install -e '.[plot]'")
    shutil.copyfile(tmp / "curve.png", CURVE_PNG)
    lines = ["| stage | step | held-out perplexity |", "|---|---|---|"]
    for stage in ("linear", "calibrate", "cubic"):
        pts = [r for r in rows if r["stage"] == stage and r["heldout_perplexity"] is not None]
        for r in (pts[:2] + pts[-1:]) if stage != "calibrate" else pts:
            lines.append(f"| {stage} | {r['step']} | {r['heldout_perplexity']:.3f} |")
    refs_text = ", ".join(f"{k} {v:.3f}" for k, v in refs.items())
    import json
    pipeline = json.loads((ADAPT_DIR / "pipeline.json").read_text())
    stages = ("The pipeline's stages, as its final weights (`OUT/chipgpt-chip.npz`) record them "
              f"(total {pipeline['wall_seconds']:,.0f} s):\n\n" + _stages_table(pipeline["pipeline"]) + "\n\n")
    return (stages + "![the adaptation curve](accuracy-curve.png)\n\n" + "\n".join(lines)
            + f"\n\nHeld-out perplexity on the 4 batches of 16 x 256 characters every stage's log evaluates "
            f"(a smaller sample than the ablation's whole held-out text; last evaluations: {refs_text}). "
            f"Every row: [accuracy-curve.csv](accuracy-curve.csv) ({len(rows):,} rows: training loss per "
            f"iteration, held-out loss where evaluated, one row per calibration pass).\n\n"
            + stamp("accuracy-curve", time.time() - t0, f", from the logs of {ADAPT_DIR.name}/"))


def _eval_table(argv: list[str]) -> str:
    out = gcsim_output(argv + ["--no-progress"])
    return "\n".join(line for line in out.splitlines() if not line.startswith("wrote ")).rstrip()


@section("accuracy-eval", "docs/accuracy.md", cheap=False)
def accuracy_eval(ctx: Context) -> str:
    """`gcsim eval` on the shipped chip model: the default 64 windows and the whole held-out text"""
    t0 = time.time()
    default = _eval_table(["eval", "-o", str(ctx.scratch("eval-default"))])
    t1 = time.time()
    whole = _eval_table(["eval", "--windows", "all", "--sensitivity-windows", "0", "-o", str(ctx.scratch("eval-all"))])
    t2 = time.time()
    return ("`gcsim eval` (64 windows evenly spaced, " + f"{t1 - t0:.0f} s here):\n\n" + code_block(default)
            + f"\n\n`gcsim eval --windows all --sensitivity-windows 0` (every window, {t2 - t1:.0f} s here):\n\n"
            + code_block(whole) + "\n\n" + stamp("accuracy-eval", t2 - t0))


@section("accuracy-smollm2", "docs/accuracy.md", cheap=False)
def accuracy_smollm2(ctx: Context) -> str:
    """SmolLM2-135M with closed-form and with adapted scalers (no gradient step), 8 windows of 128"""
    import json
    t0 = time.time()
    base = ["eval", "--lm", "smollm2", "--window", "128", "--windows", "8", "--sim-windows", "0",
            "--sensitivity-windows", "0"]
    rows, sources = {}, {}
    for scalers in ("prompt", "adapt"):
        out = ctx.scratch(f"smollm2-{scalers}")
        gcsim_output(base + ["--scalers", scalers, "--quiet", "-o", str(out)])
        rep = json.loads((out / "eval.json").read_text())
        sources[scalers] = rep["scalers"]
        for r in rep["rows"]:
            rows.setdefault(r["variant"], {})[scalers] = r
    lines = ["| variant | closed-form scalers | adapted scalers |", "|---|---|---|"]
    for variant, by in rows.items():
        cells = [f"{by[k]['perplexity']:,.1f} (top-1 {100 * by[k]['top1_agreement']:.1f} %)" for k in ("prompt", "adapt")]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return ("\n".join(lines) + "\n\nScalers: closed form = " + sources["prompt"] + "; adapted = "
            + sources["adapt"] + ".\n\n`gcsim eval " + " ".join(base[1:]) + " --scalers prompt|adapt`\n\n"
            + stamp("accuracy-smollm2", time.time() - t0))


@section("readme-decode", "README.md", cheap=False)
def readme_decode(ctx: Context) -> str:
    """`gcsim decode --prompt "ROMEO:" -n 160`: the shipped chip model and the pipeline's ($GCSIM_ADAPT_DIR)"""
    import json
    t0 = time.time()
    parts = []
    for what, lm in (("the shipped chip model", []),
                     ("the adaptation pipeline's model (`--lm out/adapt/chipgpt-chip.npz`)",
                      ["--lm", str(ADAPT_DIR / "chipgpt-chip.npz")])):
        path = ctx.scratch("decode") / f"decode{len(parts)}.json"
        gcsim_output(["decode", "--prompt", "ROMEO:", "-n", "160", "--json", str(path), "--quiet"] + lm)
        res = json.loads(path.read_text())
        same = ("the same text as in software, the chip's numeric reference" if res["first_difference"] is None
                else f"(in software it differs first at generated character {res['first_difference']}: "
                     f"{res['software_text']!r})")
        lat = sum(res["latency_ns_per_step"]) / len(res["latency_ns_per_step"])
        parts.append(f"With {what}, the chip in the loop writes {same} ({lat:.0f} ns of chip attention per "
                     f"character):\n\n" + code_block("ROMEO:" + res["chip_text"]))
    return ("```bash\ngcsim decode --prompt \"ROMEO:\" -n 160\n```\n\n" + "\n\n".join(parts) + "\n\n"
            + stamp("readme-decode", time.time() - t0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="NAME", help="sections to regenerate (default: all)")
    ap.add_argument("--cheap", action="store_true", help="only the cheap sections")
    ap.add_argument("--list", action="store_true", help="list the sections")
    ap.add_argument("--check", action="store_true", help="compare the cheap sections (and checks) with the docs")
    ap.add_argument("-j", "--jobs", type=int, default=None, help="sweep workers (default: every core)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in SECTIONS]
    if unknown:
        ap.error(f"no section {unknown[0]!r}; sections: {', '.join(SECTIONS)}")
    chosen = [SECTIONS[n] for n in args.names] or [s for s in SECTIONS.values() if s.cheap or not args.cheap]
    if args.list:
        for s in SECTIONS.values():
            print(f"{s.name:<24} {'cheap' if s.cheap else 'expensive':<9} {s.page.relative_to(ROOT)}  {s.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="gcsim-docs-") as tmp:
        ctx = Context(Path(tmp), args.jobs)
        if args.check:
            bad = 0
            for s in chosen:
                found = differences(s, ctx)
                bad += bool(found)
                print(f"{s.name}: {'differs' if found else 'current'}" + "".join("\n  " + f for f in found))
            return 1 if bad else 0
        for s in chosen:
            t0 = time.time()
            changed = write(s, s.make(ctx))
            print(f"{s.name}: {'updated' if changed else 'unchanged'} {s.page.relative_to(ROOT)} "
                  f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
