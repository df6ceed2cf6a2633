"""End-to-end decode with the chip beside its host, against the GPU-only baseline (the same
host doing the attention itself), per generated token (docs/system.md).

The chip's side comes from a simulation (its critical path and its energy ledger: chip
actions, the host's actions, the links); the baseline is the roofline of the host alone at
the same sequences in flight and at each step's context (gcsim/system/roofline.py).
"""
from __future__ import annotations

import numpy as np

from .device import host_device
from .roofline import attention_ops, cost, footprint_bytes, host_layer, host_step

HOST_PATH = ("host compute", "stall:host busy")
BATCH_PATH = ("stall:host batch",)


def gpu_only_steps(hw, dev, batch: int, contexts) -> dict:
    """The GPU-only baseline's step at each context of `contexts` (tokens attended, the
    current one included), `batch` sequences in flight: {time_ps, energy_pj, attention_ps}
    arrays. One step gives each sequence one token."""
    contexts = np.asarray(contexts, np.int64)
    layer = host_layer(hw, dev, batch)
    step = host_step(hw, dev, batch)
    att = cost(attention_ops(hw.shape, batch, contexts, dev.bytes_per_element, dev.attention == "fused"), dev)
    L = hw.shape.layers
    time = L * (layer.time_ps + att.time_ps) + step.time_ps
    energy = L * (layer.total_pj + att.total_pj) + step.total_pj
    return {"time_ps": np.broadcast_to(time, contexts.shape), "energy_pj": np.broadcast_to(energy, contexts.shape),
            "attention_ps": np.broadcast_to(L * att.time_ps, contexts.shape)}


def path_split(mean_path_ps: dict) -> dict:
    """A step's mean critical path (category -> ps) split into the chip (its phases and its own
    waits), the host, the links and the wait for the other sequences of a host batch."""
    out = {"chip": 0.0, "host": 0.0, "links": 0.0, "batch_wait": 0.0}
    for cat, ps in mean_path_ps.items():
        if cat in HOST_PATH:
            out["host"] += ps
        elif cat in BATCH_PATH:
            out["batch_wait"] += ps
        elif cat.startswith(("link.", "stall:link.")):
            out["links"] += ps
        else:
            out["chip"] += ps
    return out


def energy_split(ledger) -> dict:
    """The run's energy (pJ) by side: the chip's actions and static power, the host's, the links'."""
    out = {"chip": 0.0, "host": 0.0, "links": 0.0}
    for row in ledger.by_action().values():
        comp = row["component"]
        side = "host" if comp == "host" else "links" if comp.startswith("link.") or row["action"] == "link" \
            else "chip"
        out[side] += row["energy_pj"]
    out["chip"] += sum(ledger.static_pj.values())
    return out


def system_report(res, first_context: int = 1) -> dict | None:
    """Per token: the chip's attention, the host's rest, the links and end to end (time and
    energy), the GPU-only baseline beside them, the speed-up and the energy ratio; None when
    the description names no host device. The run's first step attends to `first_context`
    tokens (1 from an empty cache; more after a prefill), and so does the baseline's."""
    hw = res.hw
    dev = host_device(hw)
    if dev is None:
        return None
    n_seq, T = hw.periphery.sequences, res.steps
    tokens = T * n_seq
    mean = res.path.mean_breakdown(T)
    split = path_split(mean)
    token_ns = sum(mean.values()) / 1000
    energy = energy_split(res.ledger)
    contexts = np.arange(first_context, first_context + T)
    base = gpu_only_steps(hw, dev, n_seq, contexts)
    base_ns = float(base["time_ps"].mean()) / 1000
    base_pj = float(base["energy_pj"].mean()) / n_seq
    total_pj = sum(energy.values())
    return {
        "device": dev.name, "precision": dev.precision, "batching": str(hw.periphery.batching),
        "sequences": n_seq,
        "per_token_ns": {"chip_attention": split["chip"] / 1000, "host": split["host"] / 1000,
                         "links": split["links"] / 1000, "batch_wait": split["batch_wait"] / 1000,
                         "end_to_end": token_ns},
        "per_token_pj": {"chip_attention": energy["chip"] / tokens, "host": energy["host"] / tokens,
                         "links": energy["links"] / tokens, "end_to_end": total_pj / tokens},
        "gpu_only": {"per_token_ns": base_ns, "per_token_pj": base_pj,
                     "attention_share": float(base["attention_ps"].mean() / base["time_ps"].mean()),
                     "contexts": [int(contexts[0]), int(contexts[-1])],
                     "fits_memory": footprint_bytes(hw, dev, n_seq, int(contexts[-1])) <= dev.memory_bytes},
        "host_memory_gb": {"weights": footprint_bytes(hw, dev) / 1e9,
                           "gpu_only": footprint_bytes(hw, dev, n_seq, int(contexts[-1])) / 1e9,
                           "capacity": dev.memory_bytes / 1e9},
        "attention_share": split["chip"] / 1000 / token_ns if token_ns else 0.0,
        "speedup": base_ns / token_ns if token_ns else 0.0,
        "energy_ratio": base_pj / (total_pj / tokens) if total_pj else 0.0,
    }


def format_system(sysrep: dict) -> list[str]:
    """The summary's lines for the end-to-end section."""
    t, e, g = sysrep["per_token_ns"], sysrep["per_token_pj"], sysrep["gpu_only"]
    us, uj = 1e-3, 1e-6
    lines = ["", f"end to end per token (host {sysrep['device']}, {sysrep['precision']}, "
                 f"{sysrep['sequences']} sequence(s), batching {sysrep['batching']}; docs/system.md)",
             f"  {'':<22} {'time us':>12} {'energy uJ':>12}",
             f"  {'chip attention':<22} {t['chip_attention'] * us:12.3f} {e['chip_attention'] * uj:12.4f}",
             f"  {'host (rest of model)':<22} {t['host'] * us:12.3f} {e['host'] * uj:12.4f}",
             f"  {'links':<22} {t['links'] * us:12.3f} {e['links'] * uj:12.4f}"]
    if t["batch_wait"]:
        lines.append(f"  {'batch wait':<22} {t['batch_wait'] * us:12.3f} {'':>12}")
    lines += [f"  {'end to end':<22} {t['end_to_end'] * us:12.3f} {e['end_to_end'] * uj:12.4f}",
              f"  {'GPU-only (same host)':<22} {g['per_token_ns'] * us:12.3f} {g['per_token_pj'] * uj:12.4f}"
              f"   (attention {100 * g['attention_share']:.1f} % of its step; contexts {g['contexts'][0]}.."
              f"{g['contexts'][1]})",
              f"  speed-up {sysrep['speedup']:.3f}x, energy ratio {sysrep['energy_ratio']:.3f}x "
              f"(GPU-only / with the chip)"]
    m = sysrep["host_memory_gb"]
    if not g["fits_memory"]:
        lines.append(f"  note: the GPU-only baseline needs {m['gpu_only']:.1f} GB (weights and K/V cache) of the "
                     f"host's {m['capacity']:g} GB: it would not fit")
    return lines
