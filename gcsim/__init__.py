"""gcsim: simulator of a gain-cell analog in-memory-computing attention accelerator."""

__version__ = "0.1.0"

from .errors import (GcsimError, NumericsError, ReferenceModelError, SimError,  # noqa: E402,F401
                     TraceError, UsageError)
from .hardware import Hardware, HardwareError, load_hardware  # noqa: E402,F401


def sweep(spec, **options):
    """Run a design-space sweep (docs/sweep.md) and return its table: a pandas DataFrame if
    pandas is installed, else a list of dicts. Options: jobs, ray, cache, out, progress."""
    from .sweeps import sweep as run
    return run(spec, **options)


def __getattr__(name):  # gcsim.simulate / gcsim.SimulationResult load the simulator on first use
    if name in ("simulate", "SimulationResult"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'gcsim' has no attribute {name!r}")
