"""The results table of a sweep on disk: results.csv, results.parquet (pyarrow) and
sweep.json (the spec, the counts, the columns and provenance)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

TABLE_CSV, TABLE_PARQUET, SWEEP_JSON = "results.csv", "results.parquet", "sweep.json"


def _column_kind(values) -> str:
    """bool | int | float | str for a column (None ignored); mixed numbers -> float,
    anything else mixed -> str."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return "str"
    if kinds == {bool}:
        return "bool"
    if kinds <= {int}:
        return "int"
    if kinds <= {int, float}:
        return "float"
    return "str"


def normalized(rows, columns) -> dict:
    """{column: list of values} with one type per column."""
    out = {}
    for c in columns:
        vals = [r.get(c) for r in rows]
        kind = _column_kind(vals)
        if kind == "float":
            vals = [None if v is None else float(v) for v in vals]
        elif kind == "str":
            vals = [None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in vals]
        out[c] = vals
    return out


def _csv_cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)   # repr: the shortest exact form
    return v


def write_csv(path: Path, rows, columns) -> None:
    cols = normalized(rows, columns)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for i in range(len(rows)):
            w.writerow([_csv_cell(cols[c][i]) for c in columns])


def write_parquet(path: Path, rows, columns) -> bool:
    """False (nothing written) when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    cols = normalized(rows, columns)
    types = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    arrays = [pa.array(cols[c], type=types[_column_kind(cols[c])]) for c in columns]
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), path)
    return True


def write_outputs(directory: Path, result) -> list[str]:
    """Write the table and sweep.json into `directory`; returns the file names written."""
    written = [TABLE_CSV]
    write_csv(directory / TABLE_CSV, result.rows, result.columns)
    if write_parquet(directory / TABLE_PARQUET, result.rows, result.columns):
        written.append(TABLE_PARQUET)
    meta = {"spec": result.spec.data, "spec_source": result.spec.source, "counts": result.counts,
            "fields": result.spec.fields, "columns": result.columns, "provenance": result.provenance}
    (directory / SWEEP_JSON).write_text(json.dumps(meta, indent=2, sort_keys=False, default=str) + "\n")
    written.append(SWEEP_JSON)
    return written


def read_table(directory: Path) -> list[dict]:
    """The rows of OUT/results.csv with numbers parsed back (for plotting)."""
    with open(Path(directory) / TABLE_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k, v in row.items():
            row[k] = _parse(v)
    return rows


def _parse(v: str):
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def as_frame(result):
    """A pandas DataFrame if pandas is installed, else the list of row dicts."""
    try:
        import pandas as pd
    except ImportError:
        return [dict(r) for r in result.rows]
    cols = normalized(result.rows, result.columns)
    return pd.DataFrame({c: cols[c] for c in result.columns}, columns=result.columns)
