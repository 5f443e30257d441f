"""The one in-memory record every reader produces and every dataset stores: a ranked list.

A `RankingList` is one query's candidate list as the log or the labelled data set shows it.
Readers (click logs, svmlight, qrels, LLM annotations) produce them; prepared datasets store them;
the input pipeline pads them into batches (`BATCH_KEYS`).

Label sources are named (`SOURCES`): each present source is a float32 array over the list with NaN
where that item has no label from that source, so one list can carry clicks for every item, LLM
labels for some and human labels for a few. Query frequency buckets are integers (`BUCKETS`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

SOURCES = ("click", "llm", "human")
BUCKETS = ("high", "medium", "low")  # bucket id = index; -1 = unknown
UNKNOWN_BUCKET = -1


@dataclasses.dataclass
class RankingList:
  """One query's list of n candidate documents.

  Attributes:
    qid: query id, unique within a dataset.
    doc_ids: the n document ids, in shown order where the log has one.
    labels: source name -> float32 [n]; NaN marks an item without a label from that source.
    positions: int32 [n], 1-based rank at which each item was shown; 0 where unknown.
    query_freq: how often the query occurs in the log (the frequency the buckets come from).
    bucket: query-frequency bucket id (index into `BUCKETS`), or `UNKNOWN_BUCKET`.
    features: float32 [n, num_features] for feature rankers, or None.
    tokens: int32 [n, T] token ids of each (query, document) pair for cross-encoders, 0 = padding.
    token_types: int32 [n, T] segment ids (0 query, 1 document) matching `tokens`.
    query: query text, or None.
    doc_texts: n document texts (title, snippet or body), or None.
    extras: name -> float32 [n] per-item statistics (impressions, clicks, dwell, global CTR...).
  """

  qid: str
  doc_ids: list[str]
  labels: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  positions: np.ndarray | None = None
  query_freq: float = 0.0
  bucket: int = UNKNOWN_BUCKET
  features: np.ndarray | None = None
  tokens: np.ndarray | None = None
  token_types: np.ndarray | None = None
  query: str | None = None
  doc_texts: list[str] | None = None
  extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    n = len(self.doc_ids)
    if self.positions is None:
      self.positions = np.zeros(n, np.int32)
    self.positions = np.asarray(self.positions, np.int32)
    self.labels = {k: np.asarray(v, np.float32) for k, v in self.labels.items()}
    self.extras = {k: np.asarray(v, np.float32) for k, v in self.extras.items()}
    if self.features is not None:
      self.features = np.asarray(self.features, np.float32)
    for name in ("tokens", "token_types"):
      if getattr(self, name) is not None:
        setattr(self, name, np.asarray(getattr(self, name), np.int32))
    for name, arr in [
      ("positions", self.positions),
      ("features", self.features),
      ("tokens", self.tokens),
      ("token_types", self.token_types),
      *[(f"labels[{k}]", v) for k, v in self.labels.items()],
      *[(f"extras[{k}]", v) for k, v in self.extras.items()],
    ]:
      if arr is not None and arr.shape[:1] != (n,):
        raise ValueError(f"list {self.qid!r}: {name} has shape {arr.shape}, expected {n} items")
    if self.doc_texts is not None and len(self.doc_texts) != n:
      raise ValueError(f"list {self.qid!r}: {len(self.doc_texts)} doc_texts for {n} items")
    unknown = set(self.labels) - set(SOURCES)
    if unknown:
      raise ValueError(
        f"list {self.qid!r}: unknown label sources {sorted(unknown)}; known: {SOURCES}"
      )
    if not UNKNOWN_BUCKET <= self.bucket < len(BUCKETS):
      raise ValueError(f"list {self.qid!r}: bucket {self.bucket} outside [-1, {len(BUCKETS)})")

  def __len__(self) -> int:
    return len(self.doc_ids)


# Keys of a padded batch (numpy or jax arrays), B lists padded to list size L:
#   "mask"            bool    [B, L]   the item exists
#   "features"        float32 [B, L, F]            (feature rankers)
#   "tokens"          int32   [B, L, T]            (cross-encoders; 0 = padding)
#   "token_types"     int32   [B, L, T]
#   "label_<source>"  float32 [B, L]   0 where missing
#   "mask_<source>"   bool    [B, L]   the item has a label from that source
#   "position"        int32   [B, L]   1-based shown rank, 0 unknown
#   "query_freq"      float32 [B]
#   "bucket"          int32   [B]      -1 unknown
#   "list_valid"      bool    [B]      False for padding lists that fill the last batch
#   "<extra>"         float32 [B, L]   per-item extras, by name
#   "source_id"       int32   [B]      a data schedule's training batches: the label source
#                                      (index into SOURCES) each list trains on
BATCH_KEYS = (
  "mask",
  "features",
  "tokens",
  "token_types",
  "position",
  "query_freq",
  "bucket",
  "list_valid",
)
