"""Run `gcsim validate` (the command, in this process) on every scenario of scenarios.py and
print one JSON line per scenario: its exit status (0 pass, 1 a check failed, other: the
command crashed) and the checks that failed. Exit 1 if any scenario did not pass; with
--first, stop at the first scenario that does not pass (what a mutation needs to be caught).
Run from a tree's root with that tree on PYTHONPATH."""
from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenarios import scenarios  # noqa: E402


def failed_checks(report_path: Path) -> list[str]:
    try:
        rep = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return []
    out = [c["name"] for c in rep.get("witness", {}).get("checks", []) if c.get("pass") is False]
    if not all(r["pass"] for r in rep.get("layers", [])):
        out.append("(a) values")
    if not rep.get("invariants", {}).get("pass", True):
        out.append("(i) invariants")
    return out


def main(argv=None) -> int:
    first = "--first" in (sys.argv[1:] if argv is None else argv)
    from gcsim.cli import main as gcsim
    from gcsim.hardware import load_hardware, parse_overrides
    from gcsim.traces import write_synthetic
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        traces = {}
        for name, model, sets, steps in scenarios():
            hw = load_hardware(model)
            if sets:
                hw = hw.derive(**parse_overrides(sets))
            s = hw.shape
            key = (s.layers, s.heads, s.kv_heads, s.d_head)
            if key not in traces:
                traces[key] = Path(tmp) / f"t{len(traces)}.gctrace"
                write_synthetic(traces[key], layers=s.layers, heads=s.heads, kv_heads=s.kv_heads, d_head=s.d_head,
                                steps=max(sc[3] for sc in scenarios()), seed=1)
            report = Path(tmp) / "report.json"
            report.unlink(missing_ok=True)
            argv = ["validate", str(traces[key]), "-m", model, "--steps", str(steps), "--stage-steps", "2", "-q",
                    "--json", str(report)] + [x for kv in sets for x in ("-s", kv)]
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    rc = gcsim(argv)
            except BaseException as exc:   # noqa: BLE001  (a planted bug may raise anything)
                rc, err = 99, io.StringIO(repr(exc))
            line = {"scenario": name, "exit": rc, "failed": failed_checks(report) if rc == 1 else []}
            if rc not in (0, 1):
                line["error"] = err.getvalue().strip().splitlines()[-1:] if err.getvalue() else []
            print(json.dumps(line), flush=True)
            worst = max(worst, rc)
            if first and worst:
                break
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
