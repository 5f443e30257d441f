"""`python -m rankjax.main ...` is `rankjax train ...` (`rankjax.cli.train`), kept for the command
lines written with it: it trains, or runs the study of a config with a `study` section."""

import sys

from rankjax.cli import errors, train

if __name__ == "__main__":
  errors.one_line_errors(train.main)(sys.argv[1:], prog="python -m rankjax.main")
