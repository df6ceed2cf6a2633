"""Print chosen columns of a sweep's table (OUT/results.csv) as a Markdown table.

    python examples/sweep_table.py OUT COLUMN [COLUMN ...]
"""
import csv
import sys
from pathlib import Path


def fmt(value: str) -> str:
    try:
        x = float(value)
    except ValueError:
        return value
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return str(int(x)) if x.is_integer() else f"{x:.4g}"


def main(out: str, columns: list[str]) -> None:
    with open(Path(out) / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing:
        sys.exit(f"{out}/results.csv has no column {missing[0]!r}; columns: {', '.join(rows[0])}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(fmt(r[c]) for c in columns) + " |")

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
