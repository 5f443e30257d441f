"""Where rankjax finds the real data sets: `RANKJAX_DATA`, else `../shared/data`."""

import os
import pathlib

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent


def data_dir() -> pathlib.Path:
  """The data directory: `$RANKJAX_DATA` if set, else `<project root>/../shared/data`."""
  env = os.environ.get("RANKJAX_DATA")
  if env:
    return pathlib.Path(env).expanduser().resolve()
  return (PROJECT_ROOT.parent / "shared" / "data").resolve()


def data_path(*parts: str) -> pathlib.Path:
  """A path inside the data directory (not checked for existence)."""
  return data_dir().joinpath(*parts)
