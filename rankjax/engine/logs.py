"""Run logs: metrics as JSONL and TensorBoard events in the workdir, and a progress display.

Every record is one JSON line `{"step": s, "<prefix>/<name>": value, ...}` in
`<workdir>/metrics.jsonl` and the same scalars in `<workdir>/tensorboard/`. Only process 0 writes.
A run restarted from a checkpoint appends, so steps between that checkpoint and the interruption
appear twice; the later record is the one the final state descends from.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import jax
import numpy as np
import tqdm
from tensorboardX import SummaryWriter


def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
  """Nested dict of scalars -> {"a/b/c": float}.

  >>> flatten({"loss": 1, "ndcg@10": {"all": 0.5}}, "train")
  {'train/loss': 1.0, 'train/ndcg@10/all': 0.5}
  """
  out = {}
  for k, v in tree.items():
    key = f"{prefix}/{k}" if prefix else str(k)
    if isinstance(v, dict):
      out.update(flatten(v, key))
    else:
      out[key] = float(np.asarray(v))
  return out


class MetricWriter:
  """Appends scalars to `metrics.jsonl` and TensorBoard (process 0 only)."""

  def __init__(self, workdir: str | os.PathLike):
    self.active = jax.process_index() == 0
    if self.active:
      workdir = pathlib.Path(workdir)
      self._jsonl = open(workdir / "metrics.jsonl", "a")
      self._tb = SummaryWriter(os.fspath(workdir / "tensorboard"))

  def write(self, step: int, scalars: dict[str, float]):
    if not self.active:
      return
    self._jsonl.write(json.dumps({"step": int(step), **scalars}) + "\n")
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tb.add_scalar(k, v, int(step))

  def close(self):
    if self.active:
      self._jsonl.close()
      self._tb.close()


class Progress:
  """A tqdm bar with steps/s and ETA on a terminal; otherwise a plain line every `every` steps."""

  def __init__(self, total: int, initial: int, every: int, stream=None):
    self.stream = stream or sys.stderr
    self.total, self.every = total, every
    self.tty = self.stream.isatty() and jax.process_index() == 0
    self.bar = (
      tqdm.tqdm(total=total, initial=initial, file=self.stream, unit="step", dynamic_ncols=True)
      if self.tty
      else None
    )
    self.last_step, self.last_time = initial, time.monotonic()
    self.start_step, self.start_time = initial, self.last_time

  def update(self, step: int, scalars: dict[str, float] | None = None):
    if self.bar is not None:
      self.bar.update(step - self.bar.n)
      if scalars:
        self.bar.set_postfix(
          {k.split("/")[-1]: f"{v:.4g}" for k, v in scalars.items()}, refresh=False
        )
      return
    if jax.process_index() or step % self.every and step != self.total:
      return
    now = time.monotonic()
    rate = (step - self.start_step) / max(now - self.start_time, 1e-9)
    eta = (self.total - step) / rate if rate else float("inf")
    shown = " ".join(f"{k}={v:.4g}" for k, v in (scalars or {}).items())
    print(
      f"step {step}/{self.total} {rate:.2f} steps/s eta {eta:.0f}s {shown}",
      file=self.stream,
      flush=True,
    )

  def close(self):
    if self.bar is not None:
      self.bar.close()
