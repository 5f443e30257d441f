"""The one label rule: a source's labels count on real items that have them, in real lists."""

import numpy as np
import pytest
from supervision_helpers import batch_of

from rankjax.data import schema
from rankjax.supervision import labels


@pytest.mark.parametrize("source", schema.SOURCES)
def test_where_is_mask_and_source_mask_and_list_valid(source):
  batch = batch_of()
  rng = np.random.default_rng(0)
  batch[f"mask_{source}"] = rng.uniform(size=batch["mask"].shape) < 0.6
  values, where = labels.labels_and_where(batch, source)
  np.testing.assert_array_equal(values, batch[f"label_{source}"])
  for b in range(where.shape[0]):
    for i in range(where.shape[1]):
      expected = batch["mask"][b, i] and batch[f"mask_{source}"][b, i] and batch["list_valid"][b]
      assert bool(where[b, i]) == expected


def test_a_missing_source_names_what_the_data_has_and_who_asked():
  batch = batch_of()
  del batch["label_llm"], batch["mask_llm"]
  with pytest.raises(KeyError, match=r"no labels from source 'llm'; it has \['click', 'human'\]"):
    labels.labels_and_where(batch, "llm")
  with pytest.raises(KeyError, match=r"it has \['click', 'human'\] \(objective 'x' needs them\)"):
    labels.labels_and_where(batch, "llm", "objective 'x' needs them")


def test_bucket_rows():
  assert labels.BUCKET_ROWS == (*schema.BUCKETS, "unknown")
  np.testing.assert_array_equal(labels.bucket_row(batch_of()["bucket"]), [0, 1, 2, 3, 0, 2])
