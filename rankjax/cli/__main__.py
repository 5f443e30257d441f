"""`python -m rankjax.cli ...` is the `rankjax` program."""

import sys

from rankjax.cli import main

if __name__ == "__main__":
  sys.exit(main())
