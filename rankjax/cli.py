"""What the command-line entry points share."""

import functools


def one_line_errors(main):
  """`main` where a missing input file ends the program with one line naming it, not a traceback.

  Exit status 1, message "error: <the exception's message>". Every other exception keeps its
  traceback. Entry points wrap their `main` where they call it, so that tests calling `main`
  still see the exception.
  """

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except FileNotFoundError as e:
      raise SystemExit(f"error: {e}") from None

  return wrapped
