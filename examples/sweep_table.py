"""Print chosen columns of a sweep's table (OUT/results.csv) as a Markdown table.

    python examples/sweep_table.py OUT COLUMN [COLUMN ...]
"""
import sys
from pathlib import Path

from gcsim.sweeps.table import format_table, read_table


def main(out: str, columns: list[str]) -> None:
    rows = read_table(Path(out))
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing:
        sys.exit(f"{out}/results.csv has no column {missing[0]!r}; columns: {', '.join(rows[0])}")
    print(format_table(rows, columns, markdown=True))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
