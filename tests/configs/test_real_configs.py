"""The real-data configs (TREC Session, TianGong-ST) on small logs, so that they cannot rot.

`prepare` with a topic split, joined LLM labels and a tokenizer; the TREC cross-encoder config and
both study configs end to end with random-init encoders on a small synthetic TREC log (written
here) and the TianGong-ST fixture.
"""

import json
import pathlib
import sqlite3

import numpy as np
import pytest
from train_helpers import load_config

from rankjax.annotate import prompts, tasks
from rankjax.annotate import store as store_lib
from rankjax.cli.data import main as data_main
from rankjax.data import store
from rankjax.data.readers.errors import InputError

FIX = pathlib.Path(__file__).parent.parent / "fixtures" / "logs"
WORDS = [f"w{i}" for i in range(30)]


def _trec_log(tmp_path, topics=8, seed=0):
  """A TREC Session XML log (topics x 3 sessions x 2 queries x 10 results, clicks) and qrels.

  Query texts start with their topic ("t3 ..."), so a test can see each list's topic.
  """
  rng = np.random.default_rng(seed)
  xml, qrels = ["<sessiontrack2013>"], []
  for t in range(1, topics + 1):
    docs = [f"doc-{t}-{i}" for i in range(14)]
    qrels += [f"{t} 0 {d} {int(rng.integers(0, 3))}" for d in docs]
    for s in range(3):
      xml.append(f'<session num="{t}{s}"><topic num="{t}"><desc>d</desc></topic>')
      for k in range(2):
        query = f"t{t} " + " ".join(rng.choice(WORDS, 2))
        xml.append(f'<interaction num="{k + 1}" starttime="{k}.0"><query>{query}</query><results>')
        for r, d in enumerate(rng.choice(docs, 10, replace=False), 1):
          xml.append(
            f'<result rank="{r}"><url>u</url><clueweb12id>{d}</clueweb12id>'
            f"<title>{' '.join(rng.choice(WORDS, 3))}</title>"
            f"<snippet>{' '.join(rng.choice(WORDS, 6))}</snippet></result>"
          )
        xml.append("</results><clicked>")
        for r in sorted(rng.choice(np.arange(1, 11), int(rng.integers(0, 3)), replace=False)):
          xml.append(f"<click><rank>{r}</rank></click>")
        xml.append("</clicked></interaction>")
      xml.append("</session>")
  xml.append("</sessiontrack2013>")
  (tmp_path / "log.xml").write_text("\n".join(xml))
  (tmp_path / "qrels.txt").write_text("\n".join(qrels) + "\n")
  return tmp_path / "log.xml", tmp_path / "qrels.txt"


def _tokenizer(tmp_path, chars=""):
  """A word-piece vocabulary of WORDS (and single characters `chars`) saved as a HF directory."""
  import transformers  # pylint: disable=g-import-not-at-top  (slow import)

  vocab = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *WORDS,
    *[f"t{i}" for i in range(20)],
    *dict.fromkeys(chars),
  ]
  transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(
    str(tmp_path / "tok")
  )
  return tmp_path / "tok"


def _annotation_store(path, pairs, model="m", mode="pointwise_graded", seed=0):
  """An annotation store with a random 0-4 label for each (qid, doc id) in `pairs`."""
  rng = np.random.default_rng(seed)
  template = prompts.load(mode, "en")
  with store_lib.Store(path) as st:
    for qid, doc in pairs:
      task = tasks.Task(template, qid, (doc,), qid, ("text",))
      st.put(tasks.Result(task, [int(rng.integers(0, 5))], "x"), model=model, backend="test")


def _prepare(capsys, *args):
  data_main(["prepare", *map(str, args), "--quiet", "--json"])
  return json.loads(capsys.readouterr().out)


def _text(x):
  return x.decode() if isinstance(x, bytes) else str(x)


def _qids(path, split):
  s = store.open_split(path, split)
  return [_text(s[i]["qid"]) for i in range(len(s))]


