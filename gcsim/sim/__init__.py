"""The event-driven simulator (SimPy): components, accounting and the engine."""
from .kernel import AccountingError, Timeline  # noqa: F401
from .engine import ArrayTrace, SimError, SimResult, Simulator, check_fit  # noqa: F401
