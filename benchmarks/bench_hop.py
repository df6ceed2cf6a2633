"""Cost of one message hop between component processes (gcsim/sim/kernel/component.py), with
SimPy's run loop and with gcsim's (gcsim/sim/kernel/environment.py), side by side in one
process: a ring of 11 components (a layer step's hop count) passing one message around, each
handler doing nothing but forwarding it (at once or 1 ps later, alternately). CPU time per
hop, median (min - max) of the repeats, the two loops alternated.

Run: python benchmarks/bench_hop.py [--hops 200000] [--repeats 7]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import simpy  # noqa: E402

from gcsim.sim.kernel import Activity, Component  # noqa: E402
from gcsim.sim.kernel.environment import Environment  # noqa: E402


class Sim:
    """What a Component needs of the simulator."""

    def __init__(self, env):
        self.env, self.activity, self.energy, self.components = env, Activity(None), None, {}

    def start(self, component, generator):
        return self.env.process(generator)


class Relay(Component):
    def on_msg(self, n):
        self.hops += 1
        if n < self.last:
            self.send(self.env._now + (n & 1), self.next.on_msg, n + 1)


def run(env, hops: int, ring: int = 11) -> float:
    sim = Sim(env)
    relays = [Relay(sim, f"r{i}") for i in range(ring)]
    for i, r in enumerate(relays):
        r.next, r.last, r.hops = relays[(i + 1) % ring], hops, 0
    relays[0].send(0, relays[0].on_msg, 0)
    t0 = time.process_time()
    if isinstance(env, Environment):
        env.run_until(env.timeout(hops))
    else:
        env.run(until=hops)
    return (time.process_time() - t0) / sum(r.hops for r in relays) * 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hops", type=int, default=200000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    res = {"SimPy's Environment.run": [], "gcsim Environment.run_until": []}
    for _ in range(args.repeats):
        res["SimPy's Environment.run"].append(run(simpy.Environment(), args.hops))
        res["gcsim Environment.run_until"].append(run(Environment(), args.hops))
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"ns of CPU time per message hop, ring of 11 components, {args.hops} hops, "
          f"median (min - max) of {args.repeats}; load average {load}")
    for name, xs in res.items():
        print(f"  {name:<30} {statistics.median(xs):6.0f}  ({min(xs):.0f} - {max(xs):.0f})")


if __name__ == "__main__":
    main()
