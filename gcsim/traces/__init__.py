"""Decode traces: the .gctrace file format, scaler calibration, synthetic traces, summaries."""

from .calibrate import calibrate, default_scalers
from .format import (Trace, TraceError, TraceFormatWarning, TraceWriter, open_trace, upgrade_trace,
                     write_trace)
from .summary import format_summary, summarize
from .synthetic import SyntheticGPT2, make_synthetic, write_synthetic

__all__ = ["Trace", "TraceError", "TraceFormatWarning", "TraceWriter", "open_trace", "upgrade_trace",
           "write_trace", "calibrate", "default_scalers", "summarize", "format_summary", "SyntheticGPT2", "make_synthetic",
           "write_synthetic"]
