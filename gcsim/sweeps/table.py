"""The results table of a sweep on disk: results.csv, results.parquet (pyarrow) and
sweep.json (the spec, the counts, the columns and provenance)."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..errors import UsageError
from ..readback import RecordError, integer, list_of, map_of, mapping, one_of, text, validate
from ..safefile import MIB, read_json, read_text

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


MAX_META_BYTES, MAX_TABLE_BYTES = 64 * MIB, 256 * MIB
STATUSES = ("ok", "failed", "skipped")
SWEEP_SCHEMA = mapping({"spec": mapping({}, {"mode": one_of("timing-only", "functional", "validate", "eval"),
                                             "name": text(nullable=True)}, extra=True),
                        "spec_source": text(), "counts": map_of(integer(lo=0)), "fields": list_of(text(max_len=1000)),
                        "columns": list_of(text(max_len=1000)), "provenance": mapping({}, extra=True)})


def _refuse(path, exc) -> UsageError:
    msg = str(exc)
    return UsageError(msg if msg.startswith(str(path)) else f"{path}: {msg}")


def read_meta(directory: Path) -> dict:
    """OUT/sweep.json, checked against its schema (UsageError naming the field if not)."""
    path = Path(directory) / SWEEP_JSON
    try:
        return validate(read_json(path, "sweep.json", MAX_META_BYTES, RecordError), SWEEP_SCHEMA)
    except RecordError as exc:
        raise _refuse(path, exc) from None


def read_table(directory: Path, columns: list[str] | None = None, numeric=()) -> list[dict]:
    """The rows of OUT/results.csv with numbers parsed back (for plotting), checked: the
    header is `columns` (sweep.json's), every row has a status, and the `numeric` columns of
    the rows that ran are finite numbers or empty."""
    path = Path(directory) / TABLE_CSV
    try:
        reader = csv.reader(io.StringIO(read_text(path, "results table", MAX_TABLE_BYTES, RecordError), newline=""))
        header = next(reader, None)
        if header is None or (columns is not None and header != columns) or "status" not in header:
            raise RecordError("the header does not list the columns sweep.json names")
        rows = []
        for i, cells in enumerate(reader, start=1):
            if len(cells) != len(header):
                raise RecordError(f"row {i}: {len(cells)} cells for {len(header)} columns")
            row = {k: _parse(v) for k, v in zip(header, cells)}
            if row["status"] not in STATUSES:
                raise RecordError(f"row {i}, column 'status': expected one of {STATUSES}, found {str(row['status'])[:40]!r}")
            for c in numeric if row["status"] == "ok" else ():
                v = row.get(c)
                if v is not None and (type(v) not in (int, float) or not math.isfinite(v)):
                    raise RecordError(f"row {i}, column '{c}': expected a finite number, found {str(v)[:40]!r}")
            rows.append(row)
    except (RecordError, csv.Error) as exc:
        raise _refuse(path, exc) from None
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


def cell_text(value) -> str:
    """A table cell as people read it: thousands separated from 1,000 on, whole numbers
    without a point, 4 significant digits otherwise; None as an empty cell. Numbers written
    as text (a CSV cell) read the same."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return str(value)
    try:
        x = float(value)
    except ValueError:
        return value
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return str(int(x)) if x.is_integer() else f"{x:.4g}"


MAIN_METRICS = {   # what `gcsim sweep` prints after the swept fields, by mode
    "timing-only": ["latency_per_token_ns", "energy_per_token_pj", "throughput_tokens_per_s"],
    "functional": ["latency_per_token_ns", "energy_per_token_pj", "out_rel_rmse_vs_softmax"],
    "validate": ["latency_per_token_ns", "energy_per_token_pj", "validate_pass", "code_mismatches"],
    "eval": ["perplexity", "top1_agreement", "kl", "latency_per_token_ns", "energy_per_token_pj"],
}


def main_columns(result) -> list[str]:
    """The swept fields (and the trace, when several), the status and the mode's main metrics
    present in the table; the error column only when some point failed or was skipped."""
    spec = result.spec
    cols = (["trace"] if len(spec.traces) > 1 else []) + list(spec.fields) + ["status"]
    cols += [c for c in MAIN_METRICS.get(spec.mode, []) if c in result.columns]
    if any(r.get("error") for r in result.rows):
        cols.append("error")
    return cols


def format_table(rows, columns, *, markdown: bool = False) -> str:
    """Rows as a Markdown table, or as aligned plain text for a terminal."""
    cells = [[cell_text(r.get(c)) for c in columns] for r in rows]
    if markdown:
        esc = [[t.replace("|", "\\|") for t in row] for row in cells]
        return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                          *("| " + " | ".join(row) + " |" for row in esc)])
    width = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    def line(items):
        return "  ".join(t.ljust(w) if i == len(items) - 1 else t.rjust(w) if _numeric(t) else t.ljust(w)
                         for i, (t, w) in enumerate(zip(items, width))).rstrip()
    return "\n".join([line(columns), *(line(row) for row in cells)])


def _numeric(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False
