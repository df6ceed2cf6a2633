"""Issue policy of a layer controller (`periphery.issue`): when the next sequence's layer
step may start on a layer that is serving another (several sequences in flight).

- `serial` (the default): one layer step at a time, from the write until its outputs have
  left for the host; the next waits (`layer busy (other sequence)`).
- `overlap_write`: the token writer takes the next sequence's k, v (into that sequence's
  own arrays) as soon as it is free, while the current read is still running; the next
  read starts when the current layer step's outputs have left.
"""
from __future__ import annotations

from . import Policy, register


@register("issue", "serial")
class Serial(Policy):
    WRITE_DURING_READ = False


@register("issue", "overlap_write")
class OverlapWrite(Policy):
    WRITE_DURING_READ = True
