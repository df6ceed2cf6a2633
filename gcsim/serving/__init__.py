"""Serving: requests over simulated time on the chip beside its host (docs/system.md,
"Serving"): the requests (requests.py), the source of work they make for the host port
(source.py), the latency figures of a run (metrics.py)."""