def _pairs(split):
  return [
    (_text(split[i]["qid"]), _text(d)) for i in range(len(split)) for d in split[i]["doc_ids"]
  ]


def test_topic_split_keeps_every_topic_on_one_side(tmp_path, capsys):
  log, qrels = _trec_log(tmp_path)
  out = {}
  for by in ("query", "topic"):
    res = _prepare(
      capsys,
      "--format",
      "trec-session",
      log,
      "--labels",
      qrels,
      "--split-by",
      by,
      "--test-fraction",
      "0.4",
      "--output",
      tmp_path / by,
      "--name",
      "t",
    )
    topics = {s: {q.split()[0] for q in _qids(res["path"], s)} for s in ("train", "test")}
    out[by] = topics["train"] & topics["test"]
    assert topics["train"] and topics["test"]
  assert not out["topic"]
  assert out["query"]  # a query-hash split puts topics on both sides: the leak it avoids


def test_topic_frequency_counts_the_topic_sessions(tmp_path, capsys):
  log, qrels = _trec_log(tmp_path, topics=4)
  res = _prepare(
    capsys,
    "--format",
    "trec-session",
    log,
    "--labels",
    qrels,
    "--freq-by",
    "topic",
    "--test-fraction",
    "0",
    "--output",
    tmp_path,
    "--name",
    "t",
  )
  s = store.open_split(res["path"], "train")
  assert {float(s[i]["query_freq"]) for i in range(len(s))} == {3.0}  # 3 sessions per topic
  with pytest.raises(InputError, match="no topics"):  # the command prints it as one error line
    data_main(
      [
        "prepare",
        "--format",
        "tiangong-st",
        str(FIX / "tiangong_st_sample.xml"),
        "--freq-by",
        "topic",
        "--output",
        str(tmp_path / "x"),
        "--name",
        "x",
        "--quiet",
      ]
    )


def test_llm_labels_joined_by_query_text_and_document_with_misses_counted(tmp_path, capsys):
  log, qrels = _trec_log(tmp_path, topics=2)
  res = _prepare(
    capsys,
    "--format",
    "trec-session",
    log,
    "--test-fraction",
    "0",
    "--validation-fraction",
    "0",
    "--output",
    tmp_path / "plain",
    "--name",
    "t",
  )
  split = store.open_split(res["path"], "train")
  rec = split[0]
  pairs = [(_text(rec["qid"]), _text(d)) for d in rec["doc_ids"][:4]]
  _annotation_store(tmp_path / "ann.db", pairs)
  res = _prepare(
    capsys,
    "--format",
    "trec-session",
    log,
    "--labels",
    qrels,
    "--test-fraction",
    "0",
    "--validation-fraction",
    "0",
    "--llm-labels",
    tmp_path / "ann.db",
    "--llm-model",
    "m",
    "--output",
    tmp_path / "llm",
    "--name",
    "t",
  )
  total = int(split.lengths.sum())
  assert res["joined"] == {"llm_pairs": total, "llm_missing": total - 4}
  got = store.open_split(res["path"], "train")
  with store_lib.Store(tmp_path / "ann.db") as st:
    want = {(r["qid"], r["doc_id"]): r["label"] for r in st.rows()}
  first = next(got[i] for i in range(len(got)) if _text(got[i]["qid"]) == pairs[0][0])
  np.testing.assert_array_equal(first["label_llm"][:4], [want[p] for p in pairs])
  assert np.isnan(first["label_llm"][4:]).all()


