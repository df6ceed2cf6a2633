"""Subcommands of the `gcsim` command line, one module each."""
