"""The simulator's timing, statistics and energy against the witness (gcsim/witness/), each
check exact unless it says otherwise:

- `times`: per sequence, step and layer, when the layer step began (host), its write ended,
  its read began and its outputs reached the host; every step's end; the elapsed time;
- `busy`: busy time of every component (summed over its units);
- `stalls`: stalled time of every component per cause;
- `retention`: per layer the refreshes, their time, the writes' wait for them, the slots
  rewritten, the refreshes past the safe age, the lost reads and the slot reads;
- `energy`: the action count of every (component, action), exact; its energy, the static
  energy and the total within 1e-12 relative (the same products summed in another order);
  an action whose energy depends on the data (`costs.array_read: charge`) by count only.

Each check is a dict: name, what it compares, `kind` ('exact' or the bound), `compared`
(how many numbers), `differences`, `first` (the first few, in words), `pass`.
"""
from __future__ import annotations

import math

import numpy as np

from ..streamio import in_chunks

ENERGY_REL = 1e-12
SHOWN = 5


def _check(name, what, kind="exact"):
    return {"name": name, "what": what, "kind": kind, "compared": 0, "differences": 0, "first": [], "pass": True}


def _differ(check, text):
    check["differences"] += 1
    check["pass"] = False
    if len(check["first"]) < SHOWN:
        check["first"].append(text)


def times(res, sched) -> dict:
    c = _check("times", "per sequence, step and layer: layer start, write end, read start, layer end; step ends; "
                        "elapsed")
    records = (("layer start", res.layer_start_ps, sched.layer_start), ("write end", res.write_ps, sched.write_end),
               ("read start", res.read_ps, sched.read_start), ("layer end", res.layer_end_ps, sched.layer_end),
               ("step end", res.step_end_ps, sched.step_end))
    earliest = None
    for name, sim, wit in records:
        for seq in range(len(wit)):
            for t0, rows in in_chunks(sim[seq]):
                ref = np.asarray(wit[seq][t0:t0 + len(rows)])
                c["compared"] += rows.size
                differ = rows != ref
                if not differ.any():
                    continue
                first = int(np.minimum(rows, ref)[differ].min())
                earliest = first if earliest is None else min(earliest, first)
                for idx in np.argwhere(differ)[:SHOWN]:
                    where = f"step {t0 + idx[0]}" + (f" layer {idx[1]}" if rows.ndim == 2 else "")
                    _differ(c, f"{name} of sequence {seq} {where}: simulator {int(rows[tuple(idx)])} ps, "
                               f"witness {int(ref[tuple(idx)])} ps")
                c["differences"] += int(differ.sum()) - min(int(differ.sum()), SHOWN)
    c["earliest_ps"] = earliest
    c["compared"] += 1
    if res.elapsed_ps != sched.elapsed_ps:
        _differ(c, f"elapsed: simulator {res.elapsed_ps} ps, witness {sched.elapsed_ps} ps")
    return c


def statistics(res, sched) -> tuple[dict, dict]:
    busy = _check("busy", "busy time of every component, summed over its units")
    stalls = _check("stalls", "stalled time of every component per cause, summed over its units")
    names = sorted(set(res.activity) | set(sched.busy_ps) | set(sched.stall_ps))
    for name in names:
        comp = res.activity.get(name)
        if comp is None:
            _differ(busy, f"{name}: not a component of the simulator, the witness books "
                          f"{sched.busy_ps.get(name, 0)} ps busy")
            continue
        busy["compared"] += 1
        want = sched.busy_ps.get(name, 0)
        if comp["busy_ps"] != want:
            _differ(busy, f"{name}: simulator {comp['busy_ps']} ps, witness {want} ps")
        got, ref = comp["stall_causes_ps"], sched.stall_ps.get(name, {})
        for cause in sorted(set(got) | set(ref)):
            stalls["compared"] += 1
            if got.get(cause, 0) != ref.get(cause, 0):
                _differ(stalls, f"{name} stalled `{cause}`: simulator {got.get(cause, 0)} ps, "
                                f"witness {ref.get(cause, 0)} ps")
    return busy, stalls