def test_llm_labels_errors_name_the_problem(tmp_path, capsys):
  log, _ = _trec_log(tmp_path, topics=1)
  _annotation_store(tmp_path / "ann.db", [("a", "b")], mode="pointwise_graded")
  _annotation_store(tmp_path / "ann.db", [("a", "b")], mode="pointwise_binary")
  args = [
    "prepare",
    "--format",
    "trec-session",
    str(log),
    "--output",
    str(tmp_path / "o"),
    "--name",
    "t",
    "--quiet",
    "--llm-labels",
    str(tmp_path / "ann.db"),
  ]
  with pytest.raises(SystemExit):
    data_main(args)  # --llm-model missing
  assert "--llm-labels and --llm-model go together" in capsys.readouterr().err
  with pytest.raises(SystemExit, match="several runs"):
    data_main([*args, "--llm-model", "m"])
  with pytest.raises(SystemExit, match="no ok annotations"):
    data_main([*args, "--llm-model", "other"])
  with sqlite3.connect(tmp_path / "ann.db") as db:  # the chosen run is the one joined
    assert db.execute("SELECT COUNT(*) FROM annotations").fetchone()[0] == 2


def test_tokenizer_stores_token_arrays(tmp_path, capsys):
  log, qrels = _trec_log(tmp_path, topics=2)
  res = _prepare(
    capsys,
    "--format",
    "trec-session",
    log,
    "--labels",
    qrels,
    "--test-fraction",
    "0",
    "--tokenizer",
    _tokenizer(tmp_path),
    "--max-tokens",
    "12",
    "--max-query-tokens",
    "4",
    "--output",
    tmp_path,
    "--name",
    "t",
  )
  rec = store.open_split(res["path"], "train")[0]
  assert rec["tokens"].shape == (10, 12)
  assert (rec["tokens"][:, 0] == 2).all()  # [CLS]
  assert res["joined"]["tokens_pairs"] == 2 * 3 * 2 * 10
  assert res["joined"]["tokens_docs_truncated"] == 2 * 3 * 2 * 10  # 9 pieces, room for 5


def test_tiangong_labelled_sessions_are_the_test_set(tmp_path, capsys):
  res = _prepare(
    capsys,
    "--format",
    "tiangong-st",
    FIX / "tiangong_st_sample.xml",
    "--labels",
    FIX / "tiangong_st_labels.txt",
    "--queries",
    FIX / "tiangong_st_queries.json",
    "--split-by",
    "labelled",
    "--output",
    tmp_path,
    "--name",
    "t",
  )
  assert _qids(res["path"], "test") == ["q2"]  # the fixture's labelled query
  assert "q2" not in _qids(res["path"], "train")
  assert res["split_by"] == "labelled"


@pytest.mark.slow
def test_trec_cross_encoder_config_trains(tmp_path, capsys):
  from rankjax.engine import train  # pylint: disable=g-import-not-at-top

  log, qrels = _trec_log(tmp_path)
  res = _prepare(
    capsys,
    "--format",
    "trec-session",
    log,
    "--labels",
    qrels,
    "--freq-by",
    "topic",
    "--split-by",
    "topic",
    "--test-fraction",
    "0.3",
    "--tokenizer",
    _tokenizer(tmp_path),
    "--max-tokens",
    "16",
    "--max-query-tokens",
    "4",
    "--output",
    tmp_path,
    "--name",
    "t",
  )
  for arg in ("click", "human"):
    assert load_config("trec_cross_encoder", arg).model.hf_dir.endswith("model")
  config = load_config("trec_cross_encoder", "tiny")
  config.data.path = res["path"]
  out = train.train_and_evaluate(config, tmp_path / "work")
  assert out["step"] == 4
  assert 0 < out["eval"]["test"]["ndcg@10"]["all"] <= 1


def _study(config, path, workdir):
  from rankjax.study import runner as study  # pylint: disable=g-import-not-at-top

  config.data.path = str(path)
  summary = study.run(config, workdir)
  report = (workdir / "report.md").read_text()
  for variant in config.study.variants:
    assert variant in report
  return summary


