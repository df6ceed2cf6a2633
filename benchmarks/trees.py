"""Another commit of this repository as a folder of files, for benchmarks that run an earlier
gcsim side by side with this tree (bench_sim, bench_values, bench_memory)."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tree_at(rev: str, where: Path) -> Path | None:
    """The files of commit `rev`, extracted with git archive into the new folder `where`
    (None if git or the commit is missing)."""
    where = Path(where)
    where.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return where
