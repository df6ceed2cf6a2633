"""Digital accumulator: the adder tree summing the sub-tile codes of each output dimension,
then the per-head affine output scaler y = a_out x sum + b_out.

It waits for the counts of every read round of a layer step (the join of the GQA rounds:
the critical path continues from the round that finished last), then adds.
Parameters: `timing.phases_ns.adder_tree`; shared like the counters (one periphery bank
for `counters_shared_by_layers` layers, claimed by the counters with the adder time).
Ports: in `counted` <- counters (CountDone); out `summed` -> controller (Summed).
Statistics: busy per head while adding and scaling. Energy: `adder_tree_add` per add
((active sub-tiles - 1) x d per head), `output_scaler` per output element.
"""
from __future__ import annotations

from ... import costs
from ...datapath import readout
from ..kernel import Component
from ..kernel.path import add


class DigitalAccumulator(Component):
    PARAMS = ("timing.phases_ns.adder_tree",)
    PORTS = {"counted": "in <- counters: CountDone", "summed": "out -> controller: Summed"}
    STATS = "busy while adding and scaling, per head"
    ACTIONS = ("adder_tree_add", "output_scaler")

    def __init__(self, sim, name):
        hw = sim.hw
        s = hw.shape
        super().__init__(sim, name, s.heads)
        self.adder_ps = costs.adder_tree_ps(hw)  # depth follows the sub-tiles (gcsim/costs.py)
        self.d, self.H_d = s.d_head, s.heads * s.d_head
        self.controllers = {}   # per layer served

    def serve(self, layer, controller):
        self.controllers[layer] = controller
        # per layer step: (active sub-tiles - 1) x d adds per head (a read has >= 1 active sub-tile)
        self.ledger.declare(self.name, "adder_tree_add", layer, const=-self.H_d, per_active=self.H_d)
        self.ledger.declare(self.name, "output_scaler", layer, const=self.H_d)

    # -- in: CountDone ---------------------------------------------------------------------
    def on_counted(self, rnd):
        job = rnd.job
        now = self.env._now
        if now >= job.last_end:
            job.last_end, job.last_path = now, rnd.path
        job.rounds_left -= 1
        if job.rounds_left:
            return
        l, step = job.layer, job.step
        end = now + self.adder_ps
        self.busy(now, end, step=step, layer=l, action="sum + scale")
        path = job.path = job.last_path
        add(path, "adder_tree", self.adder_ps)
        ctrl = self.controllers[l]
        if self.sim.values:
            job.out = readout(job.codes, ctrl.sc)
        self.send(end, ctrl.on_summed, job)
