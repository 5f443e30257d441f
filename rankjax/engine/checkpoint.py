"""Checkpoints with orbax: train state plus the input iterator's state, saved together.

`<workdir>/checkpoints/<step>/` holds items "state" (the TrainState pytree) and "data" (the grain
iterator state as JSON), so a restarted run continues with the exact next batch. The manager keeps
the latest `keep` checkpoints and the best one by a validation metric. Saves are asynchronous;
`wait()` blocks until they are on disk.

`PreemptionGuard` turns SIGTERM (how clusters and cloud VMs announce preemption) into a flag the
training loop polls: it then saves, waits for the write, and exits cleanly.
"""

from __future__ import annotations

import os
import pathlib
import signal

import jax
import orbax.checkpoint as ocp

from rankjax import registry

# `best_mode` -> whether the best checkpoint's order is reversed (orbax's `BestN` keeps the
# largest metric unless reversed).
BEST_MODES = {"max": False, "min": True}


class Checkpointer:
  """Saves and restores (state, data iterator state) under `<workdir>/checkpoints`.

  Args:
    workdir: the run's directory.
    keep: how many of the latest checkpoints to keep.
    best_metric: flat metric name (e.g. "validation/ndcg@10/all") whose best checkpoint is also
      kept; "" keeps only the latest.
    best_mode: a name in `BEST_MODES`, "max" or "min".
    read_only: only restore (scoring); never writes or deletes.
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
    # orbax writes a checkpoint's metrics (and `best_step` reads them) only with a `best_fn`.
    best = {"best_fn": (lambda m: m[best_metric]) if best_metric else None, "best_mode": best_mode}
    if read_only:  # nothing to preserve; the best is found from the recorded metrics
      self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(create=False, read_only=True, **best)
      )
      return
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
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies), **best
      ),
    )

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

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


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
