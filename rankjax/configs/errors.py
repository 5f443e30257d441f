"""The error of a config that cannot run, apart from its checks (`rankjax.configs.validate`), so
that the program can recognise it without importing what the checks import."""

from collections.abc import Iterable

from rankjax.errors import UserError


class ConfigError(UserError, ValueError):
  """A config that cannot run: one line per violation, each naming the key, the bad value and
  what is allowed (`lines`; the message is the lines joined)."""

  def __init__(self, lines: Iterable[str]):
    self.lines = tuple(lines)
    super().__init__("\n".join(self.lines))
