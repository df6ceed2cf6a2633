"""gcsim: simulator of a gain-cell analog in-memory-computing attention accelerator."""

__version__ = "0.1.0"
