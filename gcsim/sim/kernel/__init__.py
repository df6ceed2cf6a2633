"""The simulation kernel: components, channels, resources, statistics, energy, critical path."""
from .channel import Channel  # noqa: F401
from .component import Component, Inbox  # noqa: F401
from .energy import EnergyLedger  # noqa: F401
from .path import CriticalPath  # noqa: F401
from .resource import Resource  # noqa: F401
from .stats import AccountingError, Activity, Timeline  # noqa: F401
