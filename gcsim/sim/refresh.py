"""Compatibility: the refresh policies live in gcsim/sim/policies/refresh.py."""
from .policies.refresh import summary  # noqa: F401
