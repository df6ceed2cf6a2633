"""Requests of a serving run: when each arrives, how long its prompt is, how many tokens it
generates (docs/system.md, "Serving"). Either a seeded Poisson process or a CSV file with
one request per row: `arrival_ns,prompt_tokens,output_tokens` (a header row is allowed).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..hardware import PS_PER_NS
from ..safefile import MIB, read_text

MAX_REQUESTS = 1_000_000
CSV_COLUMNS = ("arrival_ns", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Request:
    index: int
    arrival_ps: int
    prompt: int       # tokens of the prompt (the prefill's K/V)
    output: int       # tokens generated: the first by the prefill, the rest by decode steps

    @property
    def length(self) -> int:
        """Positions the request occupies in its sequence: prompt + generated tokens."""
        return self.prompt + self.output


def _check(reqs: list[Request], where: str) -> list[Request]:
    if not reqs:
        raise UsageError(f"{where}: no request")
    if len(reqs) > MAX_REQUESTS:
        raise UsageError(f"{where}: {len(reqs)} requests; at most {MAX_REQUESTS:,}")
    for r in reqs:
        if r.arrival_ps < 0 or r.prompt < 1 or r.output < 1:
            raise UsageError(f"{where}: request {r.index}: expected arrival >= 0, prompt >= 1 and output >= 1 tokens, "
                             f"found {r.arrival_ps / PS_PER_NS:g} ns, {r.prompt}, {r.output}")
    return sorted(reqs, key=lambda r: (r.arrival_ps, r.index))


def poisson(rate_per_s: float, count: int, prompt: int | tuple[int, int], output: int | tuple[int, int],
            seed: int = 0) -> list[Request]:
    """`count` requests arriving as a Poisson process of `rate_per_s` (exponential gaps, the
    first at its gap after time 0); prompt and output lengths fixed, or uniform over [lo, hi]."""
    if not rate_per_s > 0 or count < 1:
        raise UsageError(f"poisson arrivals: expected a rate > 0 and a count >= 1, found {rate_per_s!r} and {count}")
    rng = np.random.default_rng(seed)
    gaps_ps = rng.exponential(1e12 / rate_per_s, count)
    arrivals = np.rint(np.cumsum(gaps_ps)).astype(np.int64)

    def lengths(spec):
        if isinstance(spec, int):
            return np.full(count, spec)
        lo, hi = spec
        return rng.integers(lo, hi + 1, count)
    p, o = lengths(prompt), lengths(output)
    return _check([Request(i, int(a), int(x), int(y)) for i, (a, x, y) in enumerate(zip(arrivals, p, o))],
                  "poisson arrivals")


def from_csv(path) -> list[Request]:
    """Requests from a CSV file of `arrival_ns,prompt_tokens,output_tokens` rows."""
    text = read_text(path, "request CSV", 64 * MIB, UsageError)
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and [c.strip() for c in rows[0]] == list(CSV_COLUMNS):
        rows = rows[1:]
    reqs = []
    for i, row in enumerate(rows):
        if len(row) != 3:
            raise UsageError(f"{path}: row {i + 1}: expected 3 columns {','.join(CSV_COLUMNS)}, found {len(row)}")
        try:
            a, p, o = float(row[0]), int(row[1]), int(row[2])
        except ValueError:
            raise UsageError(f"{path}: row {i + 1}: expected a number of ns and two whole numbers of tokens, "
                             f"found {row}") from None
        if not np.isfinite(a):
            raise UsageError(f"{path}: row {i + 1}: arrival {row[0]!r} is not a finite number of ns")
        reqs.append(Request(i, round(a * PS_PER_NS), p, o))
    return _check(reqs, str(path))
