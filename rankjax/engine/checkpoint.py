"""Checkpoints with orbax: train state plus the input iterator's state, saved together.

`<workdir>/checkpoints/<step>/` holds items "state" (the TrainState pytree) and "data" (the grain
iterator state as JSON), so a restarted run continues with the exact next batch. The manager keeps
the latest `keep` checkpoints and the best one by a validation metric. Saves are asynchronous;
`wait()` blocks until they are on disk.

A checkpoint that does not restore (a truncated or missing file, corrupt metadata, an iterator
state that is not JSON, random bytes, ...) is never fatal while an older one restores:
`restore_newest_good` says which one is bad and why, moves it aside into
`<workdir>/checkpoints/corrupt/` (never deleting it) and tries the next newest. When none
restores, `NoGoodCheckpoint` says so and which were moved aside, rather than letting the run start
over on top of them. One whose metrics do not read is moved aside as the `Checkpointer` opens (see
there).

`PreemptionGuard` turns SIGTERM (how clusters and cloud VMs announce preemption) into a flag the
training loop polls: it then saves, waits for the write, and exits cleanly.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import signal
import sys
from collections.abc import Callable

import jax
import orbax.checkpoint as ocp

from rankjax import errors, registry

# `best_mode` -> whether the best checkpoint's order is reversed (orbax's `BestN` keeps the
# largest metric unless reversed).
BEST_MODES = {"max": False, "min": True}

# Where unrestorable checkpoints go, under the checkpoints directory: orbax lists only step-named
# entries, so it neither resumes from nor garbage-collects what is here.
CORRUPT_DIR = "corrupt"


def _not_the_checkpoints_fault(error: Exception) -> bool:
  """Out of host or device memory, or no permission to read: the checkpoint may well be good."""
  return isinstance(error, MemoryError | PermissionError) or str(error).startswith(
    "RESOURCE_EXHAUSTED"
  )


class NoGoodCheckpoint(errors.UserError):
  """The workdir has checkpoints, and none of them restores."""


class DamagedCheckpoint(errors.UserError):
  """A checkpoint a read-only `Checkpointer` cannot open (its metrics do not read) and may not
  move aside."""


class Checkpointer:
  """Saves and restores (state, data iterator state) under `<workdir>/checkpoints`.

  Args:
    workdir: the run's directory.
    keep: how many of the latest checkpoints to keep.
    best_metric: flat metric name (e.g. "validation/ndcg@10/all") whose best checkpoint is also
      kept; "" keeps only the latest.
    best_mode: a name in `BEST_MODES`, "max" or "min".
    read_only: only restore (scoring); never writes or deletes.

  With a `best_metric`, orbax reads the metrics of every checkpoint while it builds its manager,
  and one that does not read ends the construction. So they are read here first: a checkpoint
  whose metrics file is not a JSON object holding `best_metric` is reported and moved aside as in
  `restore_newest_good` (read-only: `DamagedCheckpoint` names it).
  """

  def __init__(
    self,
    workdir: str | os.PathLike,
    *,
    keep: int = 3,
    best_metric: str = "",
    best_mode: str = "max",
    read_only: bool = False,
  ):
    reverse = registry.lookup(BEST_MODES, best_mode, "checkpoint.best_mode")
    self.directory = pathlib.Path(workdir).resolve() / "checkpoints"
    self.best_metric = best_metric
    self.read_only = read_only
    # orbax writes a checkpoint's metrics (and `best_step` reads them) only with a `best_fn`.
    best = {"best_fn": (lambda m: m[best_metric]) if best_metric else None, "best_mode": best_mode}
    if read_only:  # nothing to preserve; the best is found from the recorded metrics
      self._options = ocp.CheckpointManagerOptions(create=False, read_only=True, **best)
    else:
      policies = [ocp.checkpoint_managers.LatestN(n=keep)]
      if best_metric:
        policies.append(
          ocp.checkpoint_managers.BestN(
            get_metric_fn=lambda m: m[best_metric],
            reverse=reverse,
            n=1,
            keep_checkpoints_without_metrics=False,
          )
        )
      self._options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies), **best
      )
    # Kept: a damaged checkpoint moved aside needs a new manager (orbax caches the steps it saw).
    self.manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    """orbax's manager of the directory, once the checkpoints whose metrics do not read are
    moved aside (class docstring)."""
    for step, why in self._unreadable_metrics():
      if self.read_only:
        raise DamagedCheckpoint(
          f"checkpoint step {step} ({self.directory / str(step)}) does not read: {why}. Resuming "
          f"the run (rankjax train) moves it into {self.directory / CORRUPT_DIR}"
        )
      self._move_aside(step, why)
    return ocp.CheckpointManager(self.directory, options=self._options)

  def _unreadable_metrics(self) -> list[tuple[int, str]]:
    """(step, why) of each checkpoint whose metrics file does not read as `best_fn` needs it, as
    orbax reads it (`json.loads(path.read_text())`); none without a `best_metric`."""
    if not (self.best_metric and self.directory.is_dir()):
      return []
    found = []
    steps = sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())
    for step in steps:
      path = self.directory / str(step) / "metrics" / "metrics"
      try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
      except FileNotFoundError:  # saved without metrics (not at an evaluation), as orbax takes it
        continue
      except (OSError, ValueError) as e:  # what random bytes raise: UnicodeDecodeError, ...
        if _not_the_checkpoints_fault(e):
          raise
        found.append((step, f"{_first_line(e)} (reading {path.relative_to(path.parents[1])})"))
        continue
      if not isinstance(metrics, dict) or self.best_metric not in metrics:
        found.append((step, f"its metrics {str(metrics)[:100]} lack {self.best_metric!r}"))
    return found

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The kept checkpoint with the best `best_metric` among those that recorded it; None when
    there is no such checkpoint (no `best_metric`, or none saved at an evaluation)."""
    return self.manager.best_step() if self.best_metric else None

  def save(self, step: int, state, data_state: dict, metrics: dict[str, float] | None = None):
    """Starts saving (async). `metrics` (flat names) rank it for the best-checkpoint policy."""
    if metrics is not None and self.best_metric and self.best_metric not in metrics:
      raise KeyError(f"best checkpoint metric {self.best_metric!r} not among {sorted(metrics)}")
    self.manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
      ),
      metrics=metrics if self.best_metric else None,
      force=True,
    )

  def restore(self, abstract_state, step: int | None = None):
    """(state, data_state) of `step` (default latest), sharded like `abstract_state`."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    restored = self.manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
      ),
    )
    return restored["state"], restored["data"]

  def restore_state(self, abstract_state, step: int | None = None):
    """Only the train state (for scoring); `step` default latest."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    return self.manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
    )["state"]

  def restore_newest_good(self, abstract_state, check: Callable[[object, dict], None]):
    """(state, data_state) of the newest checkpoint that restores; None when there is none.

    A checkpoint restores when orbax reads both of its items whole, in `abstract_state`'s tree
    and shapes, and `check(state, data_state)` (the caller's use of them: setting the input
    iterator's state) raises nothing. One that does not is reported in one line (its step, path
    and the exception's class and first line), moved into `corrupt/<step>-<time>`, and the next
    newest is tried with a new manager (orbax caches the steps it found). Running out of memory
    or read permission is no sign of damage: that error is raised as it is.

    Raises:
      NoGoodCheckpoint: there are checkpoints (or ones moved aside, now or by an earlier run)
        and none restores; the message names what was moved aside.
    """
    _drop_closed_loop_reports()
    while (step := self.latest_step()) is not None:
      try:
        state, data_state = self.restore(abstract_state, step)
        check(state, data_state)
        return state, data_state
      except Exception as e:  # pylint: disable=broad-except  # what a damaged file raises varies
        if _not_the_checkpoints_fault(e):
          raise
        self._move_aside(step, _first_line(e))
        self.manager.close()
        self.manager = self._open()
    corrupt = self.directory / CORRUPT_DIR
    moved = sorted(p.name for p in corrupt.iterdir()) if corrupt.is_dir() else []
    if moved:
      raise NoGoodCheckpoint(
        f"no checkpoint of {self.directory} restores; moved aside in {corrupt}: "
        f"{', '.join(moved)}. Start the run over with --restart (moves the workdir's contents "
        "aside) or train in another --workdir"
      )
    return None

  def _move_aside(self, step: int, why: str) -> None:
    """Renames checkpoint `step` into `corrupt/` (host 0; all hosts wait) and says so in one
    line, with `why` it does not restore."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = self.directory / CORRUPT_DIR / f"{step}-{stamp}"
    suffix = 0
    while target.exists():  # the same step moved twice within a second
      suffix += 1
      target = target.with_name(f"{step}-{stamp}-{suffix}")
    if jax.process_index() == 0:
      target.parent.mkdir(exist_ok=True)
      (self.directory / str(step)).rename(target)
    if jax.process_count() > 1:
      ocp.multihost.sync_global_processes(f"rankjax_move_aside_{step}")
    if jax.process_index() == 0:
      print(
        f"checkpoint step {step} ({self.directory / str(step)}) does not restore: {why}; "
        f"moved it to {target}",
        flush=True,
      )

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def _drop_closed_loop_reports():
  """Keeps a failed restore from printing a traceback per array it was still reading.

  orbax closes its event loop once the first read fails; tensorstore's reads still in flight then
  complete into that closed loop, and each reports "RuntimeError: Event loop is closed" to
  `sys.unraisablehook`, while and after the restore raises. The hook installed here (once) drops
  exactly those reports and passes every other one on.
  """
  previous = sys.unraisablehook
  if getattr(previous, "drops_closed_loop_reports", False):
    return

  def hook(unraisable):
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
      previous(unraisable)

  hook.drops_closed_loop_reports = True
  sys.unraisablehook = hook


def _first_line(error: Exception) -> str:
  """The error's class and its message's first line, cut to 200 characters (tensorstore's run
  long)."""
  lines = str(error).strip().splitlines()
  line = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
  return line if len(line) <= 200 else line[:197] + "..."


class PreemptionGuard:
  """Records SIGTERM instead of dying, so the loop can checkpoint and stop; restores on exit."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    # Several hosts must stop at the same step: there JAX's preemption notifier (set up by
    # `jax.distributed.initialize`) owns SIGTERM and orbax reports its sync point.
    if jax.process_count() == 1:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def should_stop(self, step: int) -> bool:
    """True once SIGTERM arrived (one host), or at JAX's preemption sync point (several)."""
    if jax.process_count() > 1:
      return ocp.multihost.reached_preemption(step)
    return self.requested

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
    return False
