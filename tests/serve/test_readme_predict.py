"""The README's "Predict and export" section runs as written (on a few training steps): every
command of its bash block, then its Python snippet on the exported artifact."""

import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from train_helpers import CACHE_ENV, ROOT

from rankjax.data import paths

TINY = ["--config.total_steps=4", "--config.eval.every=2", "--config.checkpoint.every=2"]


def _section() -> str:
  return (ROOT / "README.md").read_text().split("## Predict and export", 1)[1].split("\n## ", 1)[0]


@pytest.mark.slow
def test_every_command_of_the_section_runs(tmp_path, shared_data):
  shared_data("mslr_web10k_sample")
  (bash,) = re.findall(r"```bash\n(.*?)\n```", _section(), flags=re.S)
  (snippet,) = re.findall(r"```python\n(.*?)\n```", _section(), flags=re.S)
  outputs = []
  for line in bash.splitlines():
    line = line.replace("/tmp/rankjax_", f"{tmp_path}/").replace(
      "../shared/data", str(paths.data_dir())
    )
    program, *args = shlex.split(line)
    command = (
      [sys.executable, *args]
      if program.endswith("python")
      else [sys.executable, "-m", "rankjax.cli", *args]
    )
    if args[0] == "train":
      command += TINY
    proc = subprocess.run(
      command,
      cwd=ROOT,
      env={**os.environ, **CACHE_ENV},
      capture_output=True,
      text=True,
      timeout=600,
    )
    assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
    outputs.append(proc.stdout)
  assert outputs[1].splitlines()[-1].endswith(f"wrote 43 queries to {tmp_path}/new.run")
  assert outputs[2].splitlines()[-1].startswith("exported checkpoint step ")
  assert outputs[4].splitlines()[-1] == (
    f"checkpoint step 4 (latest): wrote 43 queries to {tmp_path}/latest.run"
  )
  assert "## rankjax metrics" in outputs[5] and "## ranx: all (" in outputs[5]
  # The Python snippet, on 2 lists of 5 items.
  x, m = np.ones((2, 5, 136), np.float32), np.ones((2, 5), bool)
  scope = {"x": x, "m": m}
  exec(snippet.replace("/tmp/rankjax_", f"{tmp_path}/"), scope)  # pylint: disable=exec-used
  assert np.asarray(scope["scores"]).shape == (2, 5)
