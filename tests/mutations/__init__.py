"""The mutation harness (docs/validation.md): realistic bugs planted one at a time in a scratch
copy of the tree, to measure what `gcsim validate` and the tests catch. Not part of the default
test run: `python tests/mutations/run.py`."""
