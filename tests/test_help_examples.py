"""Every command's --help ends with examples, and each example parses with the real parser."""
import shlex

import pytest

from gcsim.cli import build_parser
from gcsim.commands.examples import EXAMPLES


def _commands(parser, prefix=""):
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _commands(sub, f"{prefix}{name} ")


def test_every_command_has_examples():
    names = [name for name, sub in _commands(build_parser())]
    missing = [n for n, sub in _commands(build_parser()) if "examples:\n  gcsim " not in sub.format_help()]
    assert names and not missing, missing


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_examples_parse(key):
    for line in EXAMPLES[key].splitlines():
        argv = shlex.split(line.split("  #")[0])
        assert argv[0] == "gcsim"
        args = build_parser().parse_args(argv[1:])   # argparse exits (SystemExit) on a bad option
        assert args.command == key.split()[0]
