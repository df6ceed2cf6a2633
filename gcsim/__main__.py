"""`python -m gcsim` works like the `gcsim` command."""
import sys

from .cli import main

sys.exit(main())
