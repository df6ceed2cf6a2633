"""gcsim.sweep from a user's script, as docs/sweep.md shows it: with the `__main__` guard it
runs; without it, it stops at once with one line naming the script's line and the guard (each
spawned worker would run the script again), before any worker starts; and workers that die
while starting are said to be that, not points killed or out of memory."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "sweep_shared_counters.yaml"


def _run(tmp_path, body: str):
    script = tmp_path / "study.py"
    script.write_text(textwrap.dedent(body).format(spec=str(SPEC)))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_an_unguarded_script_is_told_to_add_the_guard_before_any_worker_starts(tmp_path):
    res = _run(tmp_path, """\
        import gcsim
        print("top level ran")
        table = gcsim.sweep({spec!r}, jobs=2)
        print("not reached")
        """)
    assert res.returncode == 1 and res.stdout == "top level ran\n"     # run once: no worker ran it again
    last = res.stderr.strip().splitlines()[-1]
    assert last == (f"gcsim.errors.UsageError: {tmp_path / 'study.py'}, line 3: gcsim starts worker processes, "
                    "and each runs this script again from the top; put the code that calls gcsim under "
                    "`if __name__ == \"__main__\":`")
    assert res.stderr.count("Traceback") == 1 and "bootstrapping" not in res.stderr
    assert "out of memory" not in res.stderr and not (tmp_path / "cache").exists()  # nothing planned or cached


def test_a_guarded_script_runs_the_sweep(tmp_path):
    res = _run(tmp_path, """\
        import gcsim


        def main():
            rows = gcsim.sweep({spec!r}, jobs=2)
            rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
            print([r["latency_per_layer_ns"] for r in rows if r["status"] == "ok"])


        if __name__ == "__main__":
            main()
        """)
    assert res.returncode == 0, res.stderr
    # 65 + (n - 1) x 15 ns for the head counts n dividing 12 (the spec's own hand calculation)
    assert res.stdout.strip() == "[65.0, 80.0, 95.0, 110.0, 140.0, 230.0]"
    assert "Traceback" not in res.stderr


def test_workers_dying_while_starting_stop_the_sweep_and_say_so(tmp_path):
    # the script removes itself: each spawned worker fails to run it again while starting
    res = _run(tmp_path, """\
        import os
        import gcsim
        if __name__ == "__main__":
            os.remove(__file__)
            try:
                gcsim.sweep({spec!r}, jobs=2)
            except gcsim.GcsimError as exc:
                print("GcsimError:", exc)
        """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ("GcsimError: the sweep's worker processes died while starting, before running "
                                  "any point (their error is printed above); nothing was computed")
    assert "out of memory" not in res.stdout + res.stderr


def test_gcsim_sweep_prints_the_table_and_quiet_prints_nothing(tmp_path, capsys):
    from gcsim.cli import main as cli
    argv = ["sweep", str(SPEC), "-o", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "-j", "2"]
    assert cli(argv + ["--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["periphery.counters_shared_by", "status", "latency_per_token_ns",
                                "energy_per_token_pj", "throughput_tokens_per_s", "error"]
    rows = {int(line.split()[0]): line.split()[1:] for line in lines[1:13]}
    # 12 layers x (65 + (n - 1) x 15) ns per token for the n dividing the 12 heads; others skipped
    for n in (1, 2, 3, 4, 6, 12):
        assert rows[n][:2] == ["ok", f"{12 * (65 + (n - 1) * 15):,}"]
    assert rows[5][0] == "skipped" and " ".join(rows[5][1:]) == "the counters must serve whole groups of heads"
    assert lines[14].startswith(f"sweep {SPEC}: 12 points: 6 ok, 0 failed, 6 skipped")
    assert cli(argv + ["--quiet", "-o", str(tmp_path / "out2")]) == 0
    assert capsys.readouterr().out == ""
