"""The chip's components, one file each (see each module's docstring: parameters, ports,
statistics, energy actions)."""
