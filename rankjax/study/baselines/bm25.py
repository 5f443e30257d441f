"""`bm25`: lexical matching of the query with each candidate's text (Okapi BM25, rank_bm25).

The collection BM25's document frequencies come from is the evaluation split's candidate texts
(each distinct document once): the candidates are all the text a log gives. Terms are
`rankjax.data.text.terms` (CJK characters one by one, other words whole, lower case), so Chinese
logs work without a segmenter. rank_bm25 rather than our own: a well-known implementation that
other papers' BM25 rows are comparable with.
"""

from __future__ import annotations

import numpy as np

from rankjax import registry
from rankjax.data.text import terms
from rankjax.study.baselines import base


def bm25_scores(train_lists, eval_lists, seed) -> np.ndarray:
  """BM25 (k1 1.5, b 0.75, rank_bm25's defaults) of each candidate for its list's query."""
  import rank_bm25  # pylint: disable=g-import-not-at-top

  del train_lists, seed  # nothing to fit; the same for every seed
  if "doc_texts" not in eval_lists[0]:
    raise ValueError("the bm25 baseline needs query and document texts; the dataset stores none")
  index: dict[str, int] = {}
  corpus = []
  for lst in eval_lists:
    for doc_id, text in zip(lst["doc_ids"], lst["doc_texts"]):
      if doc_id not in index:
        index[doc_id] = len(corpus)
        corpus.append(terms(text))
  bm25 = rank_bm25.BM25Okapi(corpus)
  rows = []
  for lst in eval_lists:
    ids = [index[d] for d in lst["doc_ids"]]
    rows.append(bm25.get_batch_scores(terms(lst["query"]), ids))
  return base.padded(rows)


registry.register(base.BASELINES, "bm25")(
  base.Baseline(
    bm25_scores,
    {"model": "BM25 (rank_bm25 Okapi) over the candidates' texts"},
    needs="rank_bm25",
    install="pip install 'rankjax[baselines]'",
  )
)
