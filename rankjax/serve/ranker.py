"""`Ranker`: a trained run's checkpoint scoring new data, batched and jitted with bucketed shapes.

  ranker = Ranker.load("/tmp/rankjax_run")          # the best checkpoint if recorded, else latest
  results = ranker.score(features, qids=qids)       # or a DataFrame, an svmlight file, pairs
  results[0].qid, results[0].scores, results[0].ranks

Shapes: `batching` (a bounded number of compilations for any input; `traces` counts them). The
inputs it takes: `inputs`. Scores are the model's, float32, on the default JAX backend (CPU, GPU
or TPU).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Iterable, Iterator, Sequence

import jax
import numpy as np

from rankjax.data import pipeline, schema, store, text
from rankjax.engine import train
from rankjax.serve import batching, inputs


@dataclasses.dataclass
class Scored:
  """One query's scores: `ranks` are 1-based by descending score (ties in input order)."""

  qid: str
  doc_ids: list[str]
  scores: np.ndarray
  ranks: np.ndarray
  labels: np.ndarray | None = None  # the input's graded labels, NaN where missing

  def __len__(self) -> int:
    return len(self.doc_ids)


def ranks_of(scores: np.ndarray) -> np.ndarray:
  """1-based ranks by descending score, ties in item order.

  >>> ranks_of(np.array([0.5, 2.0, 0.5])).tolist()
  [2, 1, 3]
  """
  ranks = np.empty(len(scores), np.int64)
  ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
  return ranks


def tokenizer_for(config, data_path: pathlib.Path) -> text.PairTokenizer:
  """The run's pair tokenizer: the one its dataset recorded (`text.RULES_FILE`), else the model's
  `hf_dir` with the dataset's stored width and the default query truncation (a note says so)."""
  recorded = data_path / text.RULES_FILE
  if recorded.exists():
    rules = json.loads(recorded.read_text())
    return text.PairTokenizer.from_dir(
      rules["tokenizer"], max_tokens=rules["max_tokens"], max_query_tokens=rules["max_query_tokens"]
    )
  hf_dir = config.model.get("hf_dir")
  if not hf_dir:
    raise FileNotFoundError(
      f"{recorded}: the run's tokenizer is not recorded and its model has no hf_dir; prepare the "
      "dataset again with `rankjax data prepare --tokenizer DIR`"
    )
  width = store.open_split(data_path, "train").layout["tokens"]
  print(
    f"{recorded} absent: tokenizing with {hf_dir}, max_tokens {width}, default query truncation"
  )
  return text.PairTokenizer.from_dir(hf_dir, max_tokens=width)


class Ranker:
  """A trained ranker for new data (`load`), scoring with `score` / `score_iter`.

  Attributes:
    kind: "features" or "text" (what the run's dataset stores).
    num_features: F of a feature ranker, else None.
    tokenizer: a text ranker's `text.PairTokenizer`, else None.
    list_sizes, max_batch, token_widths: the shape buckets (`batching`).
    step, config, best: the checkpoint's step, the run's config, whether it is the best one.
    data_path: the run's prepared dataset.
    traces: how many shapes the scoring function has been compiled for.
  """

  def __init__(
    self,
    model,
    variables,
    *,
    num_features: int | None,
    tokenizer: text.PairTokenizer | None,
    list_sizes: Sequence[int],
    max_batch: int,
    token_widths: Sequence[int] | None = None,
    step: int | None = None,
    config=None,
    best: bool = False,
    data_path: pathlib.Path | None = None,
  ):
    self.model, self.variables = model, variables
    self.kind = "features" if num_features is not None else "text"
    self.num_features, self.tokenizer = num_features, tokenizer
    self.list_sizes, self.max_batch = tuple(list_sizes), max_batch
    self.token_widths = token_widths
    self.step, self.config, self.best, self.data_path = step, config, best, data_path
    self.traces = 0

    def apply(variables, batch):
      self.traces += 1  # runs once per compiled shape
      return model.apply(variables, batch, train=False)

    self._apply = jax.jit(apply)

  @classmethod
  def load(
    cls, workdir: str | os.PathLike, step: int | None = None, *, best: bool | None = None
  ) -> Ranker:
    """The run in `workdir` at `step`; without one, its best checkpoint by
    `config.checkpoint.best_metric` when one is recorded (`best=None` or True; True without one is
    an error), else its latest (`best=False`)."""
    run = train.load_for_scoring(workdir, step, best=best)
    layout = store.open_split(run.data_path, "train").layout
    features = layout["features"]
    tokenizer, widths = None, None
    if features is None:
      tokenizer = tokenizer_for(run.config, run.data_path)
      widths = pipeline.token_widths(
        store.open_split(run.data_path, "train"), run.config.data.token_buckets
      )
    variables = jax.device_put(jax.device_get(run.variables))  # one device, not the run's mesh
    return cls(
      run.model,
      variables,
      num_features=features,
      tokenizer=tokenizer,
      list_sizes=run.config.data.list_sizes,
      max_batch=run.config.eval.batch_size,
      token_widths=widths,
      step=run.step,
      config=run.config,
      best=run.best,
      data_path=run.data_path,
    )

  def lists(self, data, **kwargs) -> Iterable[schema.RankingList]:
    """`data` as ranking lists this ranker scores (`inputs.to_lists`), tokenized for text."""
    lists = inputs.to_lists(data, kind=self.kind, num_features=self.num_features, **kwargs)
    return lists if self.tokenizer is None else map(self.tokenizer, lists)

  def score_lists(
    self, lists: Sequence[schema.RankingList], label_source: str | None = None
  ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """(padded batch, scores f32 [B, L], row indices into `lists`) per bucketed batch."""
    for batch, rows in batching.batches(
      lists,
      max_batch=self.max_batch,
      list_sizes=self.list_sizes,
      token_widths=self.token_widths,
      label_source=label_source,
    ):
      model_inputs = {
        k: v for k, v in batch.items() if k in ("mask", "features", "tokens", "token_types")
      }
      yield batch, np.asarray(self._apply(self.variables, model_inputs)), rows

  def score_iter(self, data, *, chunk: int = 1024, evaluator=None, **kwargs) -> Iterator[Scored]:
    """`Scored` per query of `data` in input order, `chunk` lists in memory at a time; each
    batch also goes to `evaluator` (a `runs.Evaluator`, against the inputs' labels) if given."""
    source = None if evaluator is None else "human"
    for part in inputs.chunks(self.lists(data, **kwargs), chunk):
      done: dict[int, Scored] = {}
      for batch, scores, rows in self.score_lists(part, source):
        if evaluator is not None:
          evaluator.add(batch, scores)
        for row, i in enumerate(rows):
          if i < 0:
            continue
          lst = part[i]
          s = scores[row, : len(lst)]
          done[int(i)] = Scored(lst.qid, list(lst.doc_ids), s, ranks_of(s), lst.labels.get("human"))
      yield from (done[i] for i in range(len(part)))

  def score(self, data, **kwargs) -> list[Scored]:
    """Scores every query of `data` (`inputs`: arrays with optional `qids`, `doc_ids`, `labels`;
    a DataFrame, optional `feature_columns`; an svmlight file; (query, text) pairs)."""
    return list(self.score_iter(data, **kwargs))
