"""Design-space sweeps: many independent simulations from one YAML description, run in
parallel on local worker processes or Ray, cached and resumable (docs/sweep.md).

    import gcsim
    table = gcsim.sweep("examples/sweep_window_law.yaml")   # pandas DataFrame (or list of dicts)

(The package is gcsim.sweeps; gcsim.sweep is the function.)
"""
from __future__ import annotations

from .spec import SpecError, SweepSpec, load_spec, parse_spec  # noqa: F401


def sweep(spec, *, jobs: int | None = None, ray=None, cache=None, out=None, progress: bool = False):
    """Run a sweep and return its table: a pandas DataFrame if pandas is installed, else a list
    of dicts (one per point, in point order). spec: a YAML path, a dict or a SweepSpec; see
    run_sweep for jobs, ray and cache; out: also write the table there (as `gcsim sweep -o`)."""
    from .runner import run_sweep
    from .table import as_frame, write_outputs
    if ray in (None, False):
        from ..parallel import check_main_guarded
        check_main_guarded()        # before any work: a script's unguarded top level cannot start workers
    if out is None:
        return as_frame(run_sweep(spec, jobs=jobs, ray=ray, cache=cache, progress=progress))
    from ..outdir import output_dir
    with output_dir(out) as tmp:              # an unusable OUT fails before the points run
        result = run_sweep(spec, jobs=jobs, ray=ray, cache=cache, progress=progress)
        write_outputs(tmp, result)
    return as_frame(result)
