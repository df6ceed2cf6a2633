"""The witness: an independent, deliberately simple model of a hardware description's timing
(timing.py) and energy (energy.py), with each policy's rule (rules.py). It shares no code
with the simulator (gcsim/sim/) beyond the description loader (gcsim/hardware.py);
`gcsim validate` compares the two (gcsim/validation/)."""
from .rules import RULES, Unavailable, rules_for, witness_rule  # noqa: F401
from .timing import Schedule, schedule  # noqa: F401
