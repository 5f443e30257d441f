"""`UserError`: the base of every error the user can fix, as opposed to a bug.

Bad input (`rankjax.data.readers.errors.InputError`), a config that cannot run
(`rankjax.configs.errors.ConfigError`), an unknown name of a registry (`registry.UnknownName`), a
workdir holding another run (`engine.train.WorkdirInUse`), a workdir none of whose checkpoints
restores (`engine.checkpoint.NoGoodCheckpoint`). The message says what is wrong and what to
change, one line per problem; the `rankjax` commands print it as `error:` lines and exit with
status 1 (`rankjax.cli.errors`). This module imports nothing, so the program recognises these
errors without importing what raises them (jax, orbax).
"""


class UserError(Exception):
  """An error the user fixes; the message (one line per problem) says what and how."""