def retention(res, sched) -> dict:
    c = _check("retention", "per layer: refreshes, their time, writes' wait for them, slots rewritten, refreshes "
                            "past the safe age, lost reads, slot reads")
    per = res.retention.get("per_layer", {})
    for key, ref in sched.refresh_counts.items():
        got = per.get(key)
        for l, want in enumerate(ref):
            c["compared"] += 1
            have = None if got is None else int(got[l])
            if have != int(want):
                _differ(c, f"{key} of layer {l}: simulator {have}, witness {int(want)}")
    return c


def energy(ledger, count) -> dict:
    c = _check("energy", "count of every (component, action) exact; its energy, static and total energy",
               f"counts exact, energy within {ENERGY_REL:g} relative")
    sim = {(v["component"], v["action"]): v for v in ledger.by_action().values()}
    keys = sorted(k for k in set(sim) | set(count.counts) if sim.get(k, {}).get("count") or count.counts.get(k))
    data_dependent = set()
    for key in keys:
        comp, action = key
        got, want = sim.get(key, {}).get("count", 0), count.counts.get(key, 0)
        c["compared"] += 1
        if got != want:
            _differ(c, f"{comp}.{action} count: simulator {got}, witness {want}")
            continue
        each = count.pj_each.get(action)
        if each is None:
            data_dependent.add(action)
            continue
        c["compared"] += 1
        if not _close(sim[key]["energy_pj"], want * each):
            _differ(c, f"{comp}.{action} energy: simulator {sim[key]['energy_pj']!r} pJ, witness {want * each!r} pJ")
    for block in sorted(set(ledger.static_pj) | set(count.static_pj)):
        c["compared"] += 1
        got, want = ledger.static_pj.get(block, 0.0), count.static_pj.get(block, 0.0)
        if not _close(got, want):
            _differ(c, f"static {block}: simulator {got!r} pJ, witness {want!r} pJ")
    total = count.total_pj()
    if total is not None:
        c["compared"] += 1
        if not _close(ledger.total_pj(), total):
            _differ(c, f"total: simulator {ledger.total_pj()!r} pJ, witness {total!r} pJ")
    if data_dependent:
        c["note"] = f"{', '.join(sorted(data_dependent))}: energy depends on the data (costs.array_read: charge), " \
                    f"counts compared only"
    return c


def _close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=ENERGY_REL, abs_tol=1e-9)


def ages(recorder) -> dict:
    """The ages the simulator's reads used (every sequence, slots taking part) against the witness's."""
    c = _check("ages", "age of every stored value each read of every sequence used (the slots it takes part in)")
    c["compared"] = recorder.age_slots
    if recorder.first_age_difference is not None:
        q, t, l, m, own, ref = recorder.first_age_difference
        _differ(c, f"sequence {q} step {t} layer {l} slot {m}: simulator {own} ps, witness {ref} ps")
        c["differences"] = recorder.age_differences
    return c


def tie_note(times_check, ties) -> str | None:
    """Where the times differ first at or after simultaneous claims the witness recorded, say
    so: the simulator orders simultaneous messages by its components' inboxes, the witness
    first come, first served (docs/validation.md)."""
    earliest = times_check.get("earliest_ps")
    before = [tie for tie in ties if earliest is not None and tie[0] <= earliest]
    if not before:
        return None
    t, resource, first, second = before[-1]
    return (f"the first difference follows simultaneous claims at {t} ps on {resource}: the witness served "
            f"sequence {first[0]} step {first[1]} layer {first[2]} before sequence {second[0]} step {second[1]} "
            f"layer {second[2]} (first come, first served); the simulator orders simultaneous messages by its "
            f"components' inboxes, so the difference may be the order of that tie (docs/validation.md)")
