"""Compatibility: the statistics and the energy ledger live in gcsim/sim/kernel/."""
from .kernel.energy import EnergyLedger  # noqa: F401
from .kernel.stats import AccountingError, Activity, Timeline  # noqa: F401
