"""The error of input a user must fix (a malformed labelled file, a feature index past the
declared count, a file in another encoding), as opposed to a bug.

Its message names the file and, where there is one, the line, and says what to change; the
`rankjax` commands print it as one line and exit with status 1 (`rankjax.cli.errors`).
"""

from rankjax.errors import UserError


class InputError(UserError, ValueError):
  """Bad input; the message names the file (and line) and what to change."""
