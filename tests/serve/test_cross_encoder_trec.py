"""all-MiniLM-L6-v2 as a cross-encoder on the real TREC Session 2012 log, trained 2 steps: the
`Ranker` scores the log's (query, text) pairs and DataFrame as training's evaluation path scores
the prepared lists, and the exported artifact scores as the `Ranker` does at batch, list and
token sizes training never used."""

import re

import numpy as np
import pandas as pd
import pytest
from train_helpers import load_config

from rankjax import export_check
from rankjax.cli.data import main as data_main
from rankjax.data import paths, schema, store, text
from rankjax.engine import scoring, train
from rankjax.serve import export, ranker

# Ranker and export run the run's own float32 model, as training's evaluation does, on other
# padded shapes (batch, list and token padding are masked out): XLA compiles each shape on its own,
# and the sums it reassociates differ in the last bits. Measured: at most 3e-8 apart, on scores
# of magnitude up to 0.02 after 2 steps (the tolerance is 1e-6 + 1e-5 of the score).
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
MAX_TOKENS = 64  # nearly every list has a 64-token pair: training sees width 64 only


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def _sessions(log, first: int, count: int):
  """The TREC Session XML `log` cut to its sessions first..first+count-1, as written."""
  sessions = re.findall(r"<session .*?</session>", log.read_text(), flags=re.S)
  return (
    "<sessiontrack2012>\n" + "\n".join(sessions[first : first + count]) + "\n</sessiontrack2012>\n"
  )


@pytest.fixture(scope="module")
def trec_run(tmp_path_factory, minilm_dir):
  """(Ranker of the run, its test split, training evaluation's scores {record index: f32[n]},
  a directory to write to)."""
  d = paths.data_path("trec_session_2012_2013")
  if not d.exists():
    pytest.skip(f"real data not found at {d}: set RANKJAX_DATA to the shared data directory")
  tmp = tmp_path_factory.mktemp("trec_ce")
  # Sessions 80-95 of 2012 (16 of 98; CPU time): their topic split leaves 12 test lists of 9 or
  # 10 results, three of them with every pair under 64 tokens.
  (tmp / "log.xml").write_text(_sessions(d / "sessiontrack2012.xml", 80, 16))
  data_main(
    [
      "prepare",
      "--format",
      "trec-session",
      str(tmp / "log.xml"),
      "--labels",
      str(d / "relevance2012.txt"),
      "--freq-by",
      "topic",
      "--split-by",
      "topic",
      "--test-fraction",
      "0.3",
      "--validation-fraction",
      "0",
      "--tokenizer",
      minilm_dir,
      "--max-tokens",
      str(MAX_TOKENS),
      "--max-query-tokens",
      "8",
      "--output",
      str(tmp / "data"),
      "--name",
      "trec",
      "--quiet",
    ]
  )
  config = load_config("trec_cross_encoder", "human")
  config.data.path = str(tmp / "data" / "trec" / store.VERSION)
  # One shape everywhere (longer training lists are subsampled), so few compilations.
  config.data.list_sizes, config.data.batch_size, config.eval.batch_size = (12,), 2, 4
  config.eval.splits = ()  # evaluated below, with the scores
  config.total_steps = config.eval.every = config.checkpoint.every = 2
  config.model.dropout = 0.0
  train.train_and_evaluate(config, tmp / "run")

  # Training's evaluation path on the test split: the checkpoint on the run's mesh, padded batches
  # of eval.batch_size lists.
  run = train.load_for_scoring(tmp / "run")
  split = store.open_split(run.data_path, "test")
  _, scores = scoring.evaluate_loaded(run, split, "human")
  return ranker.Ranker.load(tmp / "run"), split, scores, tmp


@pytest.mark.slow
def test_pairs_and_frames_from_the_log_score_as_training_evaluation_does(trec_run):
  r, split, expected, _ = trec_run
  assert (r.kind, r.step, r.tokenizer.max_tokens, r.tokenizer.max_query_tokens) == (
    "text",
    2,
    MAX_TOKENS,
    8,
  )
  records = [split[i] for i in range(len(split))]
  rows = [
    (_text(rec["qid"]), _text(rec["query"]), _text(d), _text(t))
    for rec in records
    for d, t in zip(rec["doc_ids"], rec["doc_texts"])
  ]
  frame = pd.DataFrame(rows, columns=["qid", "query", "docno", "text"])
  by_frame = r.score(frame)
  assert len(by_frame) == len(split) == 12
  assert min(np.ptp(s.scores) for s in by_frame) > 1e-4  # the model tells documents apart
  for i, (rec, got) in enumerate(zip(records, by_frame)):
    assert got.qid == _text(rec["qid"])
    assert got.doc_ids == [_text(d) for d in rec["doc_ids"]]
    np.testing.assert_allclose(got.scores, expected[i], **TOLERANCE)
  # The run's tokenizer and truncation rules give the tokens prepare stored.
  (first,) = r.lists(frame[frame["qid"] == _text(records[0]["qid"])])
  n = len(first)
  np.testing.assert_array_equal(first.tokens, records[0]["tokens"][:n])
  np.testing.assert_array_equal(first.token_types, records[0]["token_types"][:n])

  # (query, text) pairs of three queries, one list per query text.
  pairs = [(_text(rec["query"]), _text(t)) for rec in records[:3] for t in rec["doc_texts"]]
  by_pairs = r.score(pairs)
  assert [len(s) for s in by_pairs] == [len(rec["doc_ids"]) for rec in records[:3]]
  for i, got in enumerate(by_pairs):
    np.testing.assert_allclose(got.scores, expected[i], **TOLERANCE)


@pytest.mark.slow
def test_the_export_scores_as_the_ranker_at_unseen_shapes(trec_run):
  r, split, _, tmp = trec_run
  export.export(r, tmp / "export")
  score, signature = export_check.load(tmp / "export")
  assert signature["inputs"]["tokens"]["shape"] == ["b", "l", "t"]
  assert signature["tokenizer"]["max_tokens"] == MAX_TOKENS

  # The three lists whose pairs are all under 64 tokens, padded to exactly their longest list and
  # longest pair: batch 3 (training 2, evaluation 4, the Ranker 1, 2, 4), list size 10 and a token
  # width under 64, which training never used (list size 12, width 64).
  short = [i for i in range(len(split)) if split.token_lengths[i] < MAX_TOKENS][:3]
  lists = [
    schema.RankingList(
      _text(split[i]["qid"]),
      [_text(d) for d in split[i]["doc_ids"]],
      query=_text(split[i]["query"]),
      doc_texts=[_text(d) for d in split[i]["doc_texts"]],
    )
    for i in short
  ]
  tokenized = list(r.lists(lists))
  l = max(len(x) for x in tokenized)
  t = max(int(text.pair_lengths(x.tokens).max()) for x in tokenized)
  assert len(short) == 3 and l not in r.list_sizes and t < MAX_TOKENS
  tokens = np.zeros((3, l, t), np.int32)
  types, mask = np.zeros_like(tokens), np.zeros((3, l), bool)
  for i, x in enumerate(tokenized):
    tokens[i, : len(x)], types[i, : len(x)] = x.tokens[:, :t], x.token_types[:, :t]
    mask[i, : len(x)] = True
  got = score({"tokens": tokens, "token_types": types, "mask": mask})
  assert got.shape == (3, l)
  for i, want in enumerate(r.score(lists)):
    np.testing.assert_allclose(got[i, : len(want)], want.scores, **TOLERANCE)
