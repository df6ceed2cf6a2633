"""The shipped data: hardware descriptions (models/) and the default trace (traces/).

The top-level `models/` and `traces/` folders of the clone are the one copy users see and
edit. The package reaches them as package data through `gcsim/data/models` and
`gcsim/data/traces`, symlinks to those folders: in a clone or an editable install they
resolve to the folders themselves, and a wheel (`pip install .`, `pip wheel .`) stores the
files they point to, so an installed gcsim finds the same files with no second copy to keep
in step.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_dir(name: str) -> Path:
    """The folder of shipped data `name` ('models' or 'traces') as a file-system path."""
    # installs are unpacked on disk (pip never runs gcsim from a zip), so this is a real path
    return Path(str(resources.files("gcsim").joinpath("data", name))).resolve()


MODELS_DIR = data_dir("models")
TRACES_DIR = data_dir("traces")
DEFAULT_TRACE = TRACES_DIR / "smollm2-135m-default.gctrace"