@pytest.mark.slow
def test_trec_session_study_config_runs(tmp_path, capsys):
  log, qrels = _trec_log(tmp_path, topics=10)
  res = _prepare(
    capsys,
    "--format",
    "trec-session",
    log,
    "--test-fraction",
    "0",
    "--validation-fraction",
    "0",
    "--output",
    tmp_path / "plain",
    "--name",
    "t",
  )
  split = store.open_split(res["path"], "train")
  pairs = _pairs(split)
  _annotation_store(tmp_path / "ann.db", pairs, model="SmolLM2-135M-Instruct.Q4_1.gguf")
  res = _prepare(
    capsys,
    "--format",
    "trec-session",
    log,
    "--labels",
    qrels,
    "--freq-by",
    "topic",
    "--split-by",
    "topic",
    "--test-fraction",
    "0.3",
    "--llm-labels",
    tmp_path / "ann.db",
    "--llm-model",
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "--tokenizer",
    _tokenizer(tmp_path),
    "--max-tokens",
    "16",
    "--max-query-tokens",
    "4",
    "--output",
    tmp_path,
    "--name",
    "t",
  )
  assert res["joined"]["llm_missing"] == 0
  assert load_config("trec_session", None).model.hf_dir.endswith("model")
  _study(load_config("trec_session", "tiny"), res["path"], tmp_path / "study")


@pytest.mark.slow
def test_tiangong_st_study_config_runs_on_the_fixture(tmp_path, capsys):
  common = [
    "--format",
    "tiangong-st",
    FIX / "tiangong_st_sample.xml",
    "--labels",
    FIX / "tiangong_st_labels.txt",
    "--queries",
    FIX / "tiangong_st_queries.json",
  ]
  res = _prepare(
    capsys, *common, "--test-fraction", "0", "--output", tmp_path / "plain", "--name", "t"
  )
  split = store.open_split(res["path"], "train")
  pairs = _pairs(split)
  config = load_config("tiangong_st", "tiny")
  _annotation_store(tmp_path / "ann.db", pairs, model="m")
  queries = json.loads((FIX / "tiangong_st_queries.json").read_text())
  chars = "".join(queries.values()) + "".join(str(i) for i in range(100))
  res = _prepare(
    capsys,
    *common,
    "--freq-by",
    "sessions",
    "--split-by",
    "labelled",
    "--llm-labels",
    tmp_path / "ann.db",
    "--llm-model",
    "m",
    "--tokenizer",
    _tokenizer(tmp_path, chars),
    "--max-tokens",
    "16",
    "--max-query-tokens",
    "4",
    "--output",
    tmp_path,
    "--name",
    "t",
  )
  summary = _study(config, res["path"], tmp_path / "study")
  assert set(summary["metrics"]) == set(config.study.variants) | set(config.study.baselines)


@pytest.mark.slow
def test_tiangong_processed_study_config_runs_on_the_sample(shared_data, tmp_path, capsys):
  d = shared_data("tiangong_st_fragments")
  logs = [d / f"{split}_per_session.txt" for split in ("train", "dev", "test")]
  # Features: a one-hot of each (query, document)'s vertical type, from the logs' own columns.
  pairs = {}
  for log in logs:
    for line in log.read_text().splitlines():
      if line.strip():
        seq, _, (uid, _, vid), _ = (json.loads(c) for c in line.split("\t"))
        pairs[(seq[-1], uid)] = vid
  vids = sorted(set(pairs.values()))
  features = tmp_path / "features.svm"
  features.write_text(
    "".join(
      f"0 qid:{q} {vids.index(v) + 1}:1 # docid = {u}\n" for (q, u), v in sorted(pairs.items())
    )
  )
  res = _prepare(
    capsys,
    "--format",
    "tiangong-session",
    *logs,
    "--labels",
    d / "human_label_for_CACM.txt",
    "--queries",
    d / "qid_query.json",
    "--features",
    features,
    "--split-by",
    "labelled",
    "--output",
    tmp_path,
    "--name",
    "t",
  )
  config = load_config("tiangong_processed", "tiny")
  summary = _study(config, res["path"], tmp_path / "study")
  assert set(summary["metrics"]) == set(config.study.variants) | set(config.study.baselines)
