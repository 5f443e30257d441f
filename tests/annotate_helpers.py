"""Command lines of `rankjax annotate run` for the annotation tests (not a test module)."""

import sys


def annotate_argv(
  log, db, *extra, backend="openai_http", model="m", base_url=None, subprocess=False
):
  """`annotate run` over the JSON Lines log `log` into the store `db`, quiet, then `extra`.

  `subprocess`: prefixed with this interpreter and `-m rankjax.cli`, for `subprocess.run`.
  """
  argv = ["annotate", "run", str(log), "--format", "jsonl", "--store", str(db)]
  argv += ["--backend", backend, *(["--base-url", base_url] if base_url else []), "--model", model]
  argv += ["--quiet", *map(str, extra)]
  return [sys.executable, "-m", "rankjax.cli", *argv] if subprocess else argv
