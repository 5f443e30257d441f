"""The one label rule of a batch, and the frequency-bucket row of each list.

Training, evaluation and the study read a label source `s` of a padded batch the same way: the
labels `label_<s>` count where the item is real (`mask`), has a label from `s` (`mask_<s>`) and
its list is real (`list_valid`); everywhere else they are padding.
"""

from __future__ import annotations

import jax.numpy as jnp

from rankjax.data import schema

BUCKET_ROWS = (*schema.BUCKETS, "unknown")  # high, medium, low; row 3 is bucket -1


def labels_and_where(batch, source: str, reason: str = ""):
  """(labels f32[B, L], where bool[B, L]) of one label source: real items that have its label.

  where = mask & mask_<source> & list_valid. Data without the source is a KeyError naming the
  sources it has, and `reason` (who needs the labels) if given.

  >>> batch = {"label_click": jnp.array([[1., 0., 0.], [0., 1., 1.]]),
  ...          "mask": jnp.array([[True, True, False], [True, True, True]]),
  ...          "mask_click": jnp.array([[True, False, True], [True, True, True]]),
  ...          "list_valid": jnp.array([True, False])}
  >>> labels_and_where(batch, "click")[1].tolist()
  [[True, False, False], [False, False, False]]
  >>> labels_and_where(batch, "llm", "config.eval.label_source")
  Traceback (most recent call last):
  KeyError: "the data has no labels from source 'llm'; it has ['click'] (config.eval.label_source)"
  """
  if f"label_{source}" not in batch:
    have = sorted(k[len("label_") :] for k in batch if k.startswith("label_"))
    raise KeyError(
      f"the data has no labels from source {source!r}; it has {have}"
      + (f" ({reason})" if reason else "")
    )
  where = batch["mask"] & batch[f"mask_{source}"] & batch["list_valid"][:, None]
  return batch[f"label_{source}"], where


def bucket_row(bucket):
  """Bucket id (-1..2) -> row index into `BUCKET_ROWS` (high, medium, low, unknown).

  >>> bucket_row(jnp.array([0, 2, -1])).tolist()
  [0, 2, 3]
  """
  return jnp.where(bucket < 0, len(schema.BUCKETS), bucket)
