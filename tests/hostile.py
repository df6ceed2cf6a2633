"""Running gcsim as a hostile user would, and judging the outcome: helpers of
test_reliability.py and test_hostile.py."""
import contextlib
import io
import resource
import signal

from gcsim.cli import main as cli

DOCUMENTED_EXITS = {0, 1, 2, 4}      # success, validate mismatch, bad input, sweep with failed points
CASE_TIMEOUT_S = 20                  # a case that takes longer is a hang


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds=CASE_TIMEOUT_S):
    def alarm(signum, frame):
        raise Hang(f"a case ran longer than {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_cli(argv, seconds=CASE_TIMEOUT_S):
    """(exit code, stdout, stderr) of `gcsim ARGV` in this process, within a time limit."""
    out, err = io.StringIO(), io.StringIO()
    with time_limit(seconds), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli(argv)
        except SystemExit as exc:  # argparse: a malformed command line
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(rc, err, needle=None):
    """Exit 2 and one line on stderr, `gcsim ...: error: ...`, no traceback or usage block."""
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gcsim") and ": error: " in lines[0], err
    assert "Traceback" not in err and "internal error" not in err and "usage:" not in err
    if needle is not None:
        assert needle in err, err


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
