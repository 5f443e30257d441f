"""The data schedule's training stream: only the phase's (bucket, source) cells, in proportion,
switching at the phase starts, resumable bit for bit at a boundary, split across hosts."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
from train_helpers import tiny_lists

from rankjax.data import mixture, pipeline, store

CLICK, LLM, HUMAN = 0, 1, 2


@pytest.fixture(scope="module")
def split(tmp_path_factory):
  """40 lists in buckets -1..2 (i % 4 - 1), clicks everywhere, LLM labels on even lists only."""
  lists = [
    dataclasses.replace(l, labels={**l.labels, "llm": np.full(len(l.doc_ids), 2.0, np.float32)})
    if i % 2 == 0
    else l
    for i, l in enumerate(tiny_lists(40, seed=5))
  ]
  path = store.write_dataset(tmp_path_factory.mktemp("mix"), name="mix", splits={"train": lists})
  return store.open_split(path, "train")


def weights(**rows):
  """f32[ROWS, 3] from high=(click, llm, human), medium=..., low=..., unknown=..."""
  w = np.zeros((mixture.ROWS, 3), np.float32)
  for name, row in rows.items():
    w[("high", "medium", "low", "unknown").index(name)] = row
  return w


PHASES = [
  mixture.Phase(0, weights(high=(1, 0, 0))),
  mixture.Phase(5, weights(high=(1, 0, 0), medium=(1, 1, 0), low=(1, 1, 0), unknown=(0, 1, 0))),
]


def stream(split, phases=PHASES, **kwargs):
  kwargs = {"batch_size": 8, "list_sizes": (8, 16, 32), "seed": 2, "num_threads": 0, **kwargs}
  return iter(pipeline.train_dataset(split, phases=phases, **kwargs))


def test_store_keeps_buckets_and_label_sources(split, tmp_path):
  made = [int(split[i]["qid"].decode()[1:]) for i in range(len(split))]  # the store's order
  assert split.buckets.tolist() == [i % 4 - 1 for i in made]
  assert [bool(s >> LLM & 1) for s in split.label_sources] == [i % 2 == 0 for i in made]
  assert all(s >> CLICK & 1 for s in split.label_sources)
  old = tmp_path / "old" / store.VERSION
  shutil.copytree(split.path, old)
  for name in ("list_buckets", "list_sources"):  # a dataset prepared before the files existed
    (old / f"{name}-train.npy").unlink()
  again = store.open_split(old, "train")
  assert again.buckets.tolist() == split.buckets.tolist()
  assert again.label_sources.tolist() == split.label_sources.tolist()


def test_batches_serve_only_the_phase_cells_in_proportion(split):
  it = stream(split)
  counts = np.zeros((mixture.ROWS, 3), int)
  for step in range(45):
    batch = next(it)
    bucket, source = batch["bucket"], batch["source_id"]
    assert batch["list_valid"].all()
    allowed = PHASES[step >= 5].weights[bucket, source] > 0
    assert allowed.all(), (step, bucket, source)
    for i, s in enumerate(source):  # a list served for a source has labels from it
      assert batch[f"mask_{('click', 'llm', 'human')[s]}"][i].any()
    if step >= 5:
      np.add.at(counts, (bucket, source), 1)
  # 10 lists per bucket; medium and unknown ones have LLM labels, high and low ones none. Cells:
  # high/click 10, medium/click 10 x 1/2, medium/llm 10 x 1/2, low/click 10 x 1/2 (low/llm has
  # no list: the half of the low lists a per-list draw would leave idle), unknown/llm 10; of 320
  # slots (grain interleaves them deterministically).
  cells = [(0, CLICK), (1, CLICK), (1, LLM), (2, CLICK), (3, LLM)]
  np.testing.assert_allclose(
    [counts[c] for c in cells], np.array([10, 5, 5, 5, 10]) / 35 * 320, atol=2
  )
  assert counts.sum() == 320


def test_resume_at_a_phase_boundary_is_bit_identical(split):
  it = stream(split)
  first = [next(it) for _ in range(9)]
  again = stream(split)
  for _ in range(5):  # the last step of the first phase
    next(again)
  state = json.loads(json.dumps(again.get_state()))  # as the checkpoint stores it
  resumed = stream(split)
  resumed.set_state(state)
  for a in first[5:]:
    b = next(resumed)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  assert (first[4]["bucket"] == 0).all() and (first[5]["bucket"] != 0).any()


def test_hosts_split_each_global_batch(split):
  whole = [next(it) for it in [stream(split)] for _ in range(7)][-1]
  parts = []
  for p in range(2):
    it = stream(split, process_index=p, process_count=2)
    parts.append([next(it) for _ in range(7)][-1])
  for k in whole:
    np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])


def test_a_phase_without_lists_and_bad_starts_are_errors(split):
  with pytest.raises(ValueError, match="from step 5 trains no list"):
    stream(split, [PHASES[0], mixture.Phase(5, weights(high=(0, 1, 0), low=(0, 1, 0)))])
  with pytest.raises(ValueError, match=r"phase starts \[0, 0\]"):
    stream(split, [PHASES[0], PHASES[0]])
  with pytest.raises(ValueError, match="do not combine"):
    stream(split, length_grouped=True)
