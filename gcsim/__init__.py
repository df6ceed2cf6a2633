"""gcsim: simulator of a gain-cell analog in-memory-computing attention accelerator."""

__version__ = "0.1.0"

from .errors import (GcsimError, NumericsError, ReferenceModelError, SimError,  # noqa: E402,F401
                     TraceError, UsageError)
from .hardware import Hardware, HardwareError, load_hardware  # noqa: E402,F401
