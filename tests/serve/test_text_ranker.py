"""A cross-encoder run scores (query, text) pairs and DataFrames with the tokenizer and truncation
its dataset recorded, and its export (token width symbolic) scores the same."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import transformers
from train_helpers import CACHE_ENV, ROOT, load_config

from rankjax import export_check
from rankjax.data import schema, store, text, text_pairs
from rankjax.engine import train
from rankjax.serve import export, inputs, ranker

WORDS = [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("text_run")
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
  transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(
    str(tmp / "tok")
  )
  tok = text.PairTokenizer.from_dir(tmp / "tok", max_query_tokens=4, max_tokens=32)
  rng = np.random.default_rng(0)

  def lists(n):
    for q in range(n):
      k = int(rng.integers(3, 7))
      docs = [" ".join(rng.choice(WORDS, int(rng.integers(1, 12)))) for _ in range(k)]
      yield tok(
        schema.RankingList(
          f"q{q}",
          [f"d{i}" for i in range(k)],
          labels={"human": rng.integers(0, 3, k)},
          query=" ".join(rng.choice(WORDS, 3)),
          doc_texts=docs,
        )
      )

  path = store.write_dataset(
    tmp / "data", name="toy", splits={"train": lists(16), "test": lists(4)}
  )
  tok.save_rules(path, tmp / "tok")
  config = load_config()
  config.data.path, config.data.list_sizes, config.data.batch_size = str(path), (8,), 4
  config.model = {"name": "cross_encoder", "size": "tiny", "dropout": 0.1}
  config.total_steps = config.eval.every = config.checkpoint.every = 2
  config.eval.splits, config.checkpoint.best_metric = ("test",), "test/ndcg@10/all"
  config.data.token_buckets = 4
  train.train_and_evaluate(config, tmp / "work")
  return ranker.Ranker.load(tmp / "work"), tmp


@pytest.mark.slow
def test_pairs_and_frames_score_alike_and_the_export_agrees(text_run):
  r, tmp = text_run
  assert (r.kind, r.tokenizer.max_tokens, r.tokenizer.max_query_tokens) == ("text", 32, 4)
  pairs = [("w1 w2", "w3 w4 w5"), ("w1 w2", "w9"), ("w7", " ".join(["w1"] * 12))]
  by_pairs = r.score(pairs)
  frame = pd.DataFrame(
    {
      "qid": ["a", "a", "b"],
      "query": [p[0] for p in pairs],
      "docno": ["x", "y", "z"],
      "text": [p[1] for p in pairs],
    }
  )
  by_frame = r.score(frame)
  assert [s.doc_ids for s in by_frame] == [["x", "y"], ["z"]]
  for a, b in zip(by_pairs, by_frame):
    np.testing.assert_array_equal(a.scores, b.scores)

  export.export(r, tmp / "export")
  score, signature = export_check.load(tmp / "export")
  assert signature["inputs"]["tokens"]["shape"] == ["b", "l", "t"]
  assert (tmp / "export" / "tokenizer" / "tokenizer.json").exists()
  # Both queries in one batch of 2 lists of 2, at width 20: a shape training never used.
  lists = list(r.lists(pairs))
  tokens = np.zeros((2, 2, 20), np.int32)
  types, mask = np.zeros_like(tokens), np.zeros((2, 2), bool)
  for i, lst in enumerate(lists):
    tokens[i, : len(lst)] = lst.tokens[:, :20]
    types[i, : len(lst)] = lst.token_types[:, :20]
    mask[i, : len(lst)] = True
  got = score({"tokens": tokens, "token_types": types, "mask": mask})
  for i, s in enumerate(by_pairs):
    np.testing.assert_allclose(got[i, : len(s)], s.scores, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_text_ranker_given_features_names_what_it_scores(text_run):
  r, _ = text_run
  with pytest.raises(inputs.InputError) as e:
    r.score(np.zeros((3, 4)))
  assert str(e.value) == (
    "an array of shape (3, 4): this ranker scores text: (query, document text) pairs, or a "
    "DataFrame or JSON Lines file with columns qid, query, docno, text"
  )


def _jsonl(path, rows) -> str:
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return str(path)


@pytest.mark.slow
def test_score_command_streams_a_jsonl_file_into_a_trec_run(text_run):
  r, tmp = text_run
  rows = [
    {"qid": "a", "query": "w1 w2", "docno": "x", "text": "w3 w4 w5", "label": 2},
    {"qid": "a", "query": "w1 w2", "docno": "y", "text": "w9", "label": 0},
    {"qid": 7, "query": "w7", "docno": 1, "text": " ".join(["w1"] * 12)},
    {"qid": "c", "query": "w5 w6", "docno": "z", "text": "w5\tw6\nw8", "label": 1},
  ]
  path = _jsonl(tmp / "pairs.jsonl", rows)
  want = r.score(path)
  assert [(s.qid, s.doc_ids) for s in want] == [("a", ["x", "y"]), ("7", ["1"]), ("c", ["z"])]
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "rankjax.cli",
      "score",
      f"--workdir={tmp / 'work'}",
      f"--input={path}",
      f"--output={tmp / 'pairs.run'}",
      "--chunk=2",  # two chunks of queries
    ],
    cwd=ROOT,
    env={**os.environ, **CACHE_ENV},
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.splitlines()[-1] == (
    f"checkpoint step 2 (best by test/ndcg@10/all): wrote 3 queries to {tmp / 'pairs.run'}"
  )
  assert "ndcg@10" in proc.stdout  # the file's labels give two lists a relevant document
  written = {}
  for line in (tmp / "pairs.run").read_text().splitlines():
    qid, _, doc, rank, score, _ = line.split()
    written[qid, doc] = (int(rank), float(score))
  assert set(written) == {(s.qid, d) for s in want for d in s.doc_ids}
  for s in want:
    for doc, score, rank in zip(s.doc_ids, s.scores, s.ranks):
      assert written[s.qid, doc][0] == rank
      np.testing.assert_allclose(written[s.qid, doc][1], score, rtol=1e-6)

  # A line without a text: an error naming the file, line and field (the command prints it as
  # "error: <message>" and exits 1), raised before the lines after it are read.
  rows[2] = {k: v for k, v in rows[2].items() if k != "text"}
  path = _jsonl(tmp / "bad.jsonl", rows)
  with pytest.raises(text_pairs.TextPairsError) as e:
    r.score(path)
  assert str(e.value) == f"{path}:3: no 'text' field (a line needs qid, query, docno, text)"
